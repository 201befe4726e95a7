"""Outages seen from a consumer and its probes: Postgres gone, the broker frozen, a stuck batch.

Each outage is made on a server of the test's own (a dedicated Postgres, a dedicated broker)
or on the test's own table, never on the session's shared servers.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY

from crm_contracts import TopicSpec, dead_letter_topic, encode_binary
from crm_kit.consumer import ConsumerRunner
from crm_kit.db import create_pool, ensure_database, with_database
from crm_kit.http import create_service_app
from crm_kit.kafka import ensure_topics, start_producer, wait_for_broker
from crm_kit.migrations import migrate
from crm_kit.runtime import ServiceRuntime
from crm_kit.settings import ServiceSettings
from crm_stack.broker import EmbeddedBroker
from crm_stack.ports import free_port
from crm_stack.postgres import EmbeddedPostgres
from tests.conftest import unique
from tests.integration.conftest import EFFECTS_TABLE, record_effects
from tests.support.events import interaction
from tests.support.kafka import eventually, produce
from tests.support.servers import Servers
from tests.support.services import running_app


async def _applied(dsn: str) -> list[str]:
    # A connection of its own each time: the pool's connections die with the server.
    conn = await asyncpg.connect(dsn)
    try:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects ORDER BY n")]
    finally:
        await conn.close()


def _pauses(consumer: str) -> float:
    labels = {"service": "test", "consumer": consumer, "dependency": "database"}
    return REGISTRY.get_sample_value("crm_consumer_pauses_total", labels) or 0.0


async def _paused(consumer: str) -> bool:
    labels = {"service": "test", "consumer": consumer, "dependency": "database"}
    return REGISTRY.get_sample_value("crm_consumer_paused", labels) == 1.0


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres of this test alone, so that it can be stopped and started again."""
    # Not under pytest's basetemp, which another pytest session may prune meanwhile.
    with tempfile.TemporaryDirectory(prefix="crm-test-outage-") as workdir:
        postgres = EmbeddedPostgres(Path(workdir) / "data", port=free_port(), durable=False)
        postgres.start()
        try:
            yield postgres
        finally:
            postgres.stop()


async def test_a_postgres_outage_pauses_the_consumer_and_dead_letters_nothing(
    servers: Servers, own_postgres: EmbeddedPostgres, new_topic: Any
) -> None:
    dsn = with_database(own_postgres.admin_dsn, "outage")
    await ensure_database(own_postgres.admin_dsn, "outage")
    await migrate(dsn, "test", None)
    pool = await create_pool(dsn, min_size=1, max_size=3)
    await pool.execute(EFFECTS_TABLE)
    # Retries add up to 30 ms here: the outage below lasts a hundred times longer.
    settings = ServiceSettings(
        environment="test",
        database_url=dsn,
        kafka_bootstrap_servers=servers.bootstrap,
        consumer_retry_backoff_ms=10,
        consumer_max_retries=2,
        consumer_max_backoff_ms=200,
    )
    producer = await start_producer(settings, client_id="outage-test")
    topic = await new_topic("outage", partitions=1)
    name = unique("group")
    runner = ConsumerRunner(
        name=name,
        topics=[topic],
        settings=settings,
        pool=pool,
        producer=producer,
        handler=record_effects,
        service="test",
    )
    sent = [interaction() for _ in range(8)]
    try:
        await runner.start()
        await produce(servers.bootstrap, topic, [encode_binary(e, key="c") for e in sent[:2]])
        await eventually(lambda: _has(dsn, 2), timeout=30)

        own_postgres.stop()
        await produce(servers.bootstrap, topic, [encode_binary(e, key="c") for e in sent[2:4]])
        await eventually(lambda: _paused(name), timeout=30)  # holding them, not dead-lettering
        for n in (4, 6):  # events keep arriving while the database is away
            await asyncio.sleep(1)
            await produce(
                servers.bootstrap, topic, [encode_binary(e, key="c") for e in sent[n : n + 2]]
            )
        own_postgres.start()

        async def all_applied() -> list[str] | None:
            assert runner.dead_lettered == 0
            applied = await _applied(dsn)
            return applied if len(applied) >= len(sent) else None

        applied = await eventually(all_applied, timeout=60)
    finally:
        await runner.stop()
        await producer.stop()
        await pool.close()
    assert applied == [e.id for e in sent]  # each once, in order
    assert runner.dead_lettered == 0
    assert _pauses(name) >= 1


