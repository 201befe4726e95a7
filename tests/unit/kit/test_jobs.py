"""Periodic jobs: a failing round is retried and never kills the loop; a round that did
work is followed at once; /readyz's check follows the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from crm_kit.jobs import PeriodicJob
from tests.support.kafka import eventually


async def _until(check: Callable[[], bool]) -> None:
    """Poll `check` with the suite's deadline."""

    async def holds() -> bool:
        return check()

    await eventually(holds, timeout=10, interval=0.005)


async def test_a_failing_round_is_retried_and_the_job_goes_on() -> None:
    outcomes: list[Any] = [RuntimeError("database gone"), 1, 1, 0]
    seen: list[Any] = []

    async def run(pool: Any) -> int:
        seen.append(pool)
        outcome = outcomes.pop(0) if outcomes else 0
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    job = PeriodicJob("t", run, interval_seconds=0.01, max_backoff_seconds=0.05)
    job.start(pool="the pool")  # type: ignore[arg-type]
    await _until(lambda: job.rounds >= 4)
    assert job.failures == 1
    assert job.running
    assert set(seen) == {"the pool"}
    await job.stop()
    assert not job.running


async def test_a_round_that_did_work_is_followed_at_once() -> None:
    backlog = [5, 5, 5]
    rounds = 0

    async def run(pool: Any) -> int:
        nonlocal rounds
        rounds += 1
        return backlog.pop() if backlog else 0

    # A long interval: only rounds that did work may follow each other within the wait.
    job = PeriodicJob("drain", run, interval_seconds=60)
    job.start(pool=None)  # type: ignore[arg-type]
    await _until(lambda: rounds >= 4)
    assert backlog == []
    await job.stop()
    assert rounds == 4  # the fourth found nothing and waits its interval


async def test_a_job_that_stops_finishing_rounds_is_not_running() -> None:
    release = asyncio.Event()

    async def run(pool: Any) -> int:
        await release.wait()
        return 0

    job = PeriodicJob("stuck", run, interval_seconds=0.01, stall_seconds=0.05)
    job.start(pool=None)  # type: ignore[arg-type]
    await _until(lambda: not job.running)
    release.set()
    await _until(lambda: job.running)
    await job.stop()
