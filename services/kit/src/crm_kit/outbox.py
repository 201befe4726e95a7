"""Transactional outbox: write events with the state change, publish them after commit.

`enqueue` runs inside the caller's transaction. `OutboxRelay` publishes unsent rows
in id order (so per key in the order they were written), is woken by the
`kit_outbox` NOTIFY that a trigger sends at commit, and marks rows sent only after
the broker acknowledged them (`acks=all`). One relay per database is active at a
time (a session advisory lock), so replicas of a service never reorder each other.

Delivery is at least once. Rows the broker acknowledged but the database could not mark
sent (an outage, a restart) are kept in memory and marked, with backoff, before anything
else is published, so an outage does not send them again; a crash of the process
between the acknowledgement and the mark (or the lock passing to another replica while
the database is away) still can, and consumers dedupe by `(source, id)`. Order: a round's
rows go into one record batch per partition (more when one fills up), queued in row order
without waiting for acknowledgements, and aiokafka keeps one request in flight per broker,
putting a retried batch back at the head of its partition, so retries keep per-key order.
Only a batch that expires (`request_timeout_ms` without a leader, embedded broker: no
idempotence) can fail while a later one of its partition succeeds; its rows then go out
again after it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@functools.lru_cache(maxsize=1024)
def _json_name(name: str) -> str:
    return json.dumps(name)


def _headers_json(headers: Sequence[tuple[str, bytes]]) -> str:
    """`json.dumps(_encode_headers(headers))`, spelt out: base64 text needs no escaping, and
    the few header names there are are escaped once each."""
    pairs = (
        f'[{_json_name(name)}, "{binascii.b2a_base64(value, newline=False).decode()}"]'
        for name, value in headers
    )
    return f"[{', '.join(pairs)}]"


def _decode_headers(stored: list[list[str]]) -> list[tuple[str, bytes]]:
    # What base64.b64decode does with text, without its per-call checks (once per header).
    return [(name, binascii.a2b_base64(value)) for name, value in stored]


class _RecordBatches:
    """One round's rows as aiokafka record batches, one open per partition, each with one
    future: the producer's per-record path (a future and a coroutine per record) cost more
    than the rest of the relay. A row is refused exactly as `send` refuses it (too large),
    goes to the partition `send` would choose, and a partition's batches are queued in row
    order (the accumulator queues a batch for a partition only once the one before left)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        self.queued: list[tuple[list[int], asyncio.Future[Any]]] = []

    async def add(
        self, row_id: int, topic: str, key: bytes | None, value: bytes | None, stored: Any
    ) -> None:
        """Add one row; raise as `producer.send` would for it."""
        assert not (value is None and key is None), "Need at least one: key or value"  # as send
        producer = self._producer
        headers = _decode_headers(stored)
        await producer.partitions_for(topic)  # waits for the topic's metadata, as send does
        producer._serialize(key, value, headers)  # MessageSizeTooLargeError, as send raises
        tp = (topic, producer._partition(topic, None, key, value, key, value))
        entry = self._open.get(tp)
        if entry is None:
            entry = self._open[tp] = (producer.create_batch(), [])
        if entry[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
            await self._submit(tp)  # full: an empty batch takes any record, as in `send`
            entry = self._open[tp] = (producer.create_batch(), [])
            entry[0].append(timestamp=None, key=key, value=value, headers=headers)
        entry[1].append(row_id)

    async def submit_all(self) -> None:
        """Queue every open batch."""
        for tp in list(self._open):
            await self._submit(tp)

    async def _submit(self, tp: tuple[str, int]) -> None:
        builder, row_ids = self._open.pop(tp)
        future = await self._producer.send_batch(builder, tp[0], partition=tp[1])
        self.queued.append((row_ids, future))


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
        [_headers_json(m.record.headers) for m in messages],
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
        self.failures = 0  # rounds that ended in an error (then retried with backoff)
        self._unmarked: list[int] = []  # acknowledged by the broker, not marked sent yet

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
                self.failures += 1
                log.warning("outbox relay lost its database, retrying: %s", exc)
            except Exception:
                self.failures += 1
                log.exception("outbox relay failed, retrying")
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self._unmarked:
            try:
                await self._mark_sent()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "outbox relay stopped with %d published rows not marked sent; "
                    "they will be published again: %s",
                    len(self._unmarked),
                    exc,
                )

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
        if self._unmarked:
            # Published before the database failed: mark them first, never publish again.
            await self._mark_sent()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers FROM kit_outbox "
                "WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
        if not rows:
            return 0
        failure = await self._send(rows)
        self.published += len(self._unmarked)
        if self._unmarked:
            await self._mark_sent()
        if failure is not None:
            raise failure  # the rest goes out on the next round, after the backoff
        return len(rows)

    async def _send(self, rows: Sequence[asyncpg.Record]) -> BaseException | None:
        """Send rows in id order; keep the acknowledged ids in `_unmarked`; the first failure."""
        batches = _RecordBatches(self._producer)
        failure: BaseException | None = None
        try:
            for row in rows:
                await batches.add(row["id"], row["topic"], row["key"], row["value"], row["headers"])
        except Exception as exc:  # refused before it was queued: send nothing after it
            failure = exc
        try:
            await batches.submit_all()  # what was added before a refusal goes out
        except Exception as exc:
            failure = failure or exc
        results = await asyncio.gather(*(f for _, f in batches.queued), return_exceptions=True)
        for (row_ids, _), result in zip(batches.queued, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                self._unmarked.extend(row_ids)
        return failure

    async def _mark_sent(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE kit_outbox SET sent_at = now() "
                "WHERE id = ANY($1::bigint[]) AND sent_at IS NULL",
                self._unmarked,
            )
        self._unmarked = []

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
