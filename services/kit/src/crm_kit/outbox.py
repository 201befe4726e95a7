"""Transactional outbox: write events with the state change, publish them after commit.

`enqueue` runs inside the caller's transaction. `OutboxRelay` publishes unsent rows
in id order (so per key in the order they were written), is woken by the
`kit_outbox` NOTIFY that a trigger sends at commit, and marks rows sent only after
the broker acknowledged them (`acks=all`). One relay per database is active at a
time (a session advisory lock), so replicas of a service never reorder each other.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from crm_contracts import CloudEvent, KafkaRecord, encode_binary

log = logging.getLogger(__name__)

_RELAY_LOCK_KEY = 7_404_471_032  # arbitrary, constant: "outbox relay active" advisory lock


@dataclass(frozen=True)
class OutboxMessage:
    """One Kafka record waiting to be published."""

    topic: str
    record: KafkaRecord


def event_message(topic: str, event: CloudEvent, *, key: str | None) -> OutboxMessage:
    """An event in binary CloudEvents mode, ready for `enqueue`."""
    return OutboxMessage(topic, encode_binary(event, key=key))


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    return [[name, base64.b64encode(value).decode()] for name, value in headers]


def _decode_headers(stored: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in stored]


async def enqueue(conn: asyncpg.Connection, messages: Sequence[OutboxMessage]) -> None:
    """Add messages to the outbox in the caller's transaction (one statement per batch)."""
    if not messages:
        return
    await conn.execute(
        """
        INSERT INTO kit_outbox (topic, key, value, headers)
        SELECT t, k, v, h::jsonb
        FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[]) AS u(t, k, v, h)
        """,
        [m.topic for m in messages],
        [m.record.key for m in messages],
        [m.record.value for m in messages],
        [json.dumps(_encode_headers(m.record.headers)) for m in messages],
    )


async def pending_count(conn: asyncpg.Connection) -> int:
    """How many rows wait to be published."""
    return int(await conn.fetchval("SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL"))


class OutboxRelay:
    """Publishes committed outbox rows; run one per service process."""

    def __init__(
        self,
        *,
        dsn: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        batch_size: int = 500,
        safety_poll_seconds: float = 2.0,
        keep_sent_seconds: float = 3600.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._producer = producer
        self._batch_size = batch_size
        self._safety_poll = safety_poll_seconds
        self._keep_sent = keep_sent_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.active = False
        self.published = 0

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the batch in flight and stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._task.cancel()
            self._task = None

    def wake(self) -> None:
        """Look for new rows now (also done on NOTIFY)."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                await self._run_with_lock()
                backoff = 0.1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox relay lost its database, retrying: %s", exc)
            except Exception:
                log.exception("outbox relay failed, retrying")
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _run_with_lock(self) -> None:
        listener = await asyncpg.connect(self._dsn)
        try:
            await listener.add_listener("kit_outbox", lambda *_: self._wake.set())
            while not self._stopping and not await listener.fetchval(
                "SELECT pg_try_advisory_lock($1)", _RELAY_LOCK_KEY
            ):
                await self._sleep(self._safety_poll)  # another replica relays; stand by
            self.active = True
            last_purge = time.monotonic()
            while not self._stopping:
                self._wake.clear()
                sent = await self._publish_batch()
                if time.monotonic() - last_purge > 60:
                    await self._purge_sent()
                    last_purge = time.monotonic()
                if sent < self._batch_size:
                    await self._sleep(self._safety_poll)
        finally:
            self.active = False
            await listener.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _publish_batch(self) -> int:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM kit_outbox "
                "WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
        if not rows:
            return 0
        futures = [
            await self._producer.send(
                row["topic"],
                value=row["value"],
                key=row["key"],
                headers=_decode_headers(row["headers"]),
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE kit_outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        self.published += len(rows)
        return len(rows)

    async def _purge_sent(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM kit_outbox WHERE sent_at < now() - make_interval(secs => $1)",
                self._keep_sent,
            )


async def forget(conn: asyncpg.Connection, keys: Sequence[str]) -> int:
    """Delete the outbox rows keyed by these ids (an erasure), sent or not; how many.

    Sent rows stay a while for audit and still hold what they published; unsent ones
    need not go out when the erasure events written after this tell every consumer to
    forget the person. Call it in the erasure's transaction, before writing those events.
    """
    status = await conn.execute(
        "DELETE FROM kit_outbox WHERE key = ANY($1::bytea[])", [key.encode() for key in keys]
    )
    return int(status.rsplit(" ", 1)[-1])
