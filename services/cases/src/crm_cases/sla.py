"""SLA clocks: how much of its business-time allowance a case's metric has used, and when it
breaches if it keeps running.

A case has one `Clock` per metric and cycle: first response; next response (a new cycle for
each customer message that awaits an answer); resolution (a new cycle on each reopen). A
clock keeps the business time of its closed segments in `used_seconds` and counts the open
segment from `running_since`, so a pause, a new target (a priority change) or a new calendar
(hours edited mid-case) neither loses nor double-counts time already used. `due_at` is the
instant it breaches if it keeps running, which a sweeper can compare with the time; a paused
clock has none unless it is already overdue, so that it breaches at once.

Every function is pure: it takes the event time and the calendar in force and returns a new
Clock (the caller stores it). Times are event times, never "now". `breach_event_id` gives
every replica and every restart the same event id for one breach, so the outbox and the
consumers' inboxes drop a repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from crm_cases.calendar import Calendar

__all__ = [
    "BREACH_NAMESPACE",
    "Clock",
    "Metric",
    "Target",
    "breach",
    "breach_event_id",
    "elapsed",
    "on_status",
    "overdue",
    "pause",
    "recalendar",
    "remaining",
    "resume",
    "retarget",
    "start",
    "stop",
]

BREACH_NAMESPACE = uuid.UUID("5caa7962-ce0f-4558-903a-cb92ac6313e9")
"""The uuid5 namespace of SLA breach event ids. Never change it: ids would change with it."""


class Metric(StrEnum):
    """What an SLA clock measures."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


@dataclass(frozen=True)
class Target:
    """A policy's allowance for one metric: business seconds, and the statuses that pause it."""

    seconds: int
    pauses_in: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"a target cannot be negative ({self.seconds} s)")
        object.__setattr__(self, "pauses_in", frozenset(self.pauses_in))


@dataclass(frozen=True)
class Clock:
    """One metric's clock for one cycle of one case.

    Running: running_since is set. Paused: neither running_since nor stopped_at. Stopped
    (met): stopped_at is set. due_at is when it breaches if it keeps running; None while
    paused or stopped, except that a paused clock already past its target keeps a due_at at
    or before the pause, so that it breaches at once. breached_at, once set, stays.
    """

    metric: Metric
    cycle: int
    started_at: datetime
    target_seconds: int
    used_seconds: float
    running_since: datetime | None
    stopped_at: datetime | None
    due_at: datetime | None
    breached_at: datetime | None = None

    @property
    def running(self) -> bool:
        """Whether time counts now."""
        return self.running_since is not None

    @property
    def stopped(self) -> bool:
        """Whether the metric was met (a response given, the case resolved)."""
        return self.stopped_at is not None


def start(
    metric: Metric,
    cycle: int,
    at: datetime,
    target: Target,
    calendar: Calendar,
    status: str,
) -> Clock:
    """A new clock started at `at`: running, unless the case's status pauses this metric."""
    _require_aware(at)
    if cycle < 1:
        raise ValueError(f"cycles count from 1, not {cycle}")
    clock = Clock(
        metric=metric,
        cycle=cycle,
        started_at=at,
        target_seconds=target.seconds,
        used_seconds=0.0,
        running_since=None if status in target.pauses_in else at,
        stopped_at=None,
        due_at=None,
    )
    return replace(clock, due_at=_due(clock, at, calendar, crossed=None))


