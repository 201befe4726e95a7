"""The faust worker: one agent takes batches of records and hands them to the kit's pipeline.

The agent subscribes to resolved interactions, cases, contacts and privacy events, takes up
to `batch_max_events` at a time (waiting at most `batch_within_ms`) and hands each batch to
`crm_kit.consumer.BatchPipeline`, the same code every kit consumer runs: decode, dead-letter
what cannot be decoded, claim in the inbox and apply (`handlers.apply_claimed_events`) in ONE
transaction, hold the batch while Postgres or the broker is down, split a failing batch down
to the event that fails and dead-letter it with its reason. Only then does the agent ack the
batch, so faust (`at_least_once`) commits offsets of applied events only. A crash before the
ack redelivers the batch; the inbox skips what was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import faust
from aiokafka import AIOKafkaProducer

from crm_kit.consumer import AfterCommit, BatchPipeline, ConsumerStopping, Delivery, describe
from crm_kit.health import Check
from crm_kit.metrics import observe_batch
from crm_scoring.handlers import ACTS_ON_CONTACTS, Context, apply_claimed_events, reevaluate
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
        ctx: Context,
        *,
        pool: Callable[[], asyncpg.Pool],
        producer: Callable[[], AIOKafkaProducer],
        checks: Callable[[], tuple[Check | None, Check | None]] = lambda: (None, None),
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self._pool = pool
        self._producer = producer
        self._checks = checks  # (database, broker): the runtime's, once it started
        self.app = build_faust_app(settings)
        self.assigned = False
        self._stopping = False
        self._reevaluation: asyncio.Task[None] | None = None
        self._pipeline: BatchPipeline | None = None
        self.published = 0
        self.batches = 0
        self._passive_topics = frozenset({settings.contacts_topic, settings.privacy_topic})
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

    @property
    def pipeline(self) -> BatchPipeline:
        """The kit's batch pipeline this worker hands its batches to (built at start)."""
        assert self._pipeline is not None, "worker not started"
        return self._pipeline

    @property
    def advancing(self) -> bool:
        """Not holding a batch longer than `consumer_stall_seconds`."""
        stalled = self._pipeline.progress.stalled_for() if self._pipeline else 0.0
        return stalled <= self.settings.consumer_stall_seconds

    @property
    def applied(self) -> int:
        """Events applied (duplicates not included)."""
        return self._pipeline.applied if self._pipeline else 0

    @property
    def duplicates(self) -> int:
        """Events skipped because the inbox had them."""
        return self._pipeline.duplicates if self._pipeline else 0

    @property
    def dead_lettered(self) -> int:
        """Records sent to a dead-letter topic."""
        return self._pipeline.dead_lettered if self._pipeline else 0

    async def start(self) -> None:
        """Start faust (joins the group in the background) and the re-evaluation loop."""
        self._stopping = False
        database, broker = self._checks()
        self._pipeline = BatchPipeline(
            name=self.settings.faust_app_id,
            service=SERVICE,
            settings=self.settings,
            pool=self._pool(),
            producer=self._producer(),
            handler=self._apply,
            inbox_consumer=self.settings.inbox_consumer,
            database=database,
            broker=broker,
            ignores=self._ignores,
        )
        await self.app.start()
        if self.settings.reevaluate_interval_seconds > 0:
            self._reevaluation = asyncio.create_task(
                self._reevaluate_forever(), name="scoring-reevaluation"
            )

    async def stop(self) -> None:
        """Finish the batch in hand (or give it up while a dependency is down), leave the group."""
        self._stopping = True
        if self._pipeline is not None:
            self._pipeline.stop()
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
        records = [item.message for item in batch]
        backoff = self.settings.consumer_retry_backoff_ms / 1000
        while True:
            started = time.perf_counter()
            try:
                await self.pipeline.process(records)
                break
            except ConsumerStopping:
                return False  # unacked: redelivered to whoever consumes next
            except Exception as exc:  # outside what the pipeline handles: try the batch again
                log.exception("scoring batch failed; retrying: %s", describe(exc))
                if self._stopping:
                    return False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.consumer_max_backoff_ms / 1000)
        self.pipeline.released(records)
        self.batches += 1
        for topic in {record.topic for record in records}:
            observe_batch(SERVICE, topic, time.perf_counter() - started)
        return True

    def _ignores(self, topic: str, event_type: str) -> bool:
        """Contact and privacy events that change nothing here pass undecoded."""
        return topic in self._passive_topics and event_type not in ACTS_ON_CONTACTS

    async def _apply(self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> AfterCommit:
        out = await apply_claimed_events(conn, [d.event for d in deliveries], self.ctx)

        def committed() -> None:
            out.count()
            self.published += out.published

        return committed
