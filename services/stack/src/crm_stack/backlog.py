"""How many records each consumer group has not consumed yet, measured so that it is right
on the embedded broker too.

Lag is usually end offset minus committed offset, but the embedded broker's end offsets
(ListOffsets "latest") are wrong after batched produces (DESIGN.md, Runtime). So the
records are read instead: a consumer of no group fetches each partition from the group's
committed offset (or from the beginning when the group has committed nothing there, as
our consumers then start) and counts what comes back until its position reaches the high
watermark of a fetch response. That is the ordinary way on Apache Kafka as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from crm_contracts.topics import DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class Backlog:
    """Records of one topic that one consumer group has not committed yet."""

    group: str
    topic: str
    records: int


@dataclass
class BacklogReport:
    """The backlog of every group watched, and the committed offsets it was measured from."""

    backlog: list[Backlog] = field(default_factory=list)
    committed: dict[tuple[str, str, int], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(b.records for b in self.backlog)


class MeasureError(RuntimeError):
    """The backlog could not be measured (broker unreachable, fetches not answered)."""


async def measure_backlog(
    bootstrap_servers: str,
    groups: Mapping[str, Iterable[str]],
    *,
    group_prefixes: Iterable[str] = (),
    timeout: float = 15.0,
) -> BacklogReport:
    """Unconsumed records per (group, topic): `groups` maps a group to the topics it reads.

    Groups found on the broker whose name starts with one of `group_prefixes` are
    measured too, on the topics they have committed offsets for.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="crmctl-drain", request_timeout_ms=5000
    )
    await admin.start()
    try:
        partitions = await _partitions(admin)
        watched = {group: set(names) for group, names in groups.items()}
        prefixes = tuple(group_prefixes)
        for group, _ in await admin.list_consumer_groups():
            if prefixes and str(group).startswith(prefixes):
                watched.setdefault(str(group), set())
        report = BacklogReport()
        starts: dict[str, dict[TopicPartition, int | None]] = {}
        every = [tp for tps in partitions.values() for tp in tps]
        for group, names in watched.items():
            offsets = await admin.list_consumer_group_offsets(group, partitions=every)
            committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
            for tp, offset in committed.items():
                report.committed[(group, tp.topic, tp.partition)] = offset
            read = (names & partitions.keys()) | {tp.topic for tp in committed}
            starts[group] = {tp: committed.get(tp) for name in read for tp in partitions[name]}
    finally:
        await admin.close()
    ends = await _fetch_ends(bootstrap_servers, starts, timeout=timeout)
    for group, tps in sorted(starts.items()):
        per_topic: dict[str, int] = {}
        for tp, start in tps.items():
            first, highwater = ends[tp]
            left = highwater - max(start or 0, first) if first is not None else 0
            if left > 0:
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + left
        report.backlog += [Backlog(group, t, n) for t, n in sorted(per_topic.items())]
    return report


async def _partitions(admin: AIOKafkaAdminClient) -> dict[str, list[TopicPartition]]:
    """Every topic a service could consume (no dead-letter or internal topic) -> partitions."""
    names = [
        t
        for t in await admin.list_topics()
        if not t.endswith(DEAD_LETTER_SUFFIX) and not t.startswith("__")
    ]
    described = await admin.describe_topics(names) if names else []
    return {
        t["topic"]: [TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]]
        for t in described
    }


async def _fetch_ends(
    bootstrap_servers: str,
    starts: Mapping[str, Mapping[TopicPartition, int | None]],
    *,
    timeout: float,
) -> dict[TopicPartition, tuple[int | None, int]]:
    """Per partition, fetched from the lowest start of any group: the offset of the first
    record that came back (None: none did) and the high watermark of the fetch response.

    A fetch's high watermark is right on the embedded broker (only ListOffsets is wrong),
    and a partition is known once one fetch answered for it: records came back, or its
    position is at the high watermark. Nothing more is read, so measuring stays cheap
    while the services work through a large backlog.
    """
    wanted: dict[TopicPartition, list[int | None]] = {}
    for tps in starts.values():
        for tp, start in tps.items():
            wanted.setdefault(tp, []).append(start)
    lowest = {
        tp: None if None in found else min(s for s in found if s is not None)
        for tp, found in wanted.items()
    }
    ends: dict[TopicPartition, tuple[int | None, int]] = {}
    if not lowest:
        return ends
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        client_id="crmctl-drain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=64 * 1024,
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    try:
        consumer.assign(list(lowest))
        for tp, start in lowest.items():
            if start is not None:
                consumer.seek(tp, start)
        unstarted = [tp for tp, start in lowest.items() if start is None]
        if unstarted:
            await consumer.seek_to_beginning(*unstarted)  # one request, not one per partition
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = set(lowest)
        while pending:
            if loop.time() > deadline:
                raise MeasureError(
                    f"the broker did not answer fetches of {len(pending)} partitions "
                    f"within {timeout:.0f}s"
                )
            batch = await consumer.getmany(*pending, timeout_ms=200, max_records=len(pending))
            for tp, records in batch.items():
                highwater = consumer.highwater(tp)
                if records and tp in pending and highwater is not None:
                    ends[tp] = (records[0].offset, highwater)
                    pending.discard(tp)
                    consumer.pause(tp)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    ends[tp] = (None, highwater)
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return ends
