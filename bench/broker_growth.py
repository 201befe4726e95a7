"""Benchmark: the embedded broker's cost per request as a topic fills.

    .venv/bin/python -m bench.broker_growth [--rounds 8] [--grow 10000]

Starts a Tansu broker of its own on a free port, then repeats: 200 produce requests of
10-record batches to a 3-partition topic, a consumer group reading them back, and the
broker's CPU for each (from /proc); then `--grow` more batches on the same topic. Prints a
line per round and writes bench/results/broker_growth.json. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.stack import cpu_seconds
from crm_contracts import TopicSpec
from crm_kit.kafka import consumer_options, ensure_topics, producer_options, wait_for_broker
from crm_kit.settings import ServiceSettings
from crm_stack.broker import EmbeddedBroker
from crm_stack.ports import free_port

RESULTS = Path(__file__).resolve().parent / "results"
TOPIC = "bench.broker-growth"
PARTITIONS = 3
VALUE = b"x" * 400


async def _produce(producer: AIOKafkaProducer, batches: int) -> None:
    futures = []
    for i in range(batches):
        batch = producer.create_batch()
        for _ in range(10):
            batch.append(key=None, value=VALUE, timestamp=None)
        futures.append(await producer.send_batch(batch, TOPIC, partition=i % PARTITIONS))
    await asyncio.gather(*futures)


async def _consume(consumer: AIOKafkaConsumer, records: int) -> None:
    got = 0
    while got < records:
        fetched = await consumer.getmany(timeout_ms=500, max_records=5000)
        got += sum(len(batch) for batch in fetched.values())
        if fetched:
            await consumer.commit()


async def run(rounds: int, grow: int, folder: Path) -> list[dict[str, float]]:
    broker = EmbeddedBroker(port=free_port(), log_path=folder / "broker.log")
    proc, _ = broker.start()
    try:
        settings = ServiceSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
        await wait_for_broker(broker.bootstrap_servers)
        spec = TopicSpec(TOPIC, "none", PARTITIONS, "delete", (), "bench: broker growth")
        await ensure_topics(broker.bootstrap_servers, [spec])
        producer = AIOKafkaProducer(**producer_options(settings, client_id="bench-growth"))
        consumer = AIOKafkaConsumer(
            TOPIC, **consumer_options(settings, group_id="bench-growth", client_id="bench-growth")
        )
        await producer.start()
        await consumer.start()
        rows: list[dict[str, float]] = []
        try:
            for round_ in range(rounds):
                cpu, started = cpu_seconds(proc.pid), time.perf_counter()
                await _produce(producer, 200)
                produce_ms = (time.perf_counter() - started) * 1000
                produce_cpu_ms = (cpu_seconds(proc.pid) - cpu) * 1000
                cpu, started = cpu_seconds(proc.pid), time.perf_counter()
                await _consume(consumer, 2000)
                row = {
                    "stored_batches": round_ * (grow + 200),
                    "produce_200_ms": round(produce_ms, 1),
                    "produce_200_broker_cpu_ms": round(produce_cpu_ms, 1),
                    "consume_2000_ms": round((time.perf_counter() - started) * 1000, 1),
                    "consume_2000_broker_cpu_ms": round((cpu_seconds(proc.pid) - cpu) * 1000, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                await _produce(producer, grow)
                await _consume(consumer, grow * 10)
        finally:
            await consumer.stop()
            await producer.stop()
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="measurements (default 8)")
    parser.add_argument("--grow", type=int, default=10_000, help="batches added between them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as folder:
        rows = asyncio.run(run(args.rounds, args.grow, Path(folder)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "broker_growth.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
