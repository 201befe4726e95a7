"""Scoring benchmark: latency from a resolved interaction to its score change, and throughput.

    .venv/bin/python -m bench.scoring_latency [--events 300] [--rate 50] [--burst 5000]

Starts the embedded broker and Postgres on free ports (or uses KAFKA_BOOTSTRAP_SERVERS and
CRM_DATABASE_URL, a URL to a server's maintenance database), runs one scoring worker
in this process, and measures:

1. latency: `--events` resolved interactions, each for a new contact (so each one yields a
   crm.score.changed), published one at a time at `--rate` per second; for each, the time
   from the publish call to the moment a separate consumer receives its score change;
2. throughput: `--burst` interactions (for `--burst / 5` contacts) published before a fresh
   worker starts; the time that worker takes to apply them all (events per second, one
   worker) and until the last score change is consumed.

With `--stack`, it measures through a running back end instead (`crmctl up`, or
`make up`; point KAFKA_BOOTSTRAP_SERVERS at its broker): `--events` raw interactions published
to crm.interactions.raw.v1 as a channel would (structured CloudEvents, a new email each), and
for each the time until its crm.score.changed is consumed, matched by the correlation id that
contacts and scoring carry over from the raw event (ingest -> contacts -> scoring hops).

Writes the figures as JSON to bench/results/scoring-<time>.json and prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_contracts import contacts as ct
from crm_contracts import encode_binary, new_event
from crm_contracts import interactions as it
from crm_contracts.base import Channel, Money
from crm_kit.db import drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, wait_for_broker
from crm_scoring.app import create_app, topic_specs
from crm_scoring.settings import ScoringSettings
from crm_stack.ephemeral import ephemeral_servers

RESULTS = Path(__file__).parent / "results"
KINDS = [
    ("page_view", Channel.WEB, None),
    ("email_clicked", Channel.EMAIL, None),
    ("purchase", Channel.STORE, "49.90"),
    ("complaint", Channel.PHONE, None),
    ("purchase", Channel.WEB, "120.00"),
]


def resolved(contact_id: str, index: int) -> Any:
    """A resolved interaction for a contact, as the contacts service publishes it."""
    kind, channel, amount = KINDS[index % len(KINDS)]
    data = it.InteractionResolved(
        interaction_id=f"raw-{uuid.uuid4().hex}",
        interaction_source="urn:channel:bench",
        contact_id=contact_id,
        channel=channel,
        kind=kind,
        value=Money(amount=Decimal(amount), currency="EUR") if amount else None,
        stage=ct.LifecycleStage.PROSPECT,
        previous_stage=ct.LifecycleStage.PROSPECT,
        stage_changed=False,
    )
    return new_event(it.INTERACTION_RESOLVED, data, source="urn:crm:contacts")


@contextlib.asynccontextmanager
async def scoring(bootstrap: str, admin_dsn: str, name: str) -> AsyncIterator[Any]:
    """Settings, database and topics of one run; dropped afterwards."""
    database = f"bench_{name}"
    await ensure_database(admin_dsn, database)
    settings = ScoringSettings(
        environment="test",
        database_url=with_database(admin_dsn, database),
        kafka_bootstrap_servers=bootstrap,
        faust_app_id=f"bench-scoring-{name}",
        faust_data_dir=Path(tempfile.gettempdir()) / "crm-scoring-bench-faust",
        interactions_topic=f"bench-interactions-{name}",
        cases_topic=f"bench-cases-{name}",
        contacts_topic=f"bench-contacts-{name}",
        privacy_topic=f"bench-privacy-{name}",
        scores_topic=f"bench-scores-{name}",
        scores_current_topic=f"bench-scores-current-{name}",
        topic_partitions=12,
        reevaluate_interval_seconds=0,
        log_level="WARNING",
    )
    try:
        yield settings
    finally:
        with contextlib.suppress(Exception):
            await delete_topics(bootstrap, [s.name for s in topic_specs(settings)])
        await drop_database(admin_dsn, database)


@contextlib.asynccontextmanager
async def worker(settings: ScoringSettings) -> AsyncIterator[Any]:
    """One scoring process's worker (and API app, not served), started and ready."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        service = app.state.worker
        await until(lambda: service.ready, timeout=60)
        yield service