async def _has(dsn: str, count: int) -> bool:
    return len(await _applied(dsn)) >= count


# -- readiness -------------------------------------------------------------------------------


def _service(settings: ServiceSettings, topic: str) -> tuple[FastAPI, str]:
    """A service built from the kit alone, with one consumer; its app and consumer name."""
    service = unique("svc")
    runtime = ServiceRuntime(settings, service=service, outbox=False)
    runtime.add_consumer("events", [topic], record_effects)
    app = create_service_app(
        settings=settings,
        title=service,
        version="0",
        readiness=runtime.readiness,
        lifespan=runtime.lifespan,
    )
    app.state.runtime = runtime
    return app, f"{service}.events"


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _failing(http: httpx.AsyncClient, check: str) -> list[str] | None:
    """The failing checks, once `check` is among them."""
    response = await http.get("/readyz")
    if response.status_code != 503:
        return None
    failing = response.json()["failing"]
    assert isinstance(failing, list)
    return failing if check in failing else None


async def test_readyz_names_a_consumer_that_holds_records_without_moving(
    settings: ServiceSettings, pool: asyncpg.Pool, database: str, new_topic: Any
) -> None:
    topic = await new_topic("stuck", partitions=1)
    settings = settings.model_copy(update={"consumer_stall_seconds": 1.0})
    app, consumer = _service(settings, topic)
    blocker = await asyncpg.connect(database)
    try:
        async with running_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
            await eventually(lambda: _ready(http), timeout=30)
            # Another transaction holds the table: the consumer's batch waits, the database
            # itself answers.
            lock = blocker.transaction()
            await lock.start()
            try:
                await blocker.execute("LOCK TABLE effects IN ACCESS EXCLUSIVE MODE")
                event = interaction()
                record = encode_binary(event, key="c")
                await produce(settings.kafka_bootstrap_servers, topic, [record])
                failing = await eventually(
                    lambda: _failing(http, f"consumer:{consumer}:advancing"), timeout=30
                )
            finally:
                await lock.rollback()  # before the service stops: it would wait on the lock
            await eventually(lambda: _ready(http), timeout=30)
    finally:
        await blocker.close()
    assert f"consumer:{consumer}" not in failing  # in its group all along, just not moving
    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")] == [event.id]


class OwnBroker:
    """A broker of one test alone, so that it can be frozen and thawed."""

    def __init__(self, log_path: Path) -> None:
        self.broker = EmbeddedBroker(port=free_port(), log_path=log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    async def start(self, *topics: str) -> None:
        self.process, _ = self.broker.start()
        await wait_for_broker(self.bootstrap)
        specs = [TopicSpec(t, "k", 1, "delete", (), "") for t in topics]
        specs += [TopicSpec(dead_letter_topic(t), "k", 1, "delete", (), "") for t in topics]
        await ensure_topics(self.bootstrap, specs)

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest_asyncio.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "broker.log")
    yield broker
    broker.kill()


async def test_readyz_fails_while_the_broker_is_frozen_and_recovers_after(
    settings: ServiceSettings, pool: asyncpg.Pool, own_broker: OwnBroker
) -> None:
    topic = unique("frozen")
    await own_broker.start(topic)
    settings = settings.model_copy(
        update={"kafka_bootstrap_servers": own_broker.bootstrap, "kafka_enable_idempotence": False}
    )
    app, _ = _service(settings, topic)
    async with (
        running_app(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        await eventually(lambda: _ready(http), timeout=30)
        own_broker.signal(signal.SIGSTOP)
        try:
            failing = await eventually(lambda: _failing(http, "broker"), timeout=30)
        finally:
            own_broker.signal(signal.SIGCONT)
        await eventually(lambda: _ready(http), timeout=60)
    assert "database" not in failing
