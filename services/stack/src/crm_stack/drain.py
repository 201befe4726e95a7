"""Drain before a stop: wait until every consumer has caught up and every outbox is empty.

The embedded broker keeps its topics in memory, so what is still on them when it stops is
gone. `crmctl down` stops the edge first (nothing new comes in), then waits here, then
stops the rest. Caught up means: every consumer group of a running service has committed
every record of its partitions (measured by reading, see `backlog`), and no running
service has outbox rows still to publish; twice in a row with the same committed
offsets, so that an event published between the two looks is not missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka.errors import KafkaError

from crm_stack.backlog import Backlog, BacklogReport, MeasureError, measure_backlog
from crm_stack.repository import unsent_outbox_rows
from crm_stack.services import ServiceDef

PROGRESS_EVERY = 2.0  # seconds between progress lines while waiting
POLL_INTERVAL = 0.25


@dataclass
class DrainResult:
    """How a drain ended: caught up, or what was still in flight when it stopped waiting."""

    drained: bool
    backlog: list[Backlog] = field(default_factory=list)
    unsent: dict[str, int] = field(default_factory=dict)
    reason: str = ""  # why it stopped waiting, when not drained
    seconds: float = 0.0

    @property
    def records(self) -> int:
        """Records still on topics, not consumed by the group that should consume them."""
        return sum(b.records for b in self.backlog)


async def drain(
    *,
    bootstrap_servers: str,
    services: Sequence[ServiceDef],
    dsns: Mapping[str, str],
    timeout: float,
    wait: bool = True,
    is_running: Callable[[str], bool],
    on_progress: Callable[[str], None],
) -> DrainResult:
    """Wait (at most `timeout` s; not at all unless `wait`) until `services` have caught up."""
    groups = {group: names for s in services for group, names in s.consumer_groups.items()}
    prefixes = [f"{s.name}." for s in services]
    started = time.monotonic()
    previous: dict[tuple[str, str, int], int] | None = None
    last_progress = started
    while True:
        try:
            report = await measure_backlog(
                bootstrap_servers, groups, group_prefixes=prefixes, timeout=15.0
            )
            unsent = {name: await unsent_outbox_rows(dsn) for name, dsn in dsns.items()}
        except (MeasureError, KafkaError, OSError, asyncpg.PostgresError) as exc:
            return DrainResult(False, reason=f"could not measure the backlog: {exc}")
        clean = not report.backlog and not any(unsent.values())
        elapsed = time.monotonic() - started
        if clean and (previous == report.committed or not wait):
            return DrainResult(True, unsent=unsent, seconds=elapsed)
        previous = report.committed if clean else None
        if not wait:
            return _unfinished(report, unsent, "not waiting (--now)", elapsed)
        stopped = [s.name for s in services if not is_running(s.name)]
        if stopped and not clean:
            reason = f"{', '.join(stopped)} not running, so cannot catch up"
            return _unfinished(report, unsent, reason, elapsed)
        if elapsed >= timeout:
            return _unfinished(report, unsent, f"not caught up after {timeout:.0f}s", elapsed)
        if time.monotonic() - last_progress >= PROGRESS_EVERY and not clean:
            on_progress(f"draining: {describe_backlog(report.backlog, unsent)}")
            last_progress = time.monotonic()
        await asyncio.sleep(POLL_INTERVAL)


def _unfinished(
    report: BacklogReport, unsent: dict[str, int], reason: str, elapsed: float
) -> DrainResult:
    return DrainResult(False, report.backlog, unsent, reason, elapsed)


def describe_backlog(backlog: Sequence[Backlog], unsent: Mapping[str, int]) -> str:
    """One line: records per group and topic, then outbox rows per service."""
    parts = [f"{b.group}: {b.records} on {b.topic}" for b in backlog]
    parts += [f"{name} outbox: {n} unsent" for name, n in sorted(unsent.items()) if n]
    return "; ".join(parts) or "nothing in flight"
