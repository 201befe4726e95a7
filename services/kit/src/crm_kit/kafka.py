"""aiokafka clients with every delivery setting explicit, and topic administration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner, murmur2

from crm_contracts import TopicSpec
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)


class KeyHashPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client), with the hash of
    recent keys remembered: murmur2 is pure Python (~4 us a key) and one contact's key comes
    back with each of its events. The partition chosen is the default partitioner's."""

    def __init__(self, *, remembered: int = 16_384) -> None:
        self._remembered = remembered
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._remembered:
                self._hashes.clear()  # cheaper than an LRU; the hot keys come back at once
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def producer_options(settings: ServiceSettings, *, client_id: str) -> dict[str, Any]:
    """Producer settings: nothing acknowledged before every in-sync replica has it."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        # Idempotence needs broker support: on for Apache Kafka, off for the embedded
        # broker (its InitProducerId fails). Consumers dedupe by event id either way.
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "max_request_size": 2 * 1024 * 1024,
        "request_timeout_ms": 30_000,
        "retry_backoff_ms": 100,
        "metadata_max_age_ms": 60_000,
        "compression_type": None,
        "partitioner": KeyHashPartitioner(),
    }


def consumer_options(settings: ServiceSettings, *, group_id: str, client_id: str) -> dict[str, Any]:
    """Consumer settings: offsets committed by us, after the database commit."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_uncommitted",  # no producer of ours uses transactions
        "max_poll_records": settings.kafka_max_poll_records,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "max_partition_fetch_bytes": 1024 * 1024,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": 300_000,
        "rebalance_timeout_ms": settings.kafka_session_timeout_ms,
        "request_timeout_ms": 40_000,
        "retry_backoff_ms": 100,
        "metadata_max_age_ms": 60_000,
        "check_crcs": True,
    }


async def start_producer(settings: ServiceSettings, *, client_id: str) -> AIOKafkaProducer:
    """A started producer."""
    producer = AIOKafkaProducer(**producer_options(settings, client_id=client_id))
    await producer.start()
    return producer


def new_consumer(settings: ServiceSettings, *, group_id: str, client_id: str) -> AIOKafkaConsumer:
    """A consumer (not started, not subscribed)."""
    return AIOKafkaConsumer(**consumer_options(settings, group_id=group_id, client_id=client_id))


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet, with their partitions and cleanup policy.

    Topics are always created explicitly: the embedded broker would auto-create
    them with 4 partitions on first use.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="crm-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=await _replication_factor(admin),
                        topic_configs={"cleanup.policy": spec.cleanup_policy},
                    )
                    for spec in missing
                ]
            )
        return [spec.name for spec in missing]
    finally:
        await admin.close()


async def _replication_factor(admin: AIOKafkaAdminClient) -> int:
    cluster = await admin.describe_cluster()
    return min(3, max(1, len(cluster.get("brokers", []))))


async def delete_topics(bootstrap_servers: str, names: list[str]) -> None:
    """Delete topics (tests; the embedded broker keeps everything in memory)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="crm-admin")
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def wait_for_broker(bootstrap_servers: str, *, timeout: float = 20.0) -> None:
    """Return once the broker answers a metadata request; raise TimeoutError otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id="crm-admin", request_timeout_ms=2000
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # the broker may not listen yet
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no Kafka broker answered at {bootstrap_servers}: {last}")
