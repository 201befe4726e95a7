"""The analytics of a time range: four read statements over one cohort of cases.

The cohort is **the cases opened in [start, end)**: every figure describes the same cases,
so they add up (resolved <= opened, FCR and CSAT of the cases whose SLA is measured), and a
range in the past keeps its meaning as its cases are worked off (its resolution figures
settle once they are all resolved). It is what a support manager means by "how did we
handle last week's tickets". The alternative, first-response and resolution times of cases
responded to or resolved in the range whenever they were opened, answers "what did the team
do last week"; it mixes cohorts and is not what these figures are.

Durations are business seconds as the SLA clocks counted them (`case_sla_clocks.used_seconds`
of a met clock): business hours of the policy's calendar, without the time a clock was paused
(resolution waits while a case is pending on the customer or on hold). Erased cases count:
an erasure removes their words, not their statistics.

Call the four in one snapshot (a repeatable-read transaction) so that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COHORT = "c.opened_at >= $1 AND c.opened_at < $2"
_OPEN = "c.status IN ('new', 'open', 'pending', 'on_hold')"


@dataclass(frozen=True, slots=True)
class CaseCounts:
    """What the cohort's cases say: how many, resolved, FCR, CSAT, open now by priority."""

    opened: int
    resolved: int
    resolved_first_contact: int
    rated: int
    csat_average: float | None
    open_urgent: int
    open_high: int
    open_normal: int
    open_low: int


async def case_counts(conn: asyncpg.Connection, start: datetime, end: datetime) -> CaseCounts:
    """Counts over the cases opened in [start, end); "open" is their status now."""
    row = await conn.fetchrow(
        "SELECT count(*) AS opened, "
        "count(*) FILTER (WHERE c.resolved_at IS NOT NULL) AS resolved, "
        "count(*) FILTER (WHERE c.resolved_at IS NOT NULL AND c.fcr) AS resolved_first_contact, "
        "count(c.csat) AS rated, avg(c.csat)::float8 AS csat_average, "
        f"count(*) FILTER (WHERE {_OPEN} AND c.priority = 'urgent') AS open_urgent, "
        f"count(*) FILTER (WHERE {_OPEN} AND c.priority = 'high') AS open_high, "
        f"count(*) FILTER (WHERE {_OPEN} AND c.priority = 'normal') AS open_normal, "
        f"count(*) FILTER (WHERE {_OPEN} AND c.priority = 'low') AS open_low "
        f"FROM cases c WHERE {_COHORT}",
        start,
        end,
    )
    assert row is not None
    return CaseCounts(**dict(row))


@dataclass(frozen=True, slots=True)
class ClockCounts:
    """The clocks of one metric (every cycle) of the cohort's cases, by outcome."""

    metric: str
    on_time: int  # met and never breached
    breached: int  # breached, met late or still running
    running: int  # neither met nor breached yet: not measured


async def clock_counts(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[ClockCounts]:
    """Per metric, the cohort's clocks met on time, breached and still undecided."""
    rows = await conn.fetch(
        "SELECT k.metric, "
        "count(*) FILTER (WHERE k.stopped_at IS NOT NULL AND k.breached_at IS NULL) AS on_time, "
        "count(*) FILTER (WHERE k.breached_at IS NOT NULL) AS breached, "
        "count(*) FILTER (WHERE k.stopped_at IS NULL AND k.breached_at IS NULL) AS running "
        f"FROM case_sla_clocks k JOIN cases c ON c.id = k.case_id WHERE {_COHORT} "
        "GROUP BY k.metric ORDER BY k.metric",
        start,
        end,
    )
    return [ClockCounts(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Durations:
    """Business seconds of one measure over the cohort: how many, median, 90th percentile."""

    measure: str  # first_response | resolution
    count: int
    median: float | None
    p90: float | None


async def durations(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[Durations]:
    """First response: the met first-response clock of each case an agent answered (a case
    resolved unanswered has none). Resolution: per resolved case, the business time of
    all its resolution cycles (a reopened case counts every cycle). Percentiles interpolate
    (percentile_cont)."""
    rows = await conn.fetch(
        "WITH first AS ("
        "SELECT k.used_seconds AS seconds FROM case_sla_clocks k JOIN cases c ON c.id = k.case_id "
        f"WHERE {_COHORT} AND c.first_response_at IS NOT NULL "
        "AND k.metric = 'first_response' AND k.cycle = 1 AND k.stopped_at IS NOT NULL), "
        "resolution AS ("
        "SELECT sum(k.used_seconds) AS seconds FROM case_sla_clocks k "
        "JOIN cases c ON c.id = k.case_id "
        f"WHERE {_COHORT} AND c.resolved_at IS NOT NULL AND k.metric = 'resolution' "
        "GROUP BY k.case_id) "
        "SELECT 'first_response' AS measure, count(*) AS count, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median, "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90 FROM first "
        "UNION ALL "
        "SELECT 'resolution', count(*), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds), "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FROM resolution",
        start,
        end,
    )
    return [Durations(**dict(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class QueueBreaches:
    """The breaches of the cohort's cases in one queue (the queue the case was in then)."""

    queue: str
    breaches: int
    first_response: int
    next_response: int
    resolution: int


async def breaches_by_queue(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[QueueBreaches]:
    """Breaches of the cohort's cases per queue, most first."""
    rows = await conn.fetch(
        "SELECT b.queue, count(*) AS breaches, "
        "count(*) FILTER (WHERE b.metric = 'first_response') AS first_response, "
        "count(*) FILTER (WHERE b.metric = 'next_response') AS next_response, "
        "count(*) FILTER (WHERE b.metric = 'resolution') AS resolution "
        f"FROM case_sla_breaches b JOIN cases c ON c.id = b.case_id WHERE {_COHORT} "
        "GROUP BY b.queue ORDER BY breaches DESC, b.queue",
        start,
        end,
    )
    return [QueueBreaches(**dict(row)) for row in rows]
