"""The faust worker: one agent takes batches of events, decodes them and hands them over.

The agent subscribes to resolved interactions, cases, contacts and privacy events, takes up
to `batch_max_events` at a time (waiting at most `batch_within_ms`), applies each batch in
ONE database transaction (`handlers.apply_events`, inbox included) and only then acks the
batch, so faust (`at_least_once`) commits offsets of applied events only. A crash before
the ack redelivers the batch; the inbox skips what was applied.

Undecodable events go to `<topic>.dlt` at once; a failing batch is retried with backoff,
then applied event by event so that only the event that cannot be applied is
dead-lettered. A batch is never acked before it is applied or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import faust
from aiokafka import AIOKafkaProducer

from crm_contracts import CloudEvent, EventDecodeError, dead_letter_topic, decode_record, topics
from crm_kit.consumer import TRANSIENT_ERRORS
from crm_kit.deadletters import count_attempt
from crm_kit.metrics import observe_batch, observe_consumed
from crm_scoring.handlers import Outcome, Scoring, apply_events, reevaluate
from crm_scoring.settings import ScoringSettings
from crm_scoring.transport import install_transport

log = logging.getLogger(__name__)
SERVICE = "scoring"


def build_faust_app(settings: ScoringSettings) -> faust.App:
    """The faust app: our consumer group, delivery settings and transport."""
    settings.faust_data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.faust_app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        processing_guarantee="at_least_once",
        # The embedded broker answers a join after half the session timeout: 6 s, not 60 s.
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_max_poll_records=settings.kafka_max_poll_records,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        # No tables, no leader election, no web server: state lives in Postgres, topics are
        # created by us (faust would let the broker auto-create them).
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=str(settings.faust_data_dir / settings.faust_app_id),
        stream_wait_empty=True,
        producer_acks=-1,
    )
    install_transport(app, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)
    return app


class ScoringWorker:
    """Runs the faust app and the periodic re-evaluation inside the service process."""

    def __init__(
        self,
        settings: ScoringSettings,
        ctx: Scoring,
        *,
        pool: Callable[[], asyncpg.Pool],
        producer: Callable[[], AIOKafkaProducer],
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self._pool = pool
        self._producer = producer
        self.app = build_faust_app(settings)
        self.assigned = False
        self._stopping = False
        self._reevaluation: asyncio.Task[None] | None = None
        self.applied = self.duplicates = self.dead_lettered = self.published = 0
        self.batches = 0
        self._define_agent()

    def _define_agent(self) -> None:
        topic = self.app.topic(
            *self.settings.input_topics,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        batch_max = self.settings.batch_max_events
        within = self.settings.batch_within_ms / 1000

        async def score_events(stream: Any) -> None:
            async for batch in stream.noack_take(batch_max, within=within):
                if not await self.handle(batch):
                    return  # stopping with the batch unapplied: leave it unacked
                for event in batch:
                    await stream.ack(event)

        self.app.agent(topic, name=f"{self.settings.faust_app_id}.score-events")(score_events)

        async def on_assigned(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
            self.assigned = True

        self.app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    @property
    def ready(self) -> bool:
        """In the consumer group with its partitions."""
        return self.assigned and not self._stopping

    async def start(self) -> None:
        """Start faust (joins the group in the background) and the re-evaluation loop."""
        self._stopping = False
        await self.app.start()
        if self.settings.reevaluate_interval_seconds > 0:
            self._reevaluation = asyncio.create_task(
                self._reevaluate_forever(), name="scoring-reevaluation"
            )

    async def stop(self) -> None:
        """Finish the batch in hand, leave the group, stop re-evaluating."""
        self._stopping = True
        if self._reevaluation is not None:
            self._reevaluation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reevaluation
            self._reevaluation = None
        await self.app.stop()
        self.assigned = False

    async def _reevaluate_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reevaluate_interval_seconds)
            try:
                evaluated, published = await reevaluate(self._pool(), self.ctx)
                if evaluated:
                    log.info(
                        "re-evaluated scores",
                        extra={"evaluated": evaluated, "published": published},
                    )
            except Exception:
                log.exception("re-evaluation failed; trying again next period")

    # -- one batch --------------------------------------------------------------------------

    async def handle(self, batch: Sequence[Any]) -> bool:
        """Apply a batch of faust events; False if the worker stops before it could."""
        backoff = self.settings.consumer_retry_backoff_ms / 1000
        while True:
            try:
                await self._handle_once(batch)
                return True
            except asyncio.CancelledError:
                raise
            except Exception:
                # Dead-letter topic or database unreachable: retry the whole batch.
                log.exception("scoring batch failed; retrying")
                if self._stopping:
                    return False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _handle_once(self, batch: Sequence[Any]) -> None:
        started = time.perf_counter()
        self.batches += 1
        decoded: list[tuple[CloudEvent, Any]] = []
        for item in batch:
            message = item.message
            try:
                event = decode_record(message.value, list(message.headers or ()))
            except EventDecodeError as exc:
                await self._dead_letter(message, reason=exc.reason, text=str(exc))
                continue
            decoded.append((event, message))
        if decoded:
            await self._apply_all(decoded)
        for topic in {item.message.topic for item in batch}:
            observe_batch(SERVICE, topic, time.perf_counter() - started)

    async def _apply_all(self, decoded: Sequence[tuple[CloudEvent, Any]]) -> None:
        try:
            await self._retrying(lambda: self._apply(decoded))
            return
        except Exception as exc:
            if len(decoded) == 1:
                await self._dead_letter_failed(decoded[0], exc)
                return
            log.warning("scoring batch failed (%r); applying one by one", exc)
        for one in decoded:
            try:
                await self._retrying(lambda one=one: self._apply([one]))  # type: ignore[misc]
            except Exception as exc:
                await self._dead_letter_failed(one, exc)

    async def _apply(self, decoded: Sequence[tuple[CloudEvent, Any]]) -> None:
        events = [event for event, _ in decoded]
        async with self._pool().acquire() as conn, conn.transaction():
            out: Outcome = await apply_events(conn, events, self.ctx)
        out.count()
        self.applied += out.applied
        self.duplicates += out.duplicates
        self.published += out.published
        now = datetime.now(UTC)
        for event, message in decoded:
            observe_consumed(
                SERVICE,
                message.topic,
                "applied",
                lag_seconds=(now - event.time).total_seconds(),
            )
        if out.duplicates:
            observe_consumed(SERVICE, decoded[0][1].topic, "duplicate", count=out.duplicates)

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        delay = self.settings.consumer_retry_backoff_ms / 1000
        for remaining in range(self.settings.consumer_max_retries, -1, -1):
            try:
                await attempt()
                return
            except TRANSIENT_ERRORS:
                if remaining == 0 or self._stopping:
                    raise
                log.info("scoring: transient failure, retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay *= 2

    async def _dead_letter_failed(self, item: tuple[CloudEvent, Any], exc: BaseException) -> None:
        event, message = item
        reason = "retries_exhausted" if isinstance(exc, TRANSIENT_ERRORS) else "handler_failed"
        log.error(
            "scoring dead-letters event %s: %s",
            event.id,
            reason,
            extra={"event_id": event.id, "error": type(exc).__name__},
        )
        await self._dead_letter(message, reason=reason, text=f"{type(exc).__name__}: {exc}")

    async def _dead_letter(self, message: Any, *, reason: str, text: str) -> None:
        headers = [
            *count_attempt(message.headers or ()),  # x-error-attempts + 1 (a replay carries it)
            (topics.DLT_ERROR_REASON, reason.encode()),
            (topics.DLT_ERROR_MESSAGE, text[:2000].encode()),
            (topics.DLT_ERROR_TOPIC, str(message.topic).encode()),
            (topics.DLT_ERROR_PARTITION, str(message.partition).encode()),
            (topics.DLT_ERROR_OFFSET, str(message.offset).encode()),
            (topics.DLT_ERROR_CONSUMER, self.settings.faust_app_id.encode()),
            (topics.DLT_ERROR_TIME, datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer().send_and_wait(
            dead_letter_topic(message.topic), value=message.value, key=message.key, headers=headers
        )
        self.dead_lettered += 1
        observe_consumed(SERVICE, message.topic, "dead_lettered")
