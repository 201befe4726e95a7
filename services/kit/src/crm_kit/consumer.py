"""The consumer runner every service uses.

One loop per consumer group: `getmany` a batch, decode, dead-letter what cannot be
decoded, then apply the rest in ONE database transaction together with the inbox
claims, and only after that commit the offsets. A crash between the database
commit and the offset commit redelivers the batch; the inbox skips it.

A failing batch is retried with backoff when the failure is transient; after that,
or at once for other failures, its events are applied one by one so that only the
event that cannot be applied goes to `<topic>.dlt`, with the reason in `x-error-*`
headers next to the original headers. A partition never blocks forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from crm_contracts import CloudEvent, EventDecodeError, dead_letter_topic, decode_record, topics
from crm_kit import inbox
from crm_kit.deadletters import count_attempt
from crm_kit.kafka import new_consumer
from crm_kit.logs import log_context
from crm_kit.metrics import observe_batch, observe_consumed
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)


class PermanentEventError(Exception):
    """An event that can never be applied: dead-letter it now instead of retrying."""

    def __init__(self, message: str, *, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.UniqueViolationError,  # a concurrent writer won a race: retry sees its row
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


def describe(exc: BaseException) -> str:
    """Type and first line of an error, for logs and x-error-message headers.

    Postgres puts the offending key values on the DETAIL line (an email in a unique
    violation, say); logs and headers carry no personal data, so that line is dropped.
    """
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}"


@dataclass(frozen=True, eq=False)
class Delivery:
    """A decoded event and the record it came in."""

    event: CloudEvent
    record: ConsumerRecord

    @property
    def topic(self) -> str:
        return str(self.record.topic)

    @property
    def key(self) -> bytes | None:
        return self.record.key  # type: ignore[no-any-return]


BatchHandler = Callable[[asyncpg.Connection, Sequence[Delivery]], Awaitable[None]]


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.joined = False
        self.partitions: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.partitions -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.partitions |= set(assigned)
        self.joined = True


class ConsumerRunner:
    """Runs one consumer group: decode, dedupe, apply in a transaction, then commit."""

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
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.group_id = group_id or name
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self._handler = handler
        self._service = service
        self._assignment = _Assignment()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.applied = 0
        self.dead_lettered = 0

    @property
    def ready(self) -> bool:
        """Joined its group (and so has its partitions, if any are left for it)."""
        return self._assignment.joined and self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Subscribe and start the loop in the background."""
        self._consumer = new_consumer(
            self._settings, group_id=self.group_id, client_id=f"{self._service}-{self.name}"
        )
        self._consumer.subscribe(self.topics, listener=self._assignment)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        """Finish the batch in hand, leave the group."""
        self._stopping = True
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
        while not self._stopping:
            try:
                batch = await consumer.getmany(timeout_ms=200)
                if not batch:
                    continue
                started = time.perf_counter()
                await self.process(batch)
                await self._commit(consumer, batch)
                for tp in batch:
                    observe_batch(self._service, tp.topic, time.perf_counter() - started)
                backoff = self._settings.consumer_retry_backoff_ms / 1000
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Dead-letter topic or database unreachable: nothing was committed, so go
                # back to the committed offsets and try the batch again after a pause.
                log.error(
                    "consumer %s failed a batch; rewinding: %s",
                    self.name,
                    describe(exc),
                    exc_info=not isinstance(exc, asyncpg.PostgresError),  # DETAIL has values
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                await self._rewind(consumer)

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
        deliveries: list[Delivery] = []
        for records in batch.values():
            for record in records:
                try:
                    event = decode_record(record.value, list(record.headers or ()))
                except EventDecodeError as exc:
                    await self._dead_letter(record, reason=exc.reason, message=str(exc))
                    continue
                deliveries.append(Delivery(event, record))
        if not deliveries:
            return
        try:
            await self._retrying(lambda: self._apply(deliveries))
            return
        except Exception as exc:
            if len(deliveries) == 1:
                await self._dead_letter_delivery(deliveries[0], exc)
                return
            log.warning("consumer %s: batch failed (%r); applying one by one", self.name, exc)
        for delivery in deliveries:
            with log_context(
                event_id=delivery.event.id, correlation_id=delivery.event.correlationid
            ):
                try:
                    await self._retrying(lambda d=delivery: self._apply([d]))  # type: ignore[misc]
                except Exception as exc:
                    await self._dead_letter_delivery(delivery, exc)

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        delay = self._settings.consumer_retry_backoff_ms / 1000
        for remaining in range(self._settings.consumer_max_retries, -1, -1):
            try:
                await attempt()
                return
            except TRANSIENT_ERRORS as exc:
                if remaining == 0:
                    raise
                log.info("consumer %s: transient failure, retrying: %s", self.name, describe(exc))
                await asyncio.sleep(delay)
                delay *= 2

    async def _apply(self, deliveries: Sequence[Delivery]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await inbox.claim(
                conn, self.name, [(d.event.source, d.event.id) for d in deliveries]
            )
            todo: list[Delivery] = []
            for delivery in deliveries:
                key = (delivery.event.source, delivery.event.id)
                if key in fresh:
                    fresh.discard(key)  # a second copy within the same batch is a duplicate too
                    todo.append(delivery)
            if todo:
                await self._handler(conn, todo)
        now = datetime.now(UTC)
        for delivery in deliveries:
            outcome = "applied" if delivery in todo else "duplicate"
            observe_consumed(
                self._service,
                delivery.topic,
                outcome,
                lag_seconds=(now - delivery.event.time).total_seconds(),
            )
        self.applied += len(todo)

    async def _dead_letter_delivery(self, delivery: Delivery, exc: BaseException) -> None:
        reason = (
            exc.reason
            if isinstance(exc, PermanentEventError)
            else ("retries_exhausted" if isinstance(exc, TRANSIENT_ERRORS) else "handler_failed")
        )
        log.error(
            "consumer %s dead-letters event %s: %s",
            self.name,
            delivery.event.id,
            reason,
            extra={"event_id": delivery.event.id, "error": type(exc).__name__},
        )
        await self._dead_letter(delivery.record, reason=reason, message=describe(exc))

    async def _dead_letter(self, record: ConsumerRecord, *, reason: str, message: str) -> None:
        headers = [
            *count_attempt(record.headers or ()),  # x-error-attempts + 1 (a replay carries it)
            (topics.DLT_ERROR_REASON, reason.encode()),
            (topics.DLT_ERROR_MESSAGE, message[:2000].encode()),
            (topics.DLT_ERROR_TOPIC, record.topic.encode()),
            (topics.DLT_ERROR_PARTITION, str(record.partition).encode()),
            (topics.DLT_ERROR_OFFSET, str(record.offset).encode()),
            (topics.DLT_ERROR_CONSUMER, self.name.encode()),
            (topics.DLT_ERROR_TIME, datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer.send_and_wait(
            dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        self.dead_lettered += 1
        observe_consumed(self._service, record.topic, "dead_lettered")
