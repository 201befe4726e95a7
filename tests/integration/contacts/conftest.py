"""The contacts service running for real (HTTP, consumers, outbox relay) on unique topics.

Every test gets its own database, its own seven topics and its own consumer groups, so no
test sees another's events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord

from crm_contacts.app import create_app
from crm_contacts.settings import ContactsSettings
from crm_contracts import (
    CloudEvent,
    KafkaRecord,
    dead_letter_topic,
    decode_json,
    decode_record,
    encode_binary,
    encode_structured,
    new_event,
)
from crm_kit.auth import issue_token
from crm_kit.db import connect
from tests.support.harness import settings_factory, unique_topics
from tests.support.kafka import eventually, header, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_app

TOPIC_FIELDS = (
    "interactions_raw_topic",
    "interactions_topic",
    "contacts_topic",
    "cases_topic",
    "campaigns_topic",
    "scores_topic",
    "privacy_topic",
)
ALL_SCOPES = ("contacts:read", "contacts:write", "privacy:erase")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def raw_event(
    kind: str = "page_view",
    *,
    identity: dict[str, Any] | None = None,
    time: datetime = T0,
    source: str = "urn:channel:webshop",
    event_id: str | None = None,
    correlationid: str | None = None,
    **data: Any,
) -> CloudEvent:
    """A raw interaction through the public contract (structured-mode JSON)."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or f"evt-{uuid.uuid4().hex}",
        "source": source,
        "type": "crm.interaction.recorded",
        "time": time.isoformat().replace("+00:00", "Z"),
        "data": {
            "channel": data.pop("channel", "web"),
            "kind": kind,
            "identity": identity or {"email": "ada@example.com"},
            **data,
        },
    }
    if correlationid:
        body["correlationid"] = correlationid
    return decode_json(body)


def purchase(**kwargs: Any) -> CloudEvent:
    """A purchase of 120 EUR."""
    return raw_event("purchase", value={"amount": "120.00", "currency": "EUR"}, **kwargs)


@dataclass
class Service:
    """The running service and what tests do with it."""

    settings: ContactsSettings
    http: httpx.AsyncClient

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def headers(self, *scopes: str) -> dict[str, str]:
        token = issue_token(
            secret=self.settings.jwt_secret.get_secret_value(),
            scopes=list(scopes or ALL_SCOPES),
            subject="agent-7",
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        return {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, *scopes: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers(*scopes), params=params)

    async def send(self, method: str, path: str, body: Any = None, *scopes: str) -> httpx.Response:
        return await self.http.request(method, path, json=body, headers=self.headers(*scopes))

    async def ok(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def publish(
        self, *events: CloudEvent, topic: str | None = None, key: str | None = None
    ) -> None:
        """Publish raw interactions (binary mode) keyed by the given key or the event id."""
        await produce(
            self.bootstrap,
            topic or self.settings.interactions_raw_topic,
            [encode_binary(e, key=key or e.id) for e in events],
        )

    async def publish_structured(self, *events: CloudEvent, key: str | None = None) -> None:
        await produce(
            self.bootstrap,
            self.settings.interactions_raw_topic,
            [encode_structured(e, key=key or e.id) for e in events],
        )

    async def publish_records(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        await produce(self.bootstrap, topic, records)

    async def publish_related(self, type: str, data: Any, *, time: datetime = T0) -> CloudEvent:
        """Publish another service's event (case, campaign, score, privacy) on its topic."""
        event = new_event(type, data, source=f"urn:crm:{type.split('.')[1]}", time=time)
        topic = {
            "case": self.settings.cases_topic,
            "campaign": self.settings.campaigns_topic,
            "score": self.settings.scores_topic,
            "privacy": self.settings.privacy_topic,
        }[type.split(".")[1]]
        await produce(self.bootstrap, topic, [encode_binary(event, key=event.subject)])
        return event

    async def contact_by(self, **search: str) -> dict[str, Any] | None:
        page = await self.ok("/v1/contacts", **search)
        return page["items"][0] if page["items"] else None

    async def wait_contact(self, timeout: float = 20.0, **search: str) -> dict[str, Any]:
        """Poll the search API until a contact matches."""

        async def found() -> dict[str, Any] | None:
            return await self.contact_by(**search)

        result: dict[str, Any] = await eventually(found, timeout=timeout)
        return result

    async def wait_applied(self, *event_ids: str, timeout: float = 20.0) -> None:
        """Poll until every event id is in the service's inbox (applied or dropped)."""
        wanted = set(event_ids)

        async def applied() -> bool:
            rows = await self.fetch(
                "SELECT event_id FROM kit_inbox WHERE event_id = ANY($1::text[])", list(wanted)
            )
            return {r["event_id"] for r in rows} == wanted

        await eventually(applied, timeout=timeout)

    async def timeline(self, contact_id: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await self.ok(f"/v1/contacts/{contact_id}/timeline", **params)
        )["items"]
        return items

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await connect(self.settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def read(
        self,
        topic: str,
        done: Callable[[list[CloudEvent]], bool],
        *,
        timeout: float = 20.0,
    ) -> list[CloudEvent]:
        """Read a topic from the start until `done(decoded events)`."""

        def decoded(records: list[ConsumerRecord]) -> list[CloudEvent]:
            return [decode_record(r.value, list(r.headers or ())) for r in records]

        records = await read_until(
            self.bootstrap, topic, lambda rs: done(decoded(rs)), timeout=timeout
        )
        return decoded(records)

    async def contact_events(
        self, done: Callable[[list[CloudEvent]], bool], timeout: float = 20.0
    ) -> list[CloudEvent]:
        return await self.read(self.settings.contacts_topic, done, timeout=timeout)

    async def resolved_events(
        self, done: Callable[[list[CloudEvent]], bool], timeout: float = 20.0
    ) -> list[CloudEvent]:
        return await self.read(self.settings.interactions_topic, done, timeout=timeout)

    async def dead_letters(
        self, count: int, timeout: float = 20.0
    ) -> list[tuple[str | None, ConsumerRecord]]:
        records = await read_until(
            self.bootstrap,
            dead_letter_topic(self.settings.interactions_raw_topic),
            lambda rs: len(rs) >= count,
            timeout=timeout,
        )
        return [(header(r, "x-error-reason"), r) for r in records]


def of_type(events: Sequence[CloudEvent], type: str) -> list[CloudEvent]:
    """The events of one type."""
    return [e for e in events if e.type == type]


@pytest_asyncio.fixture
async def topic_names(servers: Servers) -> AsyncIterator[dict[str, str]]:
    """Unique topics (and their dead-letter topics), created in one request."""
    async with unique_topics(servers, TOPIC_FIELDS, partitions=3) as names:
        yield names


@pytest.fixture
def make_settings(
    servers: Servers, database: str, topic_names: dict[str, str]
) -> Callable[..., ContactsSettings]:
    """Settings of a contacts process on this test's database and topics."""
    return settings_factory(
        ContactsSettings, servers, database, topic_names, default_phone_region="GB"
    )


@pytest_asyncio.fixture
async def start_service(
    make_settings: Callable[..., ContactsSettings],
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start a contacts process (its app, in this process); stopped afterwards."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> Service:
        settings = make_settings(**overrides)
        app_context = running_app(create_app(settings))
        base_url = await app_context.__aenter__()
        stack.append(app_context)
        client = httpx.AsyncClient(base_url=base_url, timeout=10)
        stack.append(client)
        return Service(settings, client)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest_asyncio.fixture
async def service(start_service: Callable[..., Any]) -> Service:
    """The contacts service with default settings."""
    started: Service = await start_service()
    return started
