"""Replay dead letters: put the original records of `<topic>.dlt` back on `<topic>`.

A replay takes what was on the dead-letter topic when it started, then stops. A replayed
event that fails again is dead-lettered anew, after the start, and the replay does not
read it back: in each partition it stops at the first record newer than its start (the
record timestamp), and it stops altogether once no record has come for `idle_seconds`
(end offsets cannot be trusted on the embedded broker, so they play no part).

Every dead letter says how many times its event has failed (`x-error-attempts`; 1 when
the header is missing). The replay carries that count on the record it republishes, the
consumer runner counts one more when the event fails again (`count_attempt`), and events
that have failed `max_attempts` times are held back: they stay on the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from crm_contracts import dead_letter_topic, topics
from crm_kit.kafka import new_consumer, start_producer
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

ERROR_HEADER_PREFIX = "x-error-"
DEFAULT_MAX_ATTEMPTS = 5
SAMPLES_PER_REASON = 10
Headers = Sequence[tuple[str, bytes]]


def failed_attempts(headers: Iterable[tuple[str, bytes]]) -> int:
    """How many times a record has failed, from its `x-error-attempts` (0 when absent)."""
    for key, value in headers:
        if key == topics.DLT_ERROR_ATTEMPTS:
            try:
                return max(0, int(value.decode()))
            except (UnicodeDecodeError, ValueError):
                return 0
    return 0


def count_attempt(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers of a record that has just failed once more: `x-error-attempts` + 1."""
    headers = list(headers)
    attempts = failed_attempts(headers) + 1
    kept = [(k, v) for k, v in headers if k != topics.DLT_ERROR_ATTEMPTS]
    return [*kept, (topics.DLT_ERROR_ATTEMPTS, str(attempts).encode())]


class DeadLetterTopicMissing(LookupError):
    """The topic has no dead-letter topic on this broker."""


@dataclass
class ReplayResult:
    """What a replay did (or, in a dry run, would do)."""

    replayed: int = 0
    skipped: int = 0  # another x-error-reason than the one asked for
    held_back: int = 0  # failed max_attempts times already
    incomplete: int = 0  # dead-lettered without its value (too large): cannot go back
    by_reason: Counter[str] = field(default_factory=Counter)  # replayed, per reason
    held_back_by_reason: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)  # event ids, per reason
    ended: str = ""  # caught up | idle | limit


def replay_group(topic: str, reason: str | None) -> str:
    """The consumer group that keeps a replay's progress (one per topic and reason)."""
    return f"crm-dlt-replay.{topic}" + (f".{reason}" if reason else "")


