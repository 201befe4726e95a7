"""CPU per event of a drain: contacts and scoring alone, fed a burst by the simulator.

    .venv/bin/python -m bench.scoring_drain [--events 20000] [--runs 1] [--profile OUT.json]

Starts `crmctl up` with only contacts and scoring (`CRM_STACK_SERVICES`) in a temporary
state folder on free ports (bench.stack), sends `crmctl simulate --events N --rate 5000
--http-share 0 --contacts 10000 --seed 7` straight to Kafka, and reads each process's CPU
time (utime + stime in /proc/<pid>/stat; Postgres with its backends) from the start of the
feed until every consumer group has caught up and no outbox row is unsent, twice in a row
with the same committed offsets (the backlog measured by reading, as `crmctl down` does).
Prints µs of CPU per event sent, and what each process used while idle before the feed
(its share of a core), which the figure includes. `--profile` records scoring with py-spy
(speedscope format) during the drain; py-spy is not a dependency: install it yourself.
On a shared machine the figures move by 20-30 % from run to run; compare scoring's with
contacts' of the same run, or alternate the variants compared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.stack import CRMCTL, BenchStack, bench_stack, cpu_seconds
from crm_stack.backlog import measure_backlog
from crm_stack.repository import unsent_outbox_rows
from crm_stack.services import get_service

SERVICES = ("contacts", "scoring")
GROUPS = {g: t for name in SERVICES for g, t in get_service(name).consumer_groups.items()}


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid, children=name == "postgres") for name, pid in pids.items()}


async def _caught_up(stack: BenchStack) -> tuple[bool, dict[tuple[str, str, int], int]]:
    report = await measure_backlog(stack.bootstrap, GROUPS, timeout=15.0)
    unsent = [await unsent_outbox_rows(stack.database(s)) for s in SERVICES]
    return not report.backlog and not any(unsent), report.committed


def one_run(events: int, profile: str | None) -> dict[str, float]:
    """One drain on a fresh stack: µs of CPU per event, per process."""
    with bench_stack() as stack:
        pids = {c.name: c.pid for c in stack.components if c.pid and c.kind != "supervisor"}
        time.sleep(3)  # settle after the start
        idle_from, idle_start = _cpu(pids), time.monotonic()
        time.sleep(5)
        idle_to, idle_secs = _cpu(pids), time.monotonic() - idle_start
        spy = None
        if profile:
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            record = ["record", "--pid", str(pids["scoring"]), "--format", "speedscope"]
            spy = subprocess.Popen(
                [py_spy, *record, "-o", profile, "--nonblocking", "--rate", "100"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        try:
            start, started = _cpu(pids), time.monotonic()
            feed = [*CRMCTL, "simulate", "--events", str(events), "--rate", "5000"]
            feed += ["--http-share", "0", "--contacts", "10000", "--seed", "7", "--quiet"]
            subprocess.run(
                [*feed, "--bootstrap", stack.bootstrap],
                env=stack.env,
                check=True,
                capture_output=True,
                timeout=600,
            )
            end, ended = _drained(stack, pids, started)
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
        seconds = ended - started
        print(f"drained in {seconds:.1f} s, load average {os.getloadavg()[0]:.2f}")
        out = {}
        for name in pids:
            used = end[name] - start[name]
            out[name] = used / events * 1e6
            idle = (idle_to[name] - idle_from[name]) / idle_secs
            print(
                f"  {name:9s} {used:6.2f} s CPU  {out[name]:5.0f} µs/event  "
                f"(idle {idle:.3f} of a core: {idle * seconds / events * 1e6:3.0f} µs/event of it)"
            )
        return out


def _drained(
    stack: BenchStack, pids: dict[str, int], started: float
) -> tuple[dict[str, float], float]:
    # The CPU read just before the first of two clean looks with the same offsets.
    previous = None
    first_clean: tuple[dict[str, float], float] | None = None
    while time.monotonic() - started < 900:
        sample = _cpu(pids), time.monotonic()
        clean, committed = asyncio.run(_caught_up(stack))
        if not clean:
            first_clean = None
        elif first_clean is None or committed != previous:
            first_clean = sample
        else:
            return first_clean
        previous = committed
        time.sleep(0.5)
    raise RuntimeError("the stack did not catch up in 900 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", help="write a py-spy profile of scoring (speedscope)")
    args = parser.parse_args()
    os.environ["CRM_STACK_SERVICES"] = ",".join(SERVICES)  # bench_stack copies the env
    for run in range(args.runs):
        print(f"run {run + 1} of {args.runs}: {args.events} events")
        one_run(args.events, args.profile if run == 0 else None)


if __name__ == "__main__":
    main()
