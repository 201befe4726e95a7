"""End to end: raw interactions -> contacts -> campaigns (with scoring and cases on the same
topics) -> a step due for a channel -> the channel's click and a purchase -> a conversion.

contacts, scoring, cases and campaigns run in this process (consumers, relays, the faust
worker and the timers) against the session's broker and Postgres, each on its own database,
sharing the topics of this test; campaigns loads its example campaigns. Nothing is published
by hand but what channels send: a signup with consent to marketing email, the email platform's
click on the welcome email (naming the campaign and its step), and a purchase. So the
conversion's step came through every hop: channel, contacts, resolved interaction, campaigns.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crm_campaigns.app import create_app as create_campaigns_app
from crm_campaigns.settings import CampaignsSettings
from crm_cases.app import create_app as create_cases_app
from crm_cases.settings import CasesSettings
from crm_contacts.app import create_app as create_contacts_app
from crm_contacts.settings import ContactsSettings
from crm_contracts import (
    CloudEvent,
    TopicSpec,
    dead_letter_topic,
    decode_json,
    decode_record,
    encode_binary,
)
from crm_contracts import campaigns as cp
from crm_kit.auth import issue_token
from crm_kit.db import drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, ensure_topics
from crm_scoring.app import create_app as create_scoring_app
from crm_scoring.settings import ScoringSettings
from tests.conftest import unique
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import eventually, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_apps, wait_ready

pytestmark = pytest.mark.integration

SECRET = "e2e-campaigns-loop-secret-long-enough-for-hs256"
# Yesterday at noon: outside the examples' quiet hours (21:00-08:00 UTC), whenever this runs.
NOW = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
TOPICS = ("raw", "interactions", "contacts", "cases", "campaigns", "scores", "current", "privacy")


@dataclass
class Loop:
    bootstrap: str
    topics: dict[str, str]
    contacts: httpx.AsyncClient
    campaigns: httpx.AsyncClient

    async def send(self, event: CloudEvent, key: str) -> None:
        await produce(self.bootstrap, self.topics["raw"], [encode_binary(event, key=key)])

    async def until(self, http: httpx.AsyncClient, path: str, done: Any) -> Any:
        async def check() -> Any:
            response = await http.get(path)
            if response.status_code != 200:
                return None
            body = response.json()
            return body if done(body) else None

        return await eventually(check, timeout=60, interval=0.05)

    async def campaign_events(self, done: Any) -> list[CloudEvent]:
        def decoded(records: list[Any]) -> list[CloudEvent]:
            return [decode_record(r.value, list(r.headers or ())) for r in records]

        records = await read_until(
            self.bootstrap, self.topics["campaigns"], lambda rs: done(decoded(rs)), timeout=60
        )
        return decoded(records)


@pytest_asyncio.fixture
async def loop(servers: Servers, database: str, tmp_path: Path) -> AsyncIterator[Loop]:
    topics = {name: unique(f"loop-{name}") for name in TOPICS}
    specs = [
        TopicSpec(n, "test", 2, "delete", (), "test topic")
        for name in topics.values()
        for n in (name, dead_letter_topic(name))
    ]
    await ensure_topics(servers.bootstrap, specs)
    names = {s: "t_" + uuid.uuid4().hex[:12] for s in ("scoring", "cases", "campaigns")}
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
    campaigns_settings = CampaignsSettings(
        **common,
        database_url=with_database(servers.admin_dsn, names["campaigns"]),
        consumer_group_suffix=suffix,
        load_examples=True,
        step_tick_ms=50,
        interactions_topic=topics["interactions"],
        scores_topic=topics["scores"],
        contacts_topic=topics["contacts"],
        cases_topic=topics["cases"],
        privacy_topic=topics["privacy"],
        campaigns_topic=topics["campaigns"],
    )
    token = issue_token(
        secret=SECRET,
        scopes=["contacts:read", "campaigns:read"],
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
                    create_campaigns_app(campaigns_settings, clock=lambda: NOW),
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
            loop = Loop(servers.bootstrap, topics, contacts=clients[0], campaigns=clients[3])
            await loop.until(
                loop.campaigns,
                "/v1/campaigns/cmp-welcome",
                lambda body: body["status"] == "active",
            )
            yield loop
    finally:
        for name in names.values():
            await drop_database(servers.admin_dsn, name)
        await delete_topics(servers.bootstrap, [s.name for s in specs])


def raw(kind: str, email: str, at: datetime, **data: Any) -> CloudEvent:
    """An interaction as a channel publishes it on the raw topic."""
    return decode_json(
        {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex}",
            "source": "urn:channel:email-platform",
            "type": "crm.interaction.recorded",
            "time": at.isoformat(),
            "data": {"channel": "email", "kind": kind, "identity": {"email": email}, **data},
        }
    )


def of_type(events: list[CloudEvent], type: str, contact_id: str) -> list[CloudEvent]:
    return [e for e in events if e.type == type and e.subject == contact_id]


async def test_a_signup_gets_the_welcome_email_and_a_click_then_a_purchase_converts_it(
    loop: Loop,
) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    signup = raw(
        "signup",
        email,
        NOW - timedelta(minutes=30),
        consent={"purpose": "marketing", "channel": "email", "granted": True},
    )
    await loop.send(signup, key=email)
    page = await loop.until(
        loop.contacts, f"/v1/contacts?email={email}", lambda body: body["items"]
    )
    contact_id = page["items"][0]["id"]

    # Other example campaigns may take the contact too (a new contact's first churn score can
    # be high: retention); the welcome series is the one under test.
    def welcome(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in body if e["campaign_id"] == "cmp-welcome"]

    enrolments = await loop.until(loop.campaigns, f"/v1/contacts/{contact_id}/enrolments", welcome)
    [enrolment] = welcome(enrolments)
    assert datetime.fromisoformat(enrolment["entered_at"]) == signup.time  # its time came through

    def welcome_steps(es: list[CloudEvent]) -> list[cp.CampaignStepDue]:
        steps = [
            e.data_as(cp.CampaignStepDue) for e in of_type(es, cp.CAMPAIGN_STEP_DUE, contact_id)
        ]
        return [d for d in steps if d.campaign_id == "cmp-welcome"]

    events = await loop.campaign_events(welcome_steps)
    [due] = welcome_steps(events)
    assert (due.campaign_id, due.step_id, due.channel, due.template_ref) == (
        "cmp-welcome",
        "welcome",
        "email",
        "welcome-1",
    )

    # The email platform reports the click on that email, then the customer buys.
    click = raw(
        "email_clicked",
        email,
        NOW - timedelta(minutes=10),
        campaign_id=due.campaign_id,
        campaign_step_id=due.step_id,
    )
    await loop.send(click, key=email)
    purchase = raw(
        "purchase",
        email,
        NOW - timedelta(minutes=5),
        value={"amount": "49.90", "currency": "EUR"},
    )
    await loop.send(purchase, key=email)

    # The same purchase may convert other example campaigns the contact entered meanwhile
    # (a new contact's first churn score can be high: retention); the welcome series' is ours.
    def welcome_conversions(es: list[CloudEvent]) -> list[CloudEvent]:
        return [
            e
            for e in of_type(es, cp.CAMPAIGN_CONVERTED, contact_id)
            if e.data_as(cp.CampaignConverted).campaign_id == "cmp-welcome"
        ]

    events = await loop.campaign_events(welcome_conversions)
    [converted] = welcome_conversions(events)
    data = converted.data_as(cp.CampaignConverted)
    assert (data.campaign_id, data.enrolment_id, data.kind) == (
        "cmp-welcome",
        enrolment["id"],
        "purchase",
    )
    assert data.attributed_step_id == "welcome"
    assert data.value is not None
    assert (data.value.amount, data.value.currency) == (Decimal("49.90"), "EUR")
    assert converted.time == purchase.time
    [credit] = data.credits
    assert (credit.step_id, credit.share) == ("welcome", 1.0)
    assert credit.revenue is not None and credit.revenue.amount == Decimal("49.90")

    stats = await loop.until(
        loop.campaigns, "/v1/campaigns/cmp-welcome/stats", lambda body: body["converted"]
    )
    [welcome] = [s for s in stats["steps"] if s["step_id"] == "welcome"]
    assert (welcome["sent"], welcome["touched"], welcome["converted"]) == (1, 1, 1)
    assert Decimal(welcome["revenue"]) == Decimal("49.90")