def pause(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """Stop counting at `at`, keeping the time used; a paused or stopped clock is unchanged."""
    if clock.running_since is None:
        return clock
    used = clock.used_seconds + calendar.business_seconds(clock.running_since, at)
    paused = replace(clock, used_seconds=used, running_since=None)
    return replace(paused, due_at=_due(paused, at, calendar, crossed=clock.due_at))


def resume(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """Count again from `at`; a running or stopped clock is unchanged."""
    _require_aware(at)
    if clock.stopped_at is not None or clock.running_since is not None:
        return clock
    running = replace(clock, running_since=at)
    return replace(running, due_at=_due(running, at, calendar, crossed=clock.due_at))


def stop(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """The metric was met at `at`; a stopped clock is unchanged.

    Stopping records no breach: a handler that learns of a response after the clock's
    due_at asks `overdue` first and records the `breach`, so that it is published.
    """
    _require_aware(at)
    if clock.stopped_at is not None:
        return clock
    return replace(
        clock,
        used_seconds=elapsed(clock, at, calendar),
        running_since=None,
        stopped_at=at,
        due_at=None,
    )


def on_status(clock: Clock, status: str, at: datetime, target: Target, calendar: Calendar) -> Clock:
    """The case moved to `status` at `at`: pause or resume as the target says."""
    if status in target.pauses_in:
        return pause(clock, at, calendar)
    return resume(clock, at, calendar)


def retarget(clock: Clock, target: Target, at: datetime, calendar: Calendar) -> Clock:
    """A new target (the case's priority changed), counted from the metric's original start.

    The time used is kept, so a tighter target can be overdue at once: its due_at is then
    the instant the new target was crossed, when that fell in the running segment, or else
    `at`. A stopped clock is not retargeted; a breach stands. Whether the new policy pauses
    in the case's status is for `on_status`, which the caller applies after this.
    """
    _require_aware(at)
    if clock.stopped_at is not None:
        return clock
    moved = replace(clock, target_seconds=target.seconds)
    return replace(moved, due_at=_due(moved, at, calendar, crossed=None))


def recalendar(clock: Clock, at: datetime, old: Calendar, new: Calendar) -> Clock:
    """The calendar was edited at `at`: time used until then under `old` is kept, the rest
    counts against `new`. A paused or stopped clock has nothing running and is unchanged.
    """
    if clock.running_since is None:
        return clock
    used = clock.used_seconds + old.business_seconds(clock.running_since, at)
    moved = replace(clock, used_seconds=used, running_since=at)
    return replace(moved, due_at=_due(moved, at, new, crossed=clock.due_at))


def elapsed(clock: Clock, at: datetime, calendar: Calendar) -> float:
    """Business seconds the clock has used up to `at`."""
    if clock.running_since is None:
        return clock.used_seconds
    running: float = calendar.business_seconds(clock.running_since, at)
    return clock.used_seconds + running


def remaining(clock: Clock, at: datetime, calendar: Calendar) -> float:
    """Business seconds left at `at`; negative by as much as the clock is over its target."""
    return clock.target_seconds - elapsed(clock, at, calendar)


def overdue(clock: Clock, at: datetime) -> bool:
    """Whether the clock should breach now: not met, not yet breached, and due by `at`."""
    return (
        clock.stopped_at is None
        and clock.breached_at is None
        and clock.due_at is not None
        and clock.due_at <= at
    )


def breach(clock: Clock, at: datetime) -> Clock:
    """Record the breach at `at`; a breached clock keeps its first breach."""
    _require_aware(at)
    if clock.breached_at is not None:
        return clock
    return replace(clock, breached_at=at)


def breach_event_id(case_id: str, metric: Metric, cycle: int) -> str:
    """The id of the one breach event of a case's metric and cycle, the same everywhere."""
    return str(uuid.uuid5(BREACH_NAMESPACE, f"{case_id}/{Metric(metric).value}/{cycle}"))


def _due(
    clock: Clock, at: datetime, calendar: Calendar, *, crossed: datetime | None
) -> datetime | None:
    """When `clock` breaches if it keeps running.

    Running within its target: the instant the rest of the target runs out (possibly
    already past). Otherwise past its target: `crossed` (when it was crossed, if known and
    not after `at`) or `at`. Paused within its target, or stopped: None.
    """
    if clock.stopped_at is not None:
        return None
    left = clock.target_seconds - clock.used_seconds
    if clock.running_since is not None and left >= 0:
        runs_out: datetime = calendar.add_business_seconds(clock.running_since, left)
        return runs_out
    if left > 0:
        return None
    return crossed if crossed is not None and crossed <= at else at


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"SLA times must be aware datetimes, not {instant!r}")
