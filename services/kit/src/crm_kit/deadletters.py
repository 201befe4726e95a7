"""Replay dead letters: put the original records of `<topic>.dlt` back on `<topic>`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from crm_contracts import dead_letter_topic
from crm_kit.kafka import new_consumer, start_producer
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

ERROR_HEADER_PREFIX = "x-error-"


@dataclass
class ReplayResult:
    """What a replay did."""

    replayed: int = 0
    skipped: int = 0


async def replay_dead_letters(
    settings: ServiceSettings,
    topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    idle_seconds: float = 2.0,
    group_id: str | None = None,
) -> ReplayResult:
    """Republish dead letters of `topic` (optionally only one `x-error-reason`).

    Progress is kept in a consumer group of its own, so running it twice does not
    replay a record twice. Stops after `idle_seconds` without new dead letters
    (end offsets cannot be trusted on every broker, so "idle" marks the end).
    """
    dlt = dead_letter_topic(topic)
    consumer = new_consumer(
        settings, group_id=group_id or f"crm-dlt-replay.{topic}", client_id="crm-dlt-replay"
    )
    consumer.subscribe([dlt])
    producer = await start_producer(settings, client_id="crm-dlt-replay")
    result = ReplayResult()
    loop = asyncio.get_running_loop()
    try:
        await consumer.start()
        last_seen = loop.time()
        while loop.time() - last_seen < idle_seconds:
            if limit is not None and result.replayed >= limit:
                break
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                continue
            last_seen = loop.time()
            offsets = {}
            for tp, records in batch.items():
                for record in records:
                    if limit is not None and result.replayed >= limit:
                        break
                    headers = list(record.headers or ())
                    record_reason = dict(headers).get("x-error-reason", b"").decode()
                    offsets[tp] = record.offset + 1
                    if reason is not None and record_reason != reason:
                        result.skipped += 1
                        continue
                    original = [(k, v) for k, v in headers if not k.startswith(ERROR_HEADER_PREFIX)]
                    await producer.send_and_wait(
                        topic, value=record.value, key=record.key, headers=original
                    )
                    result.replayed += 1
            if offsets:
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()
    log.info("replayed %d dead letters of %s", result.replayed, topic)
    return result
