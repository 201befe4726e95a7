"""End to end: raw interactions -> contacts -> scoring and cases -> contacts' timeline.

contacts, scoring and cases run in this process (their consumers, relays, the faust worker
and the SLA timer) against the session's broker and Postgres, each on its own database,
sharing the topics of this test. Nothing is published by hand but what a channel sends:
a customer's complaint and, later, an agent's reply on the case. So every field cases acts
on (the contact, the time, the agent, the case id) came through contacts, the priority
through scoring's score change, and the case back to contacts' timeline.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crm_cases import domain
from crm_cases.app import create_app as create_cases_app
from crm_cases.settings import CasesSettings
from crm_contacts.app import create_app as create_contacts_app
from crm_contacts.settings import ContactsSettings
from crm_contracts import CloudEvent, TopicSpec, dead_letter_topic, decode_json, encode_binary
from crm_kit.auth import issue_token
from crm_kit.db import connect, drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, ensure_topics
from crm_scoring.app import create_app as create_scoring_app
from crm_scoring.settings import ScoringSettings
from tests.conftest import unique
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import eventually, produce
from tests.support.servers import Servers
from tests.support.services import running_apps, wait_ready

pytestmark = pytest.mark.integration

SECRET = "e2e-cases-loop-secret-long-enough-for-hs256"
NOW = datetime.now(UTC).replace(microsecond=0)
TOPICS = ("raw", "interactions", "contacts", "cases", "campaigns", "scores", "current", "privacy")


@dataclass
class Loop:
    bootstrap: str
    raw_topic: str
    contacts: httpx.AsyncClient
    scoring: httpx.AsyncClient
    cases: httpx.AsyncClient
    cases_db: str

    async def send(self, event: CloudEvent, key: str) -> None:
        await produce(self.bootstrap, self.raw_topic, [encode_binary(event, key=key)])

    async def until(self, http: httpx.AsyncClient, path: str, done: Any) -> Any:
        async def check() -> Any:
            response = await http.get(path)
            if response.status_code != 200:
                return None
            body = response.json()
            return body if done(body) else None

        return await eventually(check, timeout=60, interval=0.05)


@pytest_asyncio.fixture
async def loop(servers: Servers, database: str, tmp_path: Path) -> AsyncIterator[Loop]:
    topics = {name: unique(f"loop-{name}") for name in TOPICS}
    specs = [
        TopicSpec(n, "test", 2, "delete", (), "test topic")
        for name in topics.values()
        for n in (name, dead_letter_topic(name))
    ]
    await ensure_topics(servers.bootstrap, specs)
    names = {s: "t_" + uuid.uuid4().hex[:12] for s in ("scoring", "cases")}
    for name in names.values():
        await ensure_database(servers.admin_dsn, name)
    common: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap_servers": servers.bootstrap,
        "kafka_enable_idempotence": servers.idempotent_producers,
        "consumer_retry_backoff_ms": 10,
        "jwt_secret": SECRET,
        **QUICK_GROUPS,
    }
    suffix = f"-{uuid.uuid4().hex[:8]}"
    contacts_settings = ContactsSettings(
        **common,
        database_url=database,
        consumer_group_suffix=suffix,
        interactions_raw_topic=topics["raw"],
        interactions_topic=topics["interactions"],
        contacts_topic=topics["contacts"],
        cases_topic=topics["cases"],
        campaigns_topic=topics["campaigns"],
        scores_topic=topics["scores"],
        privacy_topic=topics["privacy"],
    )
    scoring_settings = ScoringSettings(
        **common,
        database_url=with_database(servers.admin_dsn, names["scoring"]),
        faust_app_id=unique("loop-scoring"),
        faust_data_dir=tmp_path / "faust",
        interactions_topic=topics["interactions"],
        cases_topic=topics["cases"],
        contacts_topic=topics["contacts"],
        privacy_topic=topics["privacy"],
        scores_topic=topics["scores"],
        scores_current_topic=topics["current"],
        create_topics=False,
        reevaluate_interval_seconds=0,
    )
    cases_settings = CasesSettings(
        **common,
        database_url=with_database(servers.admin_dsn, names["cases"]),
        consumer_group_suffix=suffix,
        interactions_topic=topics["interactions"],
        scores_topic=topics["scores"],
        contacts_topic=topics["contacts"],
        privacy_topic=topics["privacy"],
        cases_topic=topics["cases"],
    )
    token = issue_token(
        secret=SECRET,
        scopes=["contacts:read", "scores:read", "cases:read"],
        issuer="crm-backbone",
        audience="crm-api",
    )
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with contextlib.AsyncExitStack() as stack:
            urls = await stack.enter_async_context(
                running_apps(
                    create_contacts_app(contacts_settings),
                    create_scoring_app(scoring_settings, clock=lambda: NOW),
                    create_cases_app(cases_settings, clock=lambda: NOW),
                )
            )
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, headers=auth, timeout=10)
                )
                for url in urls
            ]
            for client in clients:
                await wait_ready(client)
            yield Loop(
                servers.bootstrap,
                topics["raw"],
                *clients,
                cases_db=with_database(servers.admin_dsn, names["cases"]),
            )
    finally:
        for name in names.values():
            await drop_database(servers.admin_dsn, name)
        await delete_topics(servers.bootstrap, [s.name for s in specs])


def raw(kind: str, email: str, at: datetime, **data: Any) -> CloudEvent:
    return decode_json(
        {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex}",
            "source": "urn:channel:helpdesk",
            "type": "crm.interaction.recorded",
            "time": at.isoformat(),
            "data": {"channel": "email", "kind": kind, "identity": {"email": email}, **data},
        }
    )


async def test_a_complaint_opens_a_case_scoring_sets_its_priority_and_an_agent_reply_answers_it(
    loop: Loop,
) -> None:
    email = f"angry-{uuid.uuid4().hex[:8]}@example.com"
    complained_at = NOW - timedelta(minutes=10)
    complaint = raw("complaint", email, complained_at, properties={"subject": "Broken on arrival"})
    await loop.send(complaint, key=email)

    page = await loop.until(
        loop.contacts, f"/v1/contacts?email={email}", lambda body: body["items"]
    )
    contact_id = page["items"][0]["id"]
    cases = await loop.until(
        loop.cases, f"/v1/contacts/{contact_id}/cases", lambda body: body["items"]
    )
    (case,) = cases["items"]
    assert case["subject"] == "Broken on arrival"
    assert datetime.fromisoformat(case["opened_at"]) == complained_at  # its time came through
    first = next(k for k in case["clocks"] if k["metric"] == "first_response")
    assert datetime.fromisoformat(first["started_at"]) == complained_at

    # scoring scored the complaint; cases took the priority that score asks for.
    scores = await loop.until(loop.scoring, f"/v1/contacts/{contact_id}/scores", bool)
    settings = CasesSettings()
    wanted = domain.priority_from_value(
        scores["scores"]["value_tier"],
        scores["scores"]["churn_band"],
        by_tier=settings.priority_by_tier,
        by_band=settings.priority_by_band,
    )
    await loop.until(loop.cases, f"/v1/cases/{case['id']}", lambda body: body["priority"] == wanted)

    async def projected() -> Any:
        conn = await connect(loop.cases_db)
        try:
            return await conn.fetchrow(
                "SELECT value_tier, churn_band FROM case_contact_scores WHERE contact_id = $1",
                contact_id,
            )
        finally:
            await conn.close()

    standing = await eventually(projected, timeout=60, interval=0.05)
    assert (standing["value_tier"], standing["churn_band"]) == (
        scores["scores"]["value_tier"],
        scores["scores"]["churn_band"],
    )

    # The agent answers through the helpdesk channel: an interaction naming the case.
    reply = raw("chat", email, NOW - timedelta(minutes=2), agent_id="agent-9", case_id=case["id"])
    await loop.send(reply, key=email)
    answered = await loop.until(
        loop.cases, f"/v1/cases/{case['id']}", lambda body: body["first_response_at"]
    )
    assert answered["status"] == "open"
    assert answered["assignee"] == "agent-9"
    assert datetime.fromisoformat(answered["first_response_at"]) == reply.time

    # contacts saw the case through the backbone: on the timeline, with the agent's reply.
    timeline = await loop.until(
        loop.contacts,
        f"/v1/contacts/{contact_id}/timeline",
        lambda body: (
            {"crm.case.opened", "crm.case.status_changed"}
            <= {item["type"] for item in body["items"]}
        ),
    )
    replies = [i for i in timeline["items"] if i["type"] == "crm.interaction.recorded"]
    assert any(i["data"].get("agent_id") == "agent-9" for i in replies)
