"""The cases service running for real (HTTP, consumer, outbox relay, SLA timer) on unique
topics, with a clock the test controls.

Every test gets its own database, its own topics and its own consumer group. Events from
the other services (resolved interactions, score changes, merges, erasures) are published as
those services publish them; the case events are read back from the cases topic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord

from crm_cases.app import create_app
from crm_cases.settings import CasesSettings
from crm_contracts import (
    CloudEvent,
    decode_record,
    encode_binary,
    new_event,
)
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.auth import ADMIN_SCOPE, issue_token
from crm_kit.db import connect
from tests.support.harness import T0, TestClock, settings_factory, unique_topics
from tests.support.kafka import eventually, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_app

pytestmark = pytest.mark.integration

TOPIC_FIELDS = (
    "interactions_topic",
    "scores_topic",
    "contacts_topic",
    "privacy_topic",
    "cases_topic",
)


def resolved(
    kind: str,
    contact_id: str,
    *,
    time: datetime = T0,
    agent_id: str | None = None,
    case_id: str | None = None,
    csat: int | None = None,
    channel: str = "email",
    **properties: Any,
) -> CloudEvent:
    """A resolved interaction, as contacts publishes it."""
    data = it.InteractionResolved(
        interaction_id=f"evt-{uuid.uuid4().hex}",
        interaction_source="urn:channel:helpdesk",
        contact_id=contact_id,
        channel=channel,
        kind=kind,
        agent_id=agent_id,
        case_id=case_id,
        csat=csat,
        properties=properties,
        stage="repeat_customer",
        previous_stage="repeat_customer",
        stage_changed=False,
    )
    return new_event(it.INTERACTION_RESOLVED, data, source="urn:crm:contacts", time=time)


SCORES = {
    "engagement": 50,
    "recency": 3,
    "frequency": 3,
    "monetary": 3,
    "clv": {"amount": "100.00", "currency": "EUR"},
    "churn_risk": 0.1,
}


def score_changed(
    contact_id: str, *, tier: str = "silver", band: str = "low", time: datetime = T0
) -> CloudEvent:
    """A score change as scoring publishes it (a contact's first scores)."""
    risk = {"low": 0.1, "medium": 0.4, "high": 0.8}[band]
    new = sc.Scores(**{**SCORES, "churn_risk": risk}, value_tier=tier, churn_band=band)
    data = sc.ScoreChanged.from_scores(
        contact_id=contact_id,
        model_version="2026.1",
        old=None,
        new=new,
        reasons=[],
        cause_event_id=f"evt-{uuid.uuid4().hex}",
    )
    return new_event(sc.SCORE_CHANGED, data, source="urn:crm:scoring", time=time)


@dataclass
class Service:
    """The running service and what tests do with it."""

    settings: CasesSettings
    http: httpx.AsyncClient
    clock: TestClock
    apps: list[Any] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def headers(self, *scopes: str) -> dict[str, str]:
        token = issue_token(
            secret=self.settings.jwt_secret.get_secret_value(),
            scopes=list(scopes or ("cases:read", "cases:write", ADMIN_SCOPE)),
            subject="agent-7",
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers(), params=params)

    async def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, path, json=body, headers=self.headers())

    async def ok(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def publish(self, *events: CloudEvent) -> None:
        """Publish other services' events on their topics, keyed by contact, in order."""
        topic_of = {
            "interaction": self.settings.interactions_topic,
            "score": self.settings.scores_topic,
            "contact": self.settings.contacts_topic,
            "privacy": self.settings.privacy_topic,
        }
        by_topic: dict[str, list[Any]] = {}
        for event in events:
            topic = topic_of[event.type.split(".")[1]]
            by_topic.setdefault(topic, []).append(encode_binary(event, key=event.subject))
        for topic, records in by_topic.items():
            await produce(self.bootstrap, topic, records)

    async def cases_of(self, contact_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.ok(f"/v1/contacts/{contact_id}/cases"))["items"]
        return items

    async def wait_cases(
        self, contact_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll the contact's cases until `done(cases)`."""

        async def check() -> list[dict[str, Any]] | None:
            cases = await self.cases_of(contact_id)
            return cases if done(cases) else None

        result: list[dict[str, Any]] = await eventually(check, timeout=timeout)
        return result

    async def case(self, case_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.ok(f"/v1/cases/{case_id}")
        return found

    async def wait_applied(self, *event_ids: str, timeout: float = 30.0) -> None:
        """Poll until every event id is in the service's inbox (applied or dropped)."""
        wanted = set(event_ids)

        async def applied() -> bool:
            rows = await self.fetch(
                "SELECT event_id FROM kit_inbox WHERE event_id = ANY($1::text[])", list(wanted)
            )
            return {r["event_id"] for r in rows} == wanted

        await eventually(applied, timeout=timeout)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await connect(self.settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def case_events(
        self, done: Callable[[list[CloudEvent]], bool], *, timeout: float = 30.0
    ) -> list[CloudEvent]:
        """Read the cases topic from the start until `done(decoded events)`."""

        def decoded(records: list[ConsumerRecord]) -> list[CloudEvent]:
            return [decode_record(r.value, list(r.headers or ())) for r in records]

        records = await read_until(
            self.bootstrap,
            self.settings.cases_topic,
            lambda rs: done(decoded(rs)),
            timeout=timeout,
        )
        return decoded(records)


@pytest_asyncio.fixture
async def topic_names(servers: Servers) -> AsyncIterator[dict[str, str]]:
    """Unique topics (and their dead-letter topics), created in one request."""
    async with unique_topics(servers, TOPIC_FIELDS, partitions=2) as names:
        yield names


@pytest.fixture
def make_settings(
    servers: Servers, database: str, topic_names: dict[str, str]
) -> Callable[..., CasesSettings]:
    """Settings of a cases process on this test's database and topics."""
    return settings_factory(CasesSettings, servers, database, topic_names, sla_tick_ms=50)


@dataclass
class Replicas:
    """Start and stop cases processes (apps in this process) sharing one database."""

    make_settings: Callable[..., CasesSettings]
    clock: TestClock
    stack: list[Any] = field(default_factory=list)

    async def start(self, **overrides: Any) -> Service:
        settings = self.make_settings(**overrides)
        app_context = running_app(create_app(settings, clock=self.clock))
        base_url = await app_context.__aenter__()
        client = httpx.AsyncClient(base_url=base_url, timeout=10)
        self.stack.append((app_context, client))
        return Service(settings, client, self.clock, [app_context])

    async def stop(self, service: Service) -> None:
        for pair in list(self.stack):
            if pair[0] in service.apps:
                self.stack.remove(pair)
                await pair[1].aclose()
                await pair[0].__aexit__(None, None, None)

    async def stop_all(self) -> None:
        for app_context, client in reversed(self.stack):
            await client.aclose()
            await app_context.__aexit__(None, None, None)
        self.stack.clear()


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest_asyncio.fixture
async def replicas(
    make_settings: Callable[..., CasesSettings], clock: TestClock
) -> AsyncIterator[Replicas]:
    started = Replicas(make_settings, clock)
    yield started
    await started.stop_all()


@pytest_asyncio.fixture
async def service(replicas: Replicas) -> Service:
    """One cases process with default settings."""
    return await replicas.start()


def merged(survivor: str, *merged_ids: str, time: datetime = T0) -> CloudEvent:
    return new_event(
        ct.CONTACT_MERGED,
        ct.ContactMerged(survivor_id=survivor, merged_ids=list(merged_ids)),
        source="urn:crm:contacts",
        time=time,
    )


def erasure_requested(contact_id: str, *, time: datetime = T0) -> CloudEvent:
    return new_event(
        pv.PRIVACY_ERASURE_REQUESTED,
        pv.ErasureRequested(
            request_id=f"req-{uuid.uuid4().hex[:8]}", contact_id=contact_id, requested_by="dpo"
        ),
        source="urn:crm:contacts",
        time=time,
    )


def contact() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"
