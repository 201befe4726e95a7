"""Analytics of the cases opened in a time range (the cohort; repository/analytics.py says
why): open by priority, SLA attainment per metric, first-response and resolution times in
business seconds, FCR rate, CSAT average, breaches by queue. A read: call it in one
repeatable-read snapshot so that its four statements agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from crm_cases.handlers.context import Context
from crm_cases.repository import analytics as rows
from crm_cases.repository.analytics import QueueBreaches
from crm_cases.sla import Metric
from crm_contracts.cases import CasePriority
from crm_kit.errors import InvalidInput

MAX_RANGE = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class Attainment:
    """One metric's clocks: met on time, breached, and the share on time of those decided."""

    on_time: int
    breached: int
    running: int
    percent: float | None  # None: no clock met or breached yet


@dataclass(frozen=True, slots=True)
class Times:
    """Business seconds of a measure: how many cases, median and 90th percentile."""

    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True, slots=True)
class Analytics:
    """The figures of the cases opened in [start, end), as of `as_of`."""

    start: datetime
    end: datetime
    as_of: datetime
    opened: int
    resolved: int
    open_by_priority: dict[CasePriority, int]
    attainment: dict[Metric, Attainment]
    first_response: Times
    resolution: Times
    resolved_first_contact: int
    fcr_percent: float | None
    rated: int
    csat_average: float | None
    breaches_by_queue: list[QueueBreaches]


def percent(part: int, whole: int) -> float | None:
    """part of whole in percent, to 0.01; None when there is nothing to measure."""
    return round(100 * part / whole, 2) if whole else None


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def case_analytics(
    conn: asyncpg.Connection, ctx: Context, *, start: datetime, end: datetime
) -> Analytics:
    """The analytics of the cases opened in [start, end) (answered in UTC); InvalidInput for an
    empty, reversed, zone-less, out-of-range or longer-than-366-days range."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise InvalidInput("from and to need a time zone offset (e.g. Z).", reason="invalid-range")
    try:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-02:00 is in year 10000 in UTC
        raise InvalidInput(
            "from and to must lie within years 1 to 9999 UTC.", reason="invalid-range"
        ) from None
    if start >= end:
        raise InvalidInput("from must be before to.", reason="invalid-range")
    if end - start > MAX_RANGE:
        raise InvalidInput("A range can span at most 366 days.", reason="range-too-long")
    counts = await rows.case_counts(conn, start, end)
    clocks = {c.metric: c for c in await rows.clock_counts(conn, start, end)}
    times = {
        d.measure: Times(d.count, _seconds(d.median), _seconds(d.p90))
        for d in await rows.durations(conn, start, end)
    }
    attainment = {}
    for metric in Metric:
        c = clocks.get(metric.value, rows.ClockCounts(metric.value, 0, 0, 0))
        attainment[metric] = Attainment(
            c.on_time, c.breached, c.running, percent(c.on_time, c.on_time + c.breached)
        )
    return Analytics(
        start=start,
        end=end,
        as_of=ctx.clock(),
        opened=counts.opened,
        resolved=counts.resolved,
        open_by_priority={
            CasePriority.URGENT: counts.open_urgent,
            CasePriority.HIGH: counts.open_high,
            CasePriority.NORMAL: counts.open_normal,
            CasePriority.LOW: counts.open_low,
        },
        attainment=attainment,
        first_response=times["first_response"],
        resolution=times["resolution"],
        resolved_first_contact=counts.resolved_first_contact,
        fcr_percent=percent(counts.resolved_first_contact, counts.resolved),
        rated=counts.rated,
        csat_average=None if counts.csat_average is None else round(counts.csat_average, 2),
        breaches_by_queue=await rows.breaches_by_queue(conn, start, end),
    )
