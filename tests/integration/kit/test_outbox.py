"""The outbox publishes what was committed, nothing that rolled back, in order per key."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from crm_kit.outbox import OutboxRelay, enqueue, event_message, pending_count
from crm_kit.settings import ServiceSettings
from tests.support.events import interaction
from tests.support.kafka import eventually, header, read_until


class Boom(Exception):
    pass


async def test_outbox_publishes_committed_events_in_order_per_key_and_never_rolled_back_ones(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, new_topic
) -> None:
    topic = await new_topic("outbox")
    relay = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    relay.start()
    try:
        first = [interaction() for _ in range(5)]
        second = [interaction() for _ in range(3)]
        rolled_back = [interaction() for _ in range(2)]
        async with pool.acquire() as conn:
            async with conn.transaction():
                await enqueue(conn, [event_message(topic, e, key="contact-1") for e in first])
            with pytest.raises(Boom):
                async with conn.transaction():
                    await enqueue(
                        conn, [event_message(topic, e, key="contact-1") for e in rolled_back]
                    )
                    raise Boom
            async with conn.transaction():
                await enqueue(conn, [event_message(topic, e, key="contact-2") for e in second])
            sentinel = interaction()
            async with conn.transaction():
                await enqueue(conn, [event_message(topic, sentinel, key="contact-1")])

        records = await read_until(
            settings.kafka_bootstrap_servers,
            topic,
            lambda rs: any(header(r, "ce_id") == sentinel.id for r in rs),
        )
        ids_by_key: dict[bytes, list[str]] = {}
        for record in records:
            ids_by_key.setdefault(record.key, []).append(header(record, "ce_id"))
        assert ids_by_key[b"contact-1"] == [e.id for e in first] + [sentinel.id]
        assert ids_by_key[b"contact-2"] == [e.id for e in second]
        seen = {i for ids in ids_by_key.values() for i in ids}
        assert not seen & {e.id for e in rolled_back}

        async def all_marked_sent() -> bool:
            async with pool.acquire() as conn:
                return await pending_count(conn) == 0

        # The relay marks rows sent once the broker acked them, so a reader can see the
        # records a moment before that.
        await eventually(all_marked_sent)
    finally:
        await relay.stop()


async def test_a_second_relay_stands_by_while_the_first_publishes(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    first = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    second = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    first.start()
    try:

        async def first_active() -> bool:
            return first.active

        await eventually(first_active)
        second.start()
        await eventually(first_active)  # still the first one
        assert not second.active
        await first.stop()

        async def second_active() -> bool:
            return second.active

        await eventually(second_active)
    finally:
        await first.stop()
        await second.stop()
