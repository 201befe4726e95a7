"""The lean reference pipeline: the real back end's hops with no business logic.

    raw topic -> [stage 1] -> resolved topic -> [stage 2] -> score topic

Each stage is a process of its own with a database of its own, built only from the kit's
pieces (`ConsumerRunner`, `outbox.enqueue`, `OutboxRelay`), as the services are: it consumes
batches with getmany, and writes per event one inbox claim, one row and one outbox row in one
transaction (multi-row statements, as the kit does), and its relay publishes them, each a
binary CloudEvent carrying the correlation id on. What the real back end does beyond that is
its business logic; the lean pipeline's throughput is the ceiling of the architecture on
this machine, and the real/lean ratio says how much of it the logic leaves.

    .venv/bin/python -m bench.lean stage --database-url ... --bootstrap ... --input T --output T
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_contracts import TopicSpec, dead_letter_topic
from crm_kit.consumer import ConsumerRunner, Delivery
from crm_kit.db import create_pool, drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, ensure_topics, start_producer
from crm_kit.migrations import migrate
from crm_kit.outbox import OutboxRelay, enqueue, event_message
from crm_kit.settings import ServiceSettings

ROWS_TABLE = """
CREATE TABLE IF NOT EXISTS lean_rows (
    event_id   text        PRIMARY KEY,
    source     text        NOT NULL,
    subject    text,
    data       jsonb       NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
)
"""


async def run_stage(args: argparse.Namespace) -> None:
    """One stage: consume `input`, write a row and an outbox row per event, relay to `output`."""
    await migrate(args.database_url, "bench_lean", None)
    conn = await asyncpg.connect(args.database_url)
    await conn.execute(ROWS_TABLE)
    await conn.close()
    settings = ServiceSettings(
        environment="test",
        database_url=args.database_url,
        kafka_bootstrap_servers=args.bootstrap,
        log_level="WARNING",
    )
    pool = await create_pool(args.database_url)
    producer = await start_producer(settings, client_id=args.name)
    relay = OutboxRelay(dsn=args.database_url, pool=pool, producer=producer)
    source = f"urn:bench:lean:{args.name}"

    async def handler(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        await conn.execute(
            "INSERT INTO lean_rows (event_id, source, subject, data) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])",
            [d.event.id for d in deliveries],
            [d.event.source for d in deliveries],
            [d.event.subject for d in deliveries],
            [d.event.data.model_dump(mode="json") for d in deliveries],
        )
        await enqueue(conn, [_forward(d, source, args.output) for d in deliveries])

    runner = ConsumerRunner(
        name=args.name,
        topics=[args.input],
        settings=settings,
        pool=pool,
        producer=producer,
        handler=handler,
        service="bench-lean",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    relay.start()
    await runner.start()
    while not runner.ready:  # noqa: ASYNC110 - joining the group has no event to wait on
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await stop.wait()
    await runner.stop()
    await relay.stop()
    await producer.stop()
    await pool.close()


def _forward(delivery: Delivery, source: str, topic: str) -> Any:
    event = delivery.event
    out = event.model_copy(
        update={
            "id": str(uuid.uuid4()),
            "source": source,
            "causationid": event.id,
            "correlationid": event.correlationid or event.id,
        }
    )
    key = delivery.key.decode() if delivery.key else None
    return event_message(topic, out, key=key)


@dataclass(frozen=True)
class LeanTopics:
    """The three topics of one lean pipeline."""

    raw: str
    resolved: str
    scores: str

    def specs(self, partitions: int) -> list[TopicSpec]:
        names = [self.raw, self.resolved, self.scores]
        names += [dead_letter_topic(n) for n in names]
        return [TopicSpec(n, "k", partitions, "delete", (), "bench lean") for n in names]


@contextlib.asynccontextmanager
async def lean_pipeline(bootstrap: str, admin_dsn: str, partitions: int) -> Any:
    """Start both stages (processes); yield the topics; stop and drop everything after."""
    run = uuid.uuid4().hex[:8]
    lean = LeanTopics(
        f"bench.lean.{run}.raw", f"bench.lean.{run}.resolved", f"bench.lean.{run}.scores"
    )
    await ensure_topics(bootstrap, lean.specs(partitions))
    databases = [f"bench_lean_{run}_s1", f"bench_lean_{run}_s2"]
    for name in databases:
        await ensure_database(admin_dsn, name)
    procs: list[subprocess.Popen[str]] = []
    try:
        for name, database, (source, target) in zip(
            ("stage1", "stage2"),
            databases,
            ((lean.raw, lean.resolved), (lean.resolved, lean.scores)),
            strict=True,
        ):
            procs.append(
                _spawn(name, with_database(admin_dsn, database), bootstrap, source, target)
            )
        for proc in procs:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 90)  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise RuntimeError(f"a lean stage did not start: {line!r}")
        yield lean
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):
            await delete_topics(bootstrap, [s.name for s in lean.specs(partitions)])
        for name in databases:
            await drop_database(admin_dsn, name)


def _spawn(name: str, dsn: str, bootstrap: str, source: str, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.lean",
            "stage",
            "--name",
            f"lean-{name}",
            "--database-url",
            dsn,
            "--bootstrap",
            bootstrap,
            "--input",
            source,
            "--output",
            target,
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "CRM_ENVIRONMENT": "test"},
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="one stage of the lean reference pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    stage = sub.add_parser("stage")
    stage.add_argument("--name", required=True)
    stage.add_argument("--database-url", required=True)
    stage.add_argument("--bootstrap", required=True)
    stage.add_argument("--input", required=True)
    stage.add_argument("--output", required=True)
    args = parser.parse_args()
    asyncio.run(run_stage(args))


if __name__ == "__main__":
    main()
