"""How every service consumes: one batch pipeline, driven by aiokafka or by a faust agent.

`BatchPipeline.process(records)` takes the records of one batch and returns once each is
applied or dead-lettered:

1. decode; what cannot be decoded goes to `<topic>.dlt` at once;
2. claim the events in the inbox and apply them in ONE transaction (duplicates skipped);
3. a transient failure is told apart by asking the dependency (a fresh `SELECT 1`, a broker
   metadata request): while it is down the batch is held, retried with capped backoff for as
   long as the outage lasts, and nothing counts against the events; a failure while the
   dependency answers is the batch's own, retried a few times (a unique violation from a
   concurrent writer, a serialization failure) and then split in halves down to the event
   that fails, which is dead-lettered with its reason (`PermanentEventError.reason`,
   `retries_exhausted` or `handler_failed`) and a `describe()`d message;
4. a dead letter too large to be sent whole goes without its value (then without its headers
   and key) but with the value's sha256 and size, so that the partition moves on.

The caller commits (aiokafka) or acks (faust) the records after `process` returned and then
calls `released()`; records held longer than `consumer_stall_seconds` make `/readyz` fail.
`ConsumerRunner` is the aiokafka driver every kit service uses: `getmany`, process, commit.
A crash between the database commit and the offset commit redelivers the batch; the inbox
skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.structs import ConsumerRecord

from crm_contracts import CloudEvent, EventDecodeError, dead_letter_topic, decode_record, topics
from crm_contracts.envelope import HEADER_PREFIX
from crm_kit import inbox
from crm_kit.deadletters import count_attempt
from crm_kit.errors import DomainError
from crm_kit.health import BrokerCheck, Check, DatabaseCheck
from crm_kit.kafka import new_consumer
from crm_kit.logs import log_context
from crm_kit.metrics import (
    observe_batch,
    observe_consumed,
    observe_consumed_batch,
    set_consumer_paused,
)
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)


class PermanentEventError(Exception):
    """An event that can never be applied: dead-letter it now instead of retrying."""

    def __init__(self, message: str, *, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


class ConsumerStopping(Exception):
    """The consumer is stopping while it holds a batch: leave the batch unapplied, uncommitted."""


class DependencyUnavailable(Exception):
    """No connection to a dependency could be had: never the fault of the events in hand."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        super().__init__(f"{dependency} unavailable: {describe(cause)}")
        self.dependency = dependency


# A concurrent writer won a race, or Postgres chose us as a deadlock victim: the dependency is
# fine, and a retry sees the other's rows.
CONTENTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.UniqueViolationError,
)
# The dependency may be down: ask it before counting the failure against the events.
CONNECTIVITY_ERRORS: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    OSError,
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,  # too many connections, out of memory, disk full
)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = CONTENTION_ERRORS + CONNECTIVITY_ERRORS
# The record can never be sent as it is: its size is over the producer's or the broker's limit.
TOO_LARGE_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)


def describe(exc: BaseException) -> str:
    """Type and first line of an error, for logs and x-error-message headers.

    Postgres puts the offending key values on the DETAIL line (an email in a unique
    violation, say); logs and headers carry no personal data, so that line is dropped.
    """
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}"


_TYPE_HEADER = f"{HEADER_PREFIX}type"
_SPECVERSION_HEADER = f"{HEADER_PREFIX}specversion"


