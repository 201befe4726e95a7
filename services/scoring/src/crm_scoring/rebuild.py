"""Rebuild every score from the event history, with a fresh consumer group.

    python -m crm_scoring rebuild        # with the service stopped (every worker)

Forgets the facts, merges, scores and inbox entries (keeps the published history and the
erased ids, so that an erased contact stays erased), reads the consumed topics from the
beginning in a new consumer group, applies every event through the same handler as the
worker (publishing nothing: those changes went out the first time), stops once no record
came for `idle_seconds` once it has partitions (end offsets cannot be trusted on every
broker), re-scores every contact as of now and republishes its latest scores on the
compacted topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from crm_contracts import CloudEvent, EventDecodeError, decode_record
from crm_kit import subjects
from crm_kit.db import create_pool
from crm_kit.kafka import new_consumer
from crm_kit.migrations import migrate
from crm_scoring import repository as repo
from crm_scoring.app import MIGRATIONS
from crm_scoring.handlers import Context, apply_events, rescore_all
from crm_scoring.model import load_model
from crm_scoring.settings import ScoringSettings

log = logging.getLogger(__name__)


@dataclass
class RebuildResult:
    """What a rebuild did."""

    events: int = 0
    undecodable: int = 0
    contacts: int = 0
    seconds: float = 0.0


async def rebuild(
    settings: ScoringSettings,
    *,
    idle_seconds: float = 3.0,
    clock: Callable[[], datetime] | None = None,
    group_id: str | None = None,
) -> RebuildResult:
    """Rebuild all scoring state from the topics' history (see the module docstring)."""
    started = time.perf_counter()
    ctx = Context(model=load_model(settings.model_path), settings=settings, publish=False)
    if clock is not None:
        ctx.clock = clock
    await migrate(settings.database_url, "scoring", MIGRATIONS)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    result = RebuildResult()
    group = group_id or f"{settings.faust_app_id}.rebuild.{int(time.time())}"
    consumer = new_consumer(settings, group_id=group, client_id="crm-scoring-rebuild")
    consumer.subscribe(settings.input_topics)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await repo.reset_for_rebuild(conn, settings.inbox_consumer)
            await subjects.forget_merges(conn)  # the topics bring them again; erasures stay
        await consumer.start()
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        while loop.time() - last_seen < idle_seconds:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                if not consumer.assignment():
                    last_seen = loop.time()  # idle counts once the group gave us partitions
                continue
            last_seen = loop.time()
            events: list[CloudEvent] = []
            for records in batch.values():
                for record in records:
                    try:
                        events.append(decode_record(record.value, list(record.headers or ())))
                    except EventDecodeError:
                        result.undecodable += 1  # dead-lettered when first consumed
            async with pool.acquire() as conn, conn.transaction():
                await apply_events(conn, events, ctx)
            result.events += len(events)
            await consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
            )
        result.contacts = await rescore_all(pool, replace(ctx, publish=True), as_of=ctx.clock())
    finally:
        await consumer.stop()
        await pool.close()
    result.seconds = time.perf_counter() - started
    log.info(
        "rebuilt scores",
        extra={"events": result.events, "contacts": result.contacts, "seconds": result.seconds},
    )
    return result


def now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)
