"""What the integration tests of a service with timers share: a clock the test controls,
a client of the running service, and replicas of it (apps in this process) on one database.

    clock = TestClock()
    replicas = Replicas(make_settings, clock, create_app, ServiceClient)
    service = await replicas.start()
    await service.publish_on(topic, events); await service.wait_applied(*ids)
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import asyncpg
import httpx
from aiokafka.structs import ConsumerRecord

from crm_contracts import CloudEvent, TopicSpec, dead_letter_topic, decode_record, encode_binary
from crm_kit.auth import issue_token
from crm_kit.db import connect
from crm_kit.kafka import delete_topics, ensure_topics
from crm_kit.settings import ServiceSettings
from tests.conftest import unique
from tests.support.kafka import eventually, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_app

# A Monday morning, UTC.
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
S = TypeVar("S", bound=ServiceSettings)

# Consumer group timings for tests: the embedded broker answers a join after half the
# session timeout (1 s, not the default 3 s), and a member that died without leaving is
# dropped after 2 s. Heartbeats go well within it.
QUICK_GROUPS: dict[str, Any] = {
    "kafka_session_timeout_ms": 2000,
    "kafka_heartbeat_interval_ms": 300,
}


@contextlib.asynccontextmanager
async def unique_topics(
    servers: Servers, fields: Sequence[str], *, partitions: int
) -> AsyncIterator[dict[str, str]]:
    """A unique topic (and its dead-letter topic) per settings field (`interactions_topic`...),
    created in one request and deleted afterwards; {field: topic name}."""
    names = {name: unique(name.removesuffix("_topic")) for name in fields}
    specs = [
        TopicSpec(n, "test", partitions, "delete", (), "test topic")
        for name in names.values()
        for n in (name, dead_letter_topic(name))
    ]
    await ensure_topics(servers.bootstrap, specs)
    try:
        yield names
    finally:
        await delete_topics(servers.bootstrap, [spec.name for spec in specs])


def settings_factory(
    settings: Callable[..., S],
    servers: Servers,
    database: str,
    topic_names: dict[str, str],
    **defaults: Any,
) -> Callable[..., S]:
    """Settings of one service's processes on a test's database and topics, in consumer
    groups of their own; `defaults` are the service's test settings, a call's keywords
    override any of them."""
    suffix = f"-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> S:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database,
            "kafka_bootstrap_servers": servers.bootstrap,
            "kafka_enable_idempotence": servers.idempotent_producers,
            "consumer_retry_backoff_ms": 10,
            "consumer_max_retries": 4,
            "consumer_group_suffix": suffix,
            **QUICK_GROUPS,
            **defaults,
            **topic_names,
        }
        values.update(overrides)
        return settings(**values)

    return make


@dataclass
class TestClock:
    """The service's clock: stands still until the test moves it, or runs with the wall
    clock from `now` once `run()` is called."""

    now: datetime = T0
    _since: float | None = None

    def __call__(self) -> datetime:
        if self._since is None:
            return self.now
        return self.now + timedelta(seconds=time.monotonic() - self._since)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return at

    def run(self, *, from_: datetime) -> None:
        """Tick in real time from `from_` on."""
        self.now = from_
        self._since = time.monotonic()


@dataclass
class ServiceClient(Generic[S]):
    """One running service process and what tests do with it over HTTP, Kafka and SQL."""

    settings: S
    http: httpx.AsyncClient
    clock: TestClock
    scopes: tuple[str, ...] = ()
    apps: list[Any] = field(default_factory=list)
    app: Any = None  # the FastAPI app served (its runtime: `app.state.runtime`)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def headers(self, *scopes: str) -> dict[str, str]:
        token = issue_token(
            secret=self.settings.jwt_secret.get_secret_value(),
            scopes=list(scopes or self.scopes),
            subject="tester",
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

    async def publish_on(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish events on a topic, keyed by their subject, in order."""
        await produce(self.bootstrap, topic, [encode_binary(e, key=e.subject) for e in events])

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await connect(self.settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def wait_applied(self, *event_ids: str, timeout: float = 30.0) -> None:
        """Poll until every event id is in the service's inbox (applied or dropped)."""
        wanted = set(event_ids)

        async def applied() -> bool:
            rows = await self.fetch(
                "SELECT event_id FROM kit_inbox WHERE event_id = ANY($1::text[])", list(wanted)
            )
            return {r["event_id"] for r in rows} == wanted

        await eventually(applied, timeout=timeout)

    async def read_events(
        self, topic: str, done: Callable[[list[CloudEvent]], bool], *, timeout: float = 30.0
    ) -> list[CloudEvent]:
        """Read a topic from the start until `done(decoded events)`."""

        def decoded(records: list[ConsumerRecord]) -> list[CloudEvent]:
            return [decode_record(r.value, list(r.headers or ())) for r in records]

        records = await read_until(
            self.bootstrap, topic, lambda rs: done(decoded(rs)), timeout=timeout
        )
        return decoded(records)


C = TypeVar("C", bound=ServiceClient[Any])


@dataclass
class Replicas(Generic[S, C]):
    """Start and stop processes of one service (apps in this process) on one database."""

    make_settings: Callable[..., S]
    clock: TestClock
    create_app: Callable[..., Any]
    client: Callable[..., C]
    stack: list[Any] = field(default_factory=list)

    async def start(self, **overrides: Any) -> C:
        settings = self.make_settings(**overrides)
        app = self.create_app(settings, clock=self.clock)
        app_context = running_app(app)
        base_url = await app_context.__aenter__()
        http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self.stack.append((app_context, http))
        return self.client(
            settings=settings, http=http, clock=self.clock, apps=[app_context], app=app
        )

    async def stop(self, service: ServiceClient[Any]) -> None:
        for pair in list(self.stack):
            if pair[0] in service.apps:
                self.stack.remove(pair)
                await pair[1].aclose()
                await pair[0].__aexit__(None, None, None)

    async def stop_all(self) -> None:
        for app_context, http in reversed(self.stack):
            await http.aclose()
            await app_context.__aexit__(None, None, None)
        self.stack.clear()


def of_type(events: Sequence[CloudEvent], type: str) -> list[CloudEvent]:
    """The events of one type."""
    return [e for e in events if e.type == type]