async def replay_dead_letters(
    settings: ServiceSettings,
    topic: str,
    *,
    reason: str | None = None,
    limit: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dry_run: bool = False,
    idle_seconds: float = 2.0,
    group_id: str | None = None,
    on_progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Republish the dead letters of `topic` that were there at the start (one reason, or all).

    Progress is committed in a consumer group per topic and reason, so running it again
    does not replay a record twice; a dry run reads from the same place and commits nothing.
    """
    started_ms = int(time.time() * 1000)
    replay = _Replay(
        topic, reason=reason, limit=limit, max_attempts=max_attempts, started_ms=started_ms
    )
    consumer = new_consumer(
        settings, group_id=group_id or replay_group(topic, reason), client_id="crm-dlt-replay"
    )
    producer = None if dry_run else await start_producer(settings, client_id="crm-dlt-replay")
    try:
        await consumer.start()
        partitions = await _partitions(consumer, dead_letter_topic(topic))
        consumer.assign(sorted(partitions, key=lambda tp: tp.partition))
        target = consumer.partitions_for_topic(topic) or set()
        await replay.run(consumer, producer, partitions, target, idle_seconds, on_progress)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    log.info(
        "replayed %d dead letters of %s (held back %d, skipped %d)",
        replay.result.replayed,
        topic,
        replay.result.held_back,
        replay.result.skipped,
    )
    return replay.result


class _Replay:
    """The decisions of one replay: which record goes back, which waits, where to stop."""

    def __init__(
        self,
        topic: str,
        *,
        reason: str | None,
        limit: int | None,
        max_attempts: int,
        started_ms: int,
    ) -> None:
        self.topic = topic
        self.reason = reason
        self.limit = limit
        self.max_attempts = max_attempts
        self.started_ms = started_ms
        self.result = ReplayResult()

    async def run(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer | None,
        partitions: set[TopicPartition],
        target: set[int],
        idle_seconds: float,
        on_progress: Callable[[ReplayResult], None] | None,
    ) -> None:
        """Read the partitions until each is caught up with the start (or idle, or the limit)."""
        loop = asyncio.get_running_loop()
        last_record = last_progress = loop.time()
        while partitions:
            if self.limit_reached():
                self.result.ended = "limit"
                return
            if loop.time() - last_record >= idle_seconds:
                self.result.ended = "idle"
                return
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            sends: list[asyncio.Future[object]] = []
            commits: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                last_record = loop.time()
                upto, caught_up = await self.take(records, producer, sends, target)
                if upto is not None:
                    commits[tp] = upto
                if caught_up:
                    partitions.discard(tp)
            await asyncio.gather(*sends)  # acknowledged before the progress moves past them
            if commits and producer is not None:
                await consumer.commit(commits)
            if on_progress is not None and loop.time() - last_progress >= 1.0:
                on_progress(self.result)
                last_progress = loop.time()
        self.result.ended = "caught up"

    def limit_reached(self) -> bool:
        return self.limit is not None and self.result.replayed >= self.limit

    def is_new(self, record: ConsumerRecord) -> bool:
        # Same-millisecond records count as old: a dead letter of our own replay needs a
        # full round trip through a consumer, which takes far longer than that.
        return int(record.timestamp) > self.started_ms

    async def take(
        self,
        records: Sequence[ConsumerRecord],
        producer: AIOKafkaProducer | None,
        sends: list[asyncio.Future[object]],
        target: set[int],
    ) -> tuple[int | None, bool]:
        """Handle the old records of one partition's batch.

        Returns the offset to commit (None: nothing taken) and whether the partition is
        done (a record newer than the start came: everything after it is newer too).
        """
        upto = None
        for record in records:
            if self.is_new(record):
                return upto, True
            if self.limit_reached():
                break
            await self._decide(record, producer, sends, target)
            upto = record.offset + 1
        return upto, False

    async def _decide(
        self,
        record: ConsumerRecord,
        producer: AIOKafkaProducer | None,
        sends: list[asyncio.Future[object]],
        target: set[int],
    ) -> None:
        headers: Headers = list(record.headers or ())
        found = dict(headers)
        reason = found.get(topics.DLT_ERROR_REASON, b"").decode(errors="replace") or "unknown"
        if self.reason is not None and reason != self.reason:
            self.result.skipped += 1
            return
        if topics.DLT_ERROR_DROPPED in found:
            # Too large to dead-letter whole: only its headers and a digest are here. The
            # original record is still on the source topic at x-error-offset.
            self.result.incomplete += 1
            return
        attempts = max(1, failed_attempts(headers))
        if attempts >= self.max_attempts:
            self.result.held_back += 1
            self.result.held_back_by_reason[reason] += 1
            return
        self.result.replayed += 1
        self.result.by_reason[reason] += 1
        samples = self.result.samples.setdefault(reason, [])
        if len(samples) < SAMPLES_PER_REASON:
            event_id = found.get("ce_id", b"").decode(errors="replace")
            samples.append(event_id or f"{record.topic}/{record.partition}@{record.offset}")
        if producer is None:
            return
        original = [(k, v) for k, v in headers if not k.startswith(ERROR_HEADER_PREFIX)]
        original.append((topics.DLT_ERROR_ATTEMPTS, str(attempts).encode()))
        # send() only queues (in call order, so per partition in DLT order); the caller
        # waits for every acknowledgement before it commits.
        sends.append(
            await producer.send(
                self.topic,
                value=record.value,
                key=record.key,
                headers=original,
                partition=_original_partition(found, target),
            )
        )


async def _partitions(consumer: AIOKafkaConsumer, dlt: str) -> set[TopicPartition]:
    await consumer.topics()  # metadata of every topic, so that the DLT's partitions are known
    numbers = consumer.partitions_for_topic(dlt)
    if not numbers:
        raise DeadLetterTopicMissing(f"there is no topic {dlt}")
    return {TopicPartition(dlt, n) for n in numbers}


def _original_partition(headers: dict[str, bytes], target: set[int]) -> int | None:
    """The partition the record was dead-lettered from, so that it rejoins its key's order.

    The original producer's partitioner may not be ours (librdkafka's default is not),
    so hashing the key again could put the event on another partition than its key's.
    """
    try:
        partition = int(headers.get(topics.DLT_ERROR_PARTITION, b"").decode())
    except ValueError:
        return None
    return partition if partition in target else None