def binary_type(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """The type of a binary-mode CloudEvents record read from its header alone (None for a
    structured record, or one without the header): what a consumer needs to know that an
    event is not for it without decoding it."""
    found: str | None = None
    versioned = False
    for name, value in headers or ():
        if name == _TYPE_HEADER and value is not None:
            try:
                found = value.decode()
            except UnicodeDecodeError:
                return None
        elif name == _SPECVERSION_HEADER:
            versioned = True
    return found if versioned else None


def _is_connectivity(exc: BaseException) -> bool:
    # asyncpg.DataError (a value the driver cannot encode) is an InterfaceError, but the
    # event's own doing.
    return isinstance(exc, CONNECTIVITY_ERRORS) and not isinstance(exc, asyncpg.DataError)


class Record(Protocol):
    """What the pipeline reads of a consumed record: aiokafka's ConsumerRecord, faust's Message."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, eq=False)
class Delivery:
    """A decoded event and the record it came in."""

    event: CloudEvent
    record: Record

    @property
    def topic(self) -> str:
        return str(self.record.topic)

    @property
    def key(self) -> bytes | None:
        return self.record.key


AfterCommit = Callable[[], None]
# Applies fresh (already claimed) events in the caller's transaction; may return a function
# to run once that transaction committed (metrics, counters).
BatchHandler = Callable[[asyncpg.Connection, Sequence[Delivery]], Awaitable[AfterCommit | None]]
# Spends about `seconds` while a batch is held, keeping the consumer in its group.
Keepalive = Callable[[float], Awaitable[None]]


class Progress:
    """Offsets held against offsets released, per partition: a stuck consumer, not an idle one."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], int] = {}
        self._released: dict[tuple[str, int], int] = {}
        self._behind_since: float | None = None

    def hold(self, records: Sequence[Record]) -> None:
        """Records were fetched and are being worked on."""
        for record in records:
            tp = (record.topic, record.partition)
            self._held[tp] = max(self._held.get(tp, -1), record.offset)
        self._update()

    def release(self, records: Sequence[Record]) -> None:
        """Records were committed (or acked, or their partition went to another consumer)."""
        for record in records:
            tp = (record.topic, record.partition)
            self._released[tp] = max(self._released.get(tp, -1), record.offset)
        self._update()

    def forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Partitions this consumer no longer owns."""
        for tp in partitions:
            self._held.pop(tp, None)
            self._released.pop(tp, None)
        self._update()

    def _update(self) -> None:
        behind = any(offset > self._released.get(tp, -1) for tp, offset in self._held.items())
        if not behind:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = time.monotonic()

    def stalled_for(self) -> float:
        """Seconds since records were held without being released; 0 when none are."""
        return 0.0 if self._behind_since is None else time.monotonic() - self._behind_since


class BatchPipeline:
    """Decode, dedupe, apply in one transaction, wait out outages, dead-letter: one batch."""

    def __init__(
        self,
        *,
        name: str,
        service: str,
        settings: ServiceSettings,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        handler: BatchHandler,
        inbox_consumer: str | None = None,
        database: Check | None = None,
        broker: Check | None = None,
        keepalive: Keepalive | None = None,
        ignores: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.name = name
        self.inbox_consumer = inbox_consumer or name
        # (topic, type) -> True for events the service does not act on: a Dispatch knows
        # (entries of `crm_kit.dispatch.ignored`); they are neither decoded nor claimed.
        self._ignores = ignores or getattr(handler, "ignores", None)
        self._service = service
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self._handler = handler
        timeout = settings.health_check_timeout_ms / 1000
        self._database = database or DatabaseCheck(pool, timeout=timeout)
        self._broker = broker or BrokerCheck(producer, timeout=timeout)
        self._keepalive = keepalive or asyncio.sleep
        self._stopping = False
        self.progress = Progress()
        self.applied = self.duplicates = self.dead_lettered = self.ignored = 0

    def stop(self) -> None:
        """Stop waiting for dependencies: the batch in hand raises ConsumerStopping."""
        self._stopping = True

    @property
    def _first_delay(self) -> float:
        return self._settings.consumer_retry_backoff_ms / 1000

    def _next_delay(self, delay: float) -> float:
        return min(delay * 2, self._settings.consumer_max_backoff_ms / 1000)

    async def process(self, records: Sequence[Record]) -> None:
        """Apply or dead-letter every record of one batch, in order per partition."""
        self.progress.hold(records)
        deliveries: list[Delivery] = []
        ignored: dict[str, int] = {}
        for record in records:
            if self._ignores is not None:
                event_type = binary_type(record.headers)
                if event_type is not None and self._ignores(record.topic, event_type):
                    ignored[record.topic] = ignored.get(record.topic, 0) + 1
                    continue
            try:
                event = decode_record(record.value, list(record.headers or ()))
            except EventDecodeError as exc:
                await self._dead_letter(record, reason=exc.reason, message=str(exc))
                continue
            except Exception as exc:  # a decoder bug must not stall the partition either
                await self._dead_letter(record, reason="malformed", message=describe(exc))
                continue
            deliveries.append(Delivery(event, record))
        for topic, count in ignored.items():
            observe_consumed_batch(self._service, str(topic), ignored=count)
            self.ignored += count
        if deliveries:
            await self._apply_or_split(deliveries)

    def released(self, records: Sequence[Record]) -> None:
        """The caller committed or acked these records."""
        self.progress.release(records)

    async def _apply_or_split(self, deliveries: Sequence[Delivery]) -> None:
        # Halves are applied in order, so per-key order holds however far a batch is split.
        one = deliveries[0].event if len(deliveries) == 1 else None
        try:
            with (
                log_context(event_id=one.id, correlation_id=one.correlationid)
                if one is not None
                else contextlib.nullcontext()
            ):
                await self._retrying(lambda: self._apply(deliveries))
            return
        except ConsumerStopping:
            raise
        except Exception as exc:
            if len(deliveries) == 1:
                await self._dead_letter_delivery(deliveries[0], exc)
                return
            log.warning(
                "consumer %s: a batch of %d failed (%s); splitting it",
                self.name,
                len(deliveries),
                describe(exc),
            )
        middle = len(deliveries) // 2
        await self._apply_or_split(deliveries[:middle])
        await self._apply_or_split(deliveries[middle:])

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run `attempt` until it succeeds; only failures while the database answers count."""
        failures = 0
        delay = self._first_delay
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                if not isinstance(exc, CONTENTION_ERRORS) and not _is_connectivity(exc):
                    raise  # the handler's own verdict: no retry can change it
                if _is_connectivity(exc):
                    await self._pool.expire_connections()  # a restarted server left them dead
                    if not await self._database.reachable():
                        await self._wait_for(self._database)
                        continue
                failures += 1
                if failures > self._settings.consumer_max_retries:
                    raise
                log.info("consumer %s: transient failure, retrying: %s", self.name, describe(exc))
                await asyncio.sleep(delay)
                delay = self._next_delay(delay)

    async def _wait_for(self, dependency: Check) -> None:
        """Hold the batch until `dependency` answers again, keeping the consumer alive."""
        started = time.monotonic()
        log.warning(
            "consumer %s paused: %s unreachable; holding its batch until it is back",
            self.name,
            dependency.name,
        )
        set_consumer_paused(
            service=self._service, consumer=self.name, dependency=dependency.name, paused=True
        )
        delay = self._first_delay
        try:
            while True:
                if self._stopping:
                    raise ConsumerStopping(self.name)
                await self._keepalive(delay)
                if await dependency.reachable():
                    break
                delay = self._next_delay(delay)
        finally:
            set_consumer_paused(
                service=self._service, consumer=self.name, dependency=dependency.name, paused=False
            )
        log.warning(
            "consumer %s resumed: %s reachable again after %.1f s",
            self.name,
            dependency.name,
            time.monotonic() - started,
        )

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise DependencyUnavailable("database", exc) from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def _apply(self, deliveries: Sequence[Delivery]) -> None:
        after: AfterCommit | None = None
        async with self._connection() as conn:
            async with conn.transaction():
                fresh = await inbox.claim(
                    conn, self.inbox_consumer, [(d.event.source, d.event.id) for d in deliveries]
                )
                todo: list[Delivery] = []
                applied: list[bool] = []
                for delivery in deliveries:
                    key = (delivery.event.source, delivery.event.id)
                    fresh_one = key in fresh
                    if fresh_one:
                        fresh.discard(key)  # a second copy within the batch is a duplicate too
                        todo.append(delivery)
                    applied.append(fresh_one)
                if todo:
                    after = await self._handler(conn, todo)
            # Counted once committed, before the connection goes back to the pool (its reset
            # is a round trip): whoever sees the batch's effects sees its counts soon after.
            if after is not None:
                after()
            self._observe(deliveries, applied)
            self.applied += len(todo)
            self.duplicates += len(deliveries) - len(todo)

    def _observe(self, deliveries: Sequence[Delivery], applied: Sequence[bool]) -> None:
        """Count the batch's events per topic and outcome, with their lags (labels once a topic)."""
        now = datetime.now(UTC)
        by_topic: dict[str, tuple[list[int], list[float]]] = {}
        for delivery, fresh_one in zip(deliveries, applied, strict=True):
            topic = delivery.record.topic
            counts, lags = by_topic.get(topic) or by_topic.setdefault(topic, ([0, 0], []))
            counts[0 if fresh_one else 1] += 1
            lags.append((now - delivery.event.time).total_seconds())
        for topic, ((fresh_count, duplicate_count), lags) in by_topic.items():
            observe_consumed_batch(
                self._service,
                str(topic),
                applied=fresh_count,
                duplicate=duplicate_count,
                lag_seconds=lags,
            )

    async def _dead_letter_delivery(self, delivery: Delivery, exc: BaseException) -> None:
        if isinstance(exc, PermanentEventError):
            reason = exc.reason
        elif isinstance(exc, DomainError):  # a use case refused: as final as the above
            reason = exc.dead_letter_reason
        elif isinstance(exc, TRANSIENT_ERRORS):
            reason = "retries_exhausted"
        else:
            reason = "handler_failed"
        log.error(
            "consumer %s dead-letters event %s: %s",
            self.name,
            delivery.event.id,
            reason,
            extra={"event_id": delivery.event.id, "error": type(exc).__name__},
        )
        await self._dead_letter(delivery.record, reason=reason, message=describe(exc))

    async def _dead_letter(self, record: Record, *, reason: str, message: str) -> None:
        # x-error-attempts + 1: a replayed record that fails again says how often it has.
        *original, attempt = count_attempt(record.headers or ())
        errors = [
            attempt,
            (topics.DLT_ERROR_REASON, reason.encode()),
            (topics.DLT_ERROR_MESSAGE, message[:2000].encode()),
            (topics.DLT_ERROR_TOPIC, record.topic.encode()),
            (topics.DLT_ERROR_PARTITION, str(record.partition).encode()),
            (topics.DLT_ERROR_OFFSET, str(record.offset).encode()),
            (topics.DLT_ERROR_CONSUMER, self.name.encode()),
            (topics.DLT_ERROR_TIME, datetime.now(UTC).isoformat().encode()),
        ]
        value = record.value
        digest = [
            (topics.DLT_ERROR_VALUE_SHA256, hashlib.sha256(value or b"").hexdigest().encode()),
            (topics.DLT_ERROR_VALUE_SIZE, str(len(value or b"")).encode()),
        ]
        # Whole; else without the value; else without the original headers and key too.
        forms = [
            (record.key, value, [*original, *errors]),
            (record.key, None, [*original, *errors, (topics.DLT_ERROR_DROPPED, b"value"), *digest]),
            (None, None, [*errors, (topics.DLT_ERROR_DROPPED, b"value,headers,key"), *digest]),
        ]
        target = dead_letter_topic(record.topic)
        for number, (key, body, headers) in enumerate(forms, start=1):
            try:
                await self._send(target, key=key, value=body, headers=headers)
                break
            except ConsumerStopping:
                raise
            except Exception as exc:
                if number == len(forms):
                    raise
                log.warning(
                    "consumer %s cannot dead-letter offset %d of %s as it is (%s); "
                    "dropping more of it",
                    self.name,
                    record.offset,
                    record.topic,
                    describe(exc),
                )
        self.dead_lettered += 1
        observe_consumed(self._service, record.topic, "dead_lettered")

    async def _send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Send one dead letter; raise only when this record can never be sent as it is."""
        delay = self._first_delay
        while True:
            try:
                await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
                return
            except TOO_LARGE_ERRORS:
                raise
            except (KafkaError, OSError, TimeoutError) as exc:
                if not await self._broker.reachable():
                    await self._wait_for(self._broker)
                    continue
                # The broker answers, yet refuses (a missing dead-letter topic, say): nothing
                # is lost by waiting, and /readyz shows the consumer stuck.
                log.error("consumer %s cannot write to %s: %s", self.name, topic, describe(exc))
                if self._stopping:
                    raise ConsumerStopping(self.name) from exc
                await self._keepalive(delay)
                delay = self._next_delay(delay)


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, progress: Callable[[], Progress]) -> None:
        self.joined = False
        self.partitions: set[TopicPartition] = set()
        self._progress = progress

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.partitions -= set(revoked)
        self._progress().forget([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.partitions |= set(assigned)
        self.joined = True


class ConsumerRunner:
    """Runs one consumer group with aiokafka: getmany, the batch pipeline, then commit."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        settings: ServiceSettings,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        handler: BatchHandler,
        service: str,
        group_id: str | None = None,
        database: Check | None = None,
        broker: Check | None = None,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.group_id = group_id or name
        self._settings = settings
        self._service = service
        self.pipeline = BatchPipeline(
            name=name,
            service=service,
            settings=settings,
            pool=pool,
            producer=producer,
            handler=handler,
            database=database,
            broker=broker,
            keepalive=self._keepalive,
        )
        self._assignment = _Assignment(lambda: self.pipeline.progress)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused: set[TopicPartition] = set()
        self._polled_at = time.monotonic()

    @property
    def applied(self) -> int:
        """Events applied (duplicates not included)."""
        return self.pipeline.applied

    @property
    def dead_lettered(self) -> int:
        """Records sent to a dead-letter topic."""
        return self.pipeline.dead_lettered

    @property
    def ready(self) -> bool:
        """Joined its group (and so has its partitions, if any are left for it)."""
        return self._assignment.joined and self._task is not None and not self._task.done()

    @property
    def advancing(self) -> bool:
        """Not holding records, nor going without a poll, longer than `consumer_stall_seconds`."""
        threshold = self._settings.consumer_stall_seconds
        polled_ago = time.monotonic() - self._polled_at
        return self.pipeline.progress.stalled_for() <= threshold and polled_ago <= threshold

    async def start(self) -> None:
        """Subscribe and start the loop in the background."""
        self._consumer = new_consumer(
            self._settings, group_id=self.group_id, client_id=f"{self._service}-{self.name}"
        )
        self._consumer.subscribe(self.topics, listener=self._assignment)
        await self._consumer.start()
        self._polled_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        """Finish the batch in hand (or give it up while a dependency is down), leave the group."""
        self._stopping = True
        self.pipeline.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=15)
            except TimeoutError:
                self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        backoff = self._settings.consumer_retry_backoff_ms / 1000
        rewind = False
        while not self._stopping:
            try:
                if rewind:  # until it succeeds: fetching on would skip what was not committed
                    await self._rewind(consumer)
                    rewind = False
                batch = await consumer.getmany(timeout_ms=200)
                self._polled_at = time.monotonic()
                if not batch:
                    continue
                started = time.perf_counter()
                await self.process(batch)
                await self._commit(consumer, batch)
                self.pipeline.released([r for records in batch.values() for r in records])
                for tp in batch:
                    observe_batch(self._service, tp.topic, time.perf_counter() - started)
                backoff = self._settings.consumer_retry_backoff_ms / 1000
            except ConsumerStopping:
                return  # uncommitted: the batch is redelivered to whoever consumes next
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Something outside the pipeline failed (a commit, a fetch): nothing was
                # committed, so go back to the committed offsets and try again after a pause.
                log.error(
                    "consumer %s failed a batch; rewinding: %s",
                    self.name,
                    describe(exc),
                    exc_info=not isinstance(exc, asyncpg.PostgresError),  # DETAIL has values
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.consumer_max_backoff_ms / 1000)
                rewind = True
            finally:
                self._resume(consumer)

    async def _keepalive(self, seconds: float) -> None:
        """While a batch is held: fetch nothing more, but keep polling so the group keeps us."""
        consumer = self._consumer
        if consumer is None:
            await asyncio.sleep(seconds)
            return
        try:
            assigned = consumer.assignment()
            consumer.pause(*assigned)
            self._paused |= assigned
            self._polled_at = time.monotonic()
            fetched = await consumer.getmany(timeout_ms=max(1, int(seconds * 1000)))
            for tp, records in fetched.items():  # assigned meanwhile: fetch them again later
                consumer.seek(tp, records[0].offset)
        except Exception as exc:  # a rebalance or the broker away: the wait goes on anyway
            log.debug("consumer %s: poll while paused failed: %s", self.name, describe(exc))
            await asyncio.sleep(seconds)

    def _resume(self, consumer: AIOKafkaConsumer) -> None:
        if self._paused:
            consumer.resume(*(self._paused & consumer.assignment()))
            self._paused.clear()

    async def _commit(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # The group rebalanced while we worked: the new owner redelivers, the inbox dedupes.
            log.warning("consumer %s lost partitions before committing", self.name)

    async def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Decode and apply one `getmany` batch; dead-letter what must be."""
        await self.pipeline.process([record for records in batch.values() for record in records])
