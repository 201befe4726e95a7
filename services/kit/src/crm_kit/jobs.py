"""Periodic jobs of a service process: timers that look for work that has come due.

    async def breach_due_clocks(pool: asyncpg.Pool) -> int: ...   # units of work done
    runtime.add_job("sla-timer", interval_seconds=0.25, run=breach_due_clocks)

The runtime starts its jobs after its consumers and stops them first. A job opens one
transaction per unit of work itself (the kit's README, "Who opens the transaction"). A round
that did work is followed at once by another, so a backlog drains at the job's own pace; a
round that found nothing waits `interval_seconds`. A round that fails is logged and tried
again after a capped backoff: a job never dies of one failure, and `/readyz` names a job
that has not finished a round for `stall_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

JobRound = Callable[[asyncpg.Pool], Awaitable[int]]


class PeriodicJob:
    """One timer loop: run a round, wait, run again; failures back off up to `max_backoff`."""

    def __init__(
        self,
        name: str,
        run: JobRound,
        *,
        interval_seconds: float,
        max_backoff_seconds: float = 5.0,
        stall_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self._run = run
        self.interval = interval_seconds
        self.max_backoff = max_backoff_seconds
        self.stall_seconds = stall_seconds
        self.rounds = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._last_round = time.monotonic()

    def start(self, pool: asyncpg.Pool) -> None:
        """Start the loop on the running event loop."""
        self._last_round = time.monotonic()
        self._task = asyncio.create_task(self._loop(pool), name=f"job:{self.name}")

    async def stop(self) -> None:
        """Cancel the loop and wait for it (a round in progress is rolled back)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def running(self) -> bool:
        """Started, not stopped, and it finished a round within `stall_seconds`."""
        return (
            self._task is not None
            and not self._task.done()
            and time.monotonic() - self._last_round < self.stall_seconds
        )

    async def _loop(self, pool: asyncpg.Pool) -> None:
        backoff = self.interval
        while True:
            try:
                done = await self._run(pool)
            except Exception:
                self.failures += 1
                log.exception("job %s failed; retrying in %.2fs", self.name, backoff)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.1), self.max_backoff)
                continue
            self.rounds += 1
            self._last_round = time.monotonic()
            backoff = self.interval
            if not done:
                await asyncio.sleep(self.interval)
