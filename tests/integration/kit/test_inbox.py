"""The inbox applies a redelivered event once."""

from __future__ import annotations

import asyncpg

from crm_contracts import encode_binary
from crm_kit import inbox
from crm_kit.settings import ServiceSettings
from tests.integration.conftest import effects
from tests.support.events import interaction
from tests.support.kafka import eventually, produce


async def test_claim_returns_only_unseen_events_and_rolls_back_with_the_transaction(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert await inbox.claim(conn, "c", [("s", "1"), ("s", "2")]) == {
                ("s", "1"),
                ("s", "2"),
            }
        async with conn.transaction():
            assert await inbox.claim(conn, "c", [("s", "2"), ("s", "3")]) == {("s", "3")}
        tx = conn.transaction()
        await tx.start()
        assert await inbox.claim(conn, "c", [("s", "4")]) == {("s", "4")}
        await tx.rollback()
        async with conn.transaction():
            assert await inbox.claim(conn, "c", [("s", "4")]) == {("s", "4")}
            # another consumer keeps its own record of what it applied
            assert await inbox.claim(conn, "other", [("s", "1")]) == {("s", "1")}


async def test_a_redelivered_event_is_applied_once(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("inbox")
    event = interaction()
    other = interaction()
    record = encode_binary(event, key="contact-1")
    await produce(settings.kafka_bootstrap_servers, topic, [record, record])
    runner = await start_consumer(topic)
    await produce(
        settings.kafka_bootstrap_servers, topic, [record, encode_binary(other, key="contact-1")]
    )

    async def both_applied() -> list[str] | None:
        applied = await effects(pool)
        return applied if other.id in applied and runner.applied == 2 else None

    assert await eventually(both_applied) == [event.id, other.id]
    assert runner.applied == 2
