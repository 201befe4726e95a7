"""Producing and reading records in tests, polling with deadlines (never sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from crm_contracts import KafkaRecord


async def produce(bootstrap: str, topic: str, records: Sequence[KafkaRecord]) -> None:
    """Send records and wait for the broker's acknowledgement of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord]], bool],
    *,
    timeout: float = 20.0,
) -> list[ConsumerRecord]:
    """Read `topic` from the beginning until `done(records)` or the deadline (then fail)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done(records):
            if loop.time() > deadline:
                raise AssertionError(
                    f"gave up after {timeout}s reading {topic}: {len(records)} records so far"
                )
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.02
) -> Any:
    """Poll an async check until it returns something truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def header(record: ConsumerRecord, name: str) -> str | None:
    """A header's value as text."""
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None
