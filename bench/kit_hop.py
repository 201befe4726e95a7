"""Benchmark: one hop through the kit, outbox commit -> relay -> broker -> consumer commit.

    .venv/bin/python -m bench.kit_hop [--events 500] [--rate 200]

Starts its own embedded Postgres and broker (or uses KAFKA_BOOTSTRAP_SERVERS /
CRM_DATABASE_URL), writes events one transaction each through the outbox at a steady
rate, and has a ConsumerRunner apply them in another database. The latency of an
event is (consumer transaction time - event time), where the event time is taken just
before the producing transaction commits. Writes bench/results/kit_hop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from crm_contracts import TopicSpec, dead_letter_topic, new_event
from crm_contracts.privacy import PRIVACY_ERASURE_REQUESTED, ErasureRequested
from crm_kit.consumer import ConsumerRunner, Delivery
from crm_kit.db import create_pool, ensure_database, with_database
from crm_kit.kafka import ensure_topics, start_producer, wait_for_broker
from crm_kit.migrations import migrate
from crm_kit.outbox import OutboxRelay, enqueue, event_message
from crm_kit.settings import ServiceSettings
from crm_stack.ephemeral import ephemeral_servers

RESULTS = Path(__file__).resolve().parent / "results"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(bootstrap: str, admin_dsn: str, events: int, rate: float) -> dict[str, object]:
    await wait_for_broker(bootstrap)
    topic = f"bench.hop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        bootstrap,
        [TopicSpec(n, "k", 12, "delete", (), "bench") for n in (topic, dead_letter_topic(topic))],
    )
    dsns = {}
    for side in ("producer", "consumer"):
        name = f"bench_{side}_{uuid.uuid4().hex[:6]}"
        await ensure_database(admin_dsn, name)
        dsns[side] = with_database(admin_dsn, name)
        await migrate(dsns[side], "bench", None)
    settings = ServiceSettings(
        environment="test", database_url=dsns["consumer"], kafka_bootstrap_servers=bootstrap
    )
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        now = datetime.now(UTC)
        for d in deliveries:
            latencies.append((now - d.event.time).total_seconds() * 1000)
        if len(latencies) >= events:
            done.set()

    producer_pool = await create_pool(dsns["producer"])
    consumer_pool = await create_pool(dsns["consumer"])
    producer = await start_producer(settings, client_id="bench")
    relay = OutboxRelay(dsn=dsns["producer"], pool=producer_pool, producer=producer)
    runner = ConsumerRunner(
        name=f"bench-{uuid.uuid4().hex[:6]}",
        topics=[topic],
        settings=settings,
        pool=consumer_pool,
        producer=producer,
        handler=handler,
        service="bench",
    )
    relay.start()
    await runner.start()
    while not runner.ready:  # noqa: ASYNC110 - joining the group has no event to wait on
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    for i in range(events):
        event = new_event(
            PRIVACY_ERASURE_REQUESTED,
            ErasureRequested(contact_id=f"c-{i % 50}", request_id=f"r-{i}", requested_by="bench"),
            source="urn:crm:bench",
        )
        async with producer_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [event_message(topic, event, key=f"c-{i % 50}")])
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
    await asyncio.wait_for(done.wait(), timeout=120)
    elapsed = time.perf_counter() - started
    await runner.stop()
    await relay.stop()
    await producer.stop()
    await producer_pool.close()
    await consumer_pool.close()
    return {
        "benchmark": "kit_hop",
        "events": events,
        "offered_rate_per_s": rate,
        "elapsed_s": round(elapsed, 3),
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p90": round(_percentile(latencies, 0.90), 2),
            "p99": round(_percentile(latencies, 0.99), 2),
            "max": round(max(latencies), 2),
        },
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "broker": "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "embedded",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0, help="events offered per second")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp,
        ephemeral_servers(
            Path(tmp),
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            admin_dsn=os.environ.get("CRM_DATABASE_URL"),
        ) as (bootstrap, admin_dsn),
    ):
        result = asyncio.run(run(bootstrap, admin_dsn, args.events, args.rate))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kit_hop.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
