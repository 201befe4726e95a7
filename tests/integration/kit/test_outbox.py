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

        async def all_marked_sent() -> bool:  # a consumer can see a record before its ack
            async with pool.acquire() as conn:
                return await pending_count(conn) == 0

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


# A real database error on the statement that marks rows sent, while a flag row exists;
# a sequence (not rolled back with the failed statement) counts the attempts.
MARK_SENT_FAILS = """
CREATE TABLE mark_sent_fault (on_ boolean PRIMARY KEY);
CREATE SEQUENCE mark_sent_attempts;
CREATE FUNCTION mark_sent_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('mark_sent_attempts');
    IF EXISTS (SELECT 1 FROM mark_sent_fault) THEN
        RAISE EXCEPTION 'injected fault: cannot mark outbox rows sent';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER mark_sent_fault BEFORE UPDATE ON kit_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION mark_sent_fault();
INSERT INTO mark_sent_fault VALUES (true);
"""


async def test_what_the_broker_acknowledged_is_not_sent_again_when_marking_it_sent_fails(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, new_topic
) -> None:
    topic = await new_topic("outbox")
    await pool.execute(MARK_SENT_FAILS)

    async def attempts_at_least(n: int) -> bool:
        row = await pool.fetchrow("SELECT last_value, is_called FROM mark_sent_attempts")
        return bool(row["is_called"] and row["last_value"] >= n)

    relay = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    relay.start()
    try:
        first, second = interaction(), interaction()
        async with pool.acquire() as conn:
            async with conn.transaction():
                await enqueue(conn, [event_message(topic, first, key="contact-1")])
            await eventually(lambda: attempts_at_least(3), timeout=30)
            async with conn.transaction():  # written while the rows cannot be marked
                await enqueue(conn, [event_message(topic, second, key="contact-1")])
            await eventually(lambda: attempts_at_least(5), timeout=30)
            await conn.execute("DELETE FROM mark_sent_fault")

            async def all_sent() -> bool:
                return await pending_count(conn) == 0

            await eventually(all_sent, timeout=30)
        records = await read_until(
            settings.kafka_bootstrap_servers,
            topic,
            lambda rs: any(header(r, "ce_id") == second.id for r in rs),
        )
    finally:
        await relay.stop()

    assert [header(r, "ce_id") for r in records] == [first.id, second.id]


async def test_rows_acknowledged_before_a_row_the_producer_refuses_go_out_once(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, new_topic
) -> None:
    from crm_contracts import KafkaRecord
    from crm_kit.outbox import OutboxMessage

    topic = await new_topic("outbox")
    first, sentinel = interaction(), interaction()
    too_big = OutboxMessage(topic, KafkaRecord(b"contact-1", b"x" * (3 << 20), []))
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [event_message(topic, first, key="contact-1"), too_big])
    relay = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    relay.start()
    try:

        async def retried() -> bool:
            return relay.failures >= 3  # the producer refused the big row three times

        await eventually(retried, timeout=30)
    finally:
        await relay.stop()
    async with pool.acquire() as conn:
        pending = await pending_count(conn)
        await conn.execute("DELETE FROM kit_outbox WHERE sent_at IS NULL")
        await enqueue(conn, [event_message(topic, sentinel, key="contact-1")])
    relay = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    relay.start()
    try:
        records = await read_until(
            settings.kafka_bootstrap_servers,
            topic,
            lambda rs: any(header(r, "ce_id") == sentinel.id for r in rs),
        )
    finally:
        await relay.stop()

    assert pending == 1  # the refused row stayed; the one before it was marked sent
    assert [header(r, "ce_id") for r in records] == [first.id, sentinel.id]


async def test_a_round_larger_than_a_record_batch_keeps_its_order_per_key(
    settings: ServiceSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, new_topic
) -> None:
    from crm_contracts import KafkaRecord
    from crm_kit.outbox import OutboxMessage

    topic = await new_topic("outbox", partitions=3)
    # 100 KB rows fill the producer's 256 KB record batches: a partition takes several.
    big = [
        OutboxMessage(topic, KafkaRecord(b"contact-1", bytes([n]) * 100_000, [("n", b"%d" % n)]))
        for n in range(7)
    ]
    small = [event_message(topic, interaction(), key=f"contact-{n % 4}") for n in range(40)]
    rows = [row for pair in zip(big, small[:7], strict=True) for row in pair] + small[7:]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, rows)
    relay = OutboxRelay(dsn=settings.database_url, pool=pool, producer=producer)
    relay.start()
    try:
        records = await read_until(
            settings.kafka_bootstrap_servers, topic, lambda rs: len(rs) >= len(rows)
        )

        async def all_marked_sent() -> bool:
            async with pool.acquire() as conn:
                return await pending_count(conn) == 0

        await eventually(all_marked_sent)
    finally:
        await relay.stop()

    def label(headers: list[tuple[str, bytes]]) -> str:
        found = dict(headers)
        return bytes(found.get("n") or found["ce_id"]).decode()

    sent: dict[bytes | None, list[str]] = {}
    for message in rows:
        sent.setdefault(message.record.key, []).append(label(message.record.headers))
    received: dict[bytes | None, list[str]] = {}
    for record in records:
        received.setdefault(record.key, []).append(label(list(record.headers)))
    assert received == sent
    assert len(records) == len(rows)
