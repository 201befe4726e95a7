"""Bare transport: an aiokafka producer and consumer on the same broker and partition count.

With the kit's own client settings (the same the services use): messages per second of a
backlog of raw-sized messages, consumed by one consumer; and the latency of one hop
(publish call -> consumer has it) at a fixed rate. No database, no decoding: the floor
under everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.tracker import percentiles
from crm_contracts import TopicSpec
from crm_kit.kafka import consumer_options, delete_topics, ensure_topics, producer_options
from crm_kit.settings import ServiceSettings

PAYLOAD = 400  # bytes, about a raw interaction with its headers


async def measure(
    bootstrap: str, *, partitions: int, burst: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Throughput of a backlog and one-hop latency at `rate`, on a topic of its own."""
    topic = f"bench.transport.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, "k", partitions, "delete", (), "bench")])
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(**producer_options(settings, client_id="bench-transport"))
    options = consumer_options(settings, group_id="unused", client_id="bench-transport")
    options.pop("group_id")
    consumer = AIOKafkaConsumer(**options)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        throughput = await _burst(producer, consumer, topic, burst)
        latency = await _paced(producer, consumer, topic, rate, seconds)
    finally:
        await consumer.stop()
        await producer.stop()
        await delete_topics(bootstrap, [topic])
    return {
        "client": "aiokafka with the kit's settings",
        "partitions": partitions,
        "payload_bytes": PAYLOAD,
        **throughput,
        **latency,
    }


async def _burst(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str, count: int
) -> dict[str, Any]:
    payload = b"x" * PAYLOAD
    started = time.monotonic()

    async def produce() -> float:
        futures = [
            await producer.send(topic, payload, key=str(i % 997).encode()) for i in range(count)
        ]
        await asyncio.gather(*futures)
        return time.monotonic() - started

    task = asyncio.create_task(produce())
    received = 0
    deadline = started + 120
    while received < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200, max_records=5000)
        received += sum(len(r) for r in batch.values())
    produce_seconds = await task
    seconds = time.monotonic() - started
    return {
        "burst_messages": count,
        "produced_per_s": round(count / produce_seconds),
        "messages_per_s": round(received / seconds),
    }


async def _paced(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str, rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    total = int(rate * seconds)
    padding = b"x" * (PAYLOAD - 8)

    async def read() -> None:
        while len(latencies) < total:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                latencies.extend(now - struct.unpack("d", r.value[:8])[0] for r in records)

    reader = asyncio.create_task(read())
    started = time.monotonic()
    for i in range(total):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await producer.send(topic, struct.pack("d", time.monotonic()) + padding, key=b"%d" % i)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, timeout=60)
    latencies = [x for x in latencies if 0 <= x < 60]  # burst leftovers carry no send time
    return {
        "paced_rate_per_s": rate,
        "paced_seconds": seconds,
        "one_hop_ms": percentiles(latencies),
    }