def downstream_consumer(bootstrap: str, *topics: str, group: str) -> AIOKafkaConsumer:
    """A downstream subscriber in a fresh group of its own, from the start of the topics."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"{group}-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


async def change_reader(
    bootstrap: str, topic: str, seen: dict[str, float], ready: asyncio.Event
) -> None:
    """Record when each score change (by cause event id) reaches a downstream consumer."""
    consumer = downstream_consumer(bootstrap, topic, group="bench-reader")
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            ready.set()
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    cause = json.loads(record.value)["cause_event_id"]
                    seen.setdefault(cause, now)
    finally:
        await consumer.stop()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def until(done: Callable[[], bool], *, timeout: float) -> None:
    """Poll `done()` every 5 ms until it holds or `timeout` seconds passed (then go on)."""
    deadline = time.perf_counter() + timeout
    while True:
        if done() or time.perf_counter() > deadline:
            return
        await asyncio.sleep(0.005)


async def measure_latency(
    bootstrap: str, admin_dsn: str, events: int, rate: float
) -> dict[str, Any]:
    """Paced single events, each for a new contact: publish -> score change consumed."""
    async with scoring(bootstrap, admin_dsn, f"lat{uuid.uuid4().hex[:6]}") as settings:
        started_at = time.perf_counter()
        async with worker(settings) as service:
            ready_seconds = time.perf_counter() - started_at
            seen: dict[str, float] = {}
            reader_ready = asyncio.Event()
            reader = asyncio.create_task(
                change_reader(bootstrap, settings.scores_topic, seen, reader_ready)
            )
            await reader_ready.wait()
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
            await producer.start()
            sent: dict[str, float] = {}
            try:
                for i in range(events):
                    contact = f"c-bench-{uuid.uuid4().hex[:12]}"
                    event = resolved(contact, i)
                    record = encode_binary(event, key=contact)
                    sent[event.id] = time.perf_counter()
                    await producer.send_and_wait(
                        settings.interactions_topic,
                        record.value,
                        key=record.key,
                        headers=record.headers,
                    )
                    await asyncio.sleep(1 / rate)
                await until(lambda: len(seen.keys() & sent.keys()) >= events, timeout=30)
            finally:
                await producer.stop()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            latencies = [(seen[i] - sent[i]) * 1000 for i in sent if i in seen]
            return {
                "events": events,
                "rate_per_second": rate,
                "received": len(latencies),
                "worker_ready_seconds": round(ready_seconds, 2),
                "latency_ms": {
                    "p50": round(percentile(latencies, 50), 1),
                    "p90": round(percentile(latencies, 90), 1),
                    "p99": round(percentile(latencies, 99), 1),
                    "max": round(max(latencies), 1),
                    "mean": round(statistics.fmean(latencies), 1),
                },
                "published": service.published,
            }


async def measure_throughput(bootstrap: str, admin_dsn: str, burst: int) -> dict[str, Any]:
    """A backlog applied by one fresh worker: events per second, end to end."""
    async with scoring(bootstrap, admin_dsn, f"thr{uuid.uuid4().hex[:6]}") as settings:
        from crm_kit.kafka import ensure_topics

        await ensure_topics(bootstrap, topic_specs(settings))
        contacts = [f"c-bench-{uuid.uuid4().hex[:12]}" for _ in range(max(burst // 5, 1))]
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
        )
        await producer.start()
        try:
            futures = []
            for i in range(burst):
                contact = contacts[i % len(contacts)]
                record = encode_binary(resolved(contact, i), key=contact)
                futures.append(
                    await producer.send(
                        settings.interactions_topic,
                        record.value,
                        key=record.key,
                        headers=record.headers,
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        seen: dict[str, float] = {}
        reader_ready = asyncio.Event()
        reader = asyncio.create_task(
            change_reader(bootstrap, settings.scores_topic, seen, reader_ready)
        )
        try:
            async with worker(settings) as service:
                started = time.perf_counter()
                await until(lambda: service.applied >= burst, timeout=300)
                applied_seconds = time.perf_counter() - started
                published = service.published
                await until(lambda: len(seen) >= published, timeout=60)
                consumed_seconds = time.perf_counter() - started
                applied = service.applied
                batches = service.batches
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return {
            "events": burst,
            "contacts": len(contacts),
            "applied": applied,
            "score_changes_published": published,
            "apply_seconds": round(applied_seconds, 2),
            "events_per_second_per_worker": round(applied / applied_seconds, 1),
            "mean_batch_size": round(applied / max(batches, 1), 1),
            "seconds_until_last_change_consumed": round(consumed_seconds, 2),
        }


async def measure_stack(bootstrap: str, events: int, rate: float) -> dict[str, Any]:
    """Raw interactions into a running back end -> score changes consumed (by correlation id)."""
    from crm_contracts import decode_json, encode_structured, topics

    seen: dict[str, float] = {}
    resolved_at: dict[str, float] = {}
    consumer = downstream_consumer(
        bootstrap, topics.SCORES, topics.INTERACTIONS, group="bench-stack"
    )

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batch.items():
                arrivals = seen if tp.topic == topics.SCORES else resolved_at
                for record in records:
                    correlation = dict(record.headers).get("ce_correlationid", b"").decode()
                    arrivals.setdefault(correlation, now)

    await consumer.start()
    await until(lambda: bool(consumer.assignment()), timeout=30)
    reader = asyncio.create_task(read())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for i in range(events):
            kind, channel, amount = KINDS[i % len(KINDS)]
            data: dict[str, Any] = {
                "channel": channel.value,
                "kind": kind,
                "identity": {"email": f"bench-{uuid.uuid4().hex[:12]}@example.com"},
            }
            if amount:
                data["value"] = {"amount": amount, "currency": "EUR"}
            event = decode_json(
                {
                    "specversion": "1.0",
                    "id": f"bench-{uuid.uuid4().hex}",
                    "source": "urn:channel:bench",
                    "type": "crm.interaction.recorded",
                    "time": datetime.now(UTC).isoformat(),
                    "data": data,
                }
            )
            record = encode_structured(event, key=data["identity"]["email"])
            sent[event.id] = time.perf_counter()
            await producer.send_and_wait(
                topics.INTERACTIONS_RAW, record.value, key=record.key, headers=record.headers
            )
            await asyncio.sleep(1 / rate)
        await until(lambda: len(seen.keys() & sent.keys()) >= events, timeout=30)
    finally:
        await producer.stop()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await consumer.stop()
    latencies = [(seen[i] - sent[i]) * 1000 for i in sent if i in seen]
    if not latencies:
        raise SystemExit("no score change came back: is the whole back end running?")
    contacts_hop = [(resolved_at[i] - sent[i]) * 1000 for i in sent if i in resolved_at]
    scoring_hop = [
        (seen[i] - resolved_at[i]) * 1000 for i in sent if i in seen and i in resolved_at
    ]
    return {
        "benchmark": "raw interaction (crm.interactions.raw.v1) -> crm.score.changed consumed",
        "time": datetime.now(UTC).isoformat(),
        "events": events,
        "rate_per_second": rate,
        "received": len(latencies),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(max(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "raw_to_resolved_ms (contacts)": {
            "p50": round(percentile(contacts_hop, 50), 1),
            "p99": round(percentile(contacts_hop, 99), 1),
        },
        "resolved_to_score_change_ms (scoring)": {
            "p50": round(percentile(scoring_hop, 50), 1),
            "p99": round(percentile(scoring_hop, 99), 1),
        },
    }


async def run(args: argparse.Namespace, bootstrap: str, admin_dsn: str) -> dict[str, Any]:
    await wait_for_broker(bootstrap)
    latency = await measure_latency(bootstrap, admin_dsn, args.events, args.rate)
    throughput = await measure_throughput(bootstrap, admin_dsn, args.burst) if args.burst else None
    return {
        "benchmark": "scoring: resolved interaction -> crm.score.changed consumed",
        "time": datetime.now(UTC).isoformat(),
        "broker": "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "embedded (Tansu)",
        "fetch_max_wait_ms": ScoringSettings().kafka_fetch_max_wait_ms,
        "latency": latency,
        "throughput": throughput,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300, help="events for the latency run")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (latency)")
    parser.add_argument("--burst", type=int, default=5000, help="backlog size (0: skip)")
    parser.add_argument(
        "--stack", action="store_true", help="raw interactions through a running back end"
    )
    args = parser.parse_args()
    if args.stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        return write(asyncio.run(measure_stack(bootstrap, args.events, args.rate)), "scoring-stack")
    with (
        tempfile.TemporaryDirectory(prefix="scoring-bench-") as workdir,
        ephemeral_servers(
            Path(workdir),
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            admin_dsn=os.environ.get("CRM_DATABASE_URL"),
        ) as (bootstrap, admin_dsn),
    ):
        results = asyncio.run(run(args, bootstrap, admin_dsn))
    return write(results, "scoring")


def write(results: dict[str, Any], name: str) -> int:
    """Save the results in bench/results/ and print them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
