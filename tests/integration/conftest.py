"""Fixtures for tests against the real broker and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from crm_kit.consumer import BatchHandler, ConsumerRunner, Delivery
from crm_kit.db import create_pool
from crm_kit.kafka import start_producer
from crm_kit.settings import ServiceSettings
from tests.conftest import unique
from tests.support.harness import QUICK_GROUPS
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(servers: Servers, database: str) -> ServiceSettings:
    """Kit settings pointing at this test's database and the session's broker."""
    return ServiceSettings(
        environment="test",
        database_url=database,
        kafka_bootstrap_servers=servers.bootstrap,
        kafka_enable_idempotence=servers.idempotent_producers,
        consumer_retry_backoff_ms=10,
        consumer_max_retries=2,
        **QUICK_GROUPS,
    )


@pytest_asyncio.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, min_size=1, max_size=5)
    await pool.execute(EFFECTS_TABLE)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def producer(settings: ServiceSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = await start_producer(settings, client_id="test")
    yield producer
    await producer.stop()


EFFECTS_TABLE = """
CREATE TABLE effects (
    n         bigserial PRIMARY KEY,
    source    text NOT NULL,
    event_id  text NOT NULL,
    partition int  NOT NULL,
    "offset"  bigint NOT NULL
)
"""


async def record_effects(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
    """A handler whose effect is one row per applied event (what tests count)."""
    await conn.executemany(
        'INSERT INTO effects (source, event_id, partition, "offset") VALUES ($1, $2, $3, $4)',
        [(d.event.source, d.event.id, d.record.partition, d.record.offset) for d in deliveries],
    )


async def effects(pool: asyncpg.Pool) -> list[str]:
    """Event ids applied so far, in the order applied."""
    rows = await pool.fetch("SELECT event_id FROM effects ORDER BY n")
    return [r["event_id"] for r in rows]


@pytest_asyncio.fixture
async def start_consumer(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> AsyncIterator[Callable[..., Awaitable[ConsumerRunner]]]:
    """Factory: a started ConsumerRunner on the given topic; stopped afterwards."""
    runners: list[ConsumerRunner] = []

    async def start(
        topic: str, handler: BatchHandler = record_effects, *, group: str | None = None
    ) -> ConsumerRunner:
        runner = ConsumerRunner(
            name=group or unique("group"),
            topics=[topic],
            settings=settings,
            pool=pool,
            producer=producer,
            handler=handler,
            service="test",
        )
        await runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.stop()
