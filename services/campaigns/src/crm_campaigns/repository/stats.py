"""The figures of a campaign and of each of its steps (reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """Enrolments and conversions of one arm."""

    enrolled: int
    converted: int
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class Counts:
    enrolled: int
    converted: int
    treated: ArmCounts
    holdout: ArmCounts


@dataclass(frozen=True, slots=True)
class StepCounts:
    """What became of one step: sent, held back for the holdout, touched, credited."""

    step_id: str
    sent: int
    held_back: int
    touched: int
    converted: int
    revenue: Decimal


async def counts(conn: asyncpg.Connection, campaign_id: str) -> Counts:
    rows = await conn.fetch(
        "SELECT e.arm, count(*) AS enrolled, count(c.enrolment_id) AS converted, "
        "coalesce(sum(c.revenue), 0) AS revenue FROM enrolments e "
        "LEFT JOIN conversions c ON c.enrolment_id = e.id WHERE e.campaign_id = $1 "
        "GROUP BY e.arm",
        campaign_id,
    )
    arms = {
        row["arm"]: ArmCounts(row["enrolled"], row["converted"], row["revenue"]) for row in rows
    }
    none = ArmCounts(0, 0, Decimal(0))
    treated, holdout = arms.get("treated", none), arms.get("holdout", none)
    return Counts(
        enrolled=treated.enrolled + holdout.enrolled,
        converted=treated.converted + holdout.converted,
        treated=treated,
        holdout=holdout,
    )


async def step_counts(conn: asyncpg.Connection, campaign_id: str) -> dict[str, StepCounts]:
    """Per step: sends and holdbacks from the ledger, touches, and conversions credited to
    it (a conversion's credit is split between steps by its shares)."""
    rows = await conn.fetch(
        "WITH s AS (SELECT step_id, count(*) FILTER (WHERE outcome = 'sent') AS sent, "
        "count(*) FILTER (WHERE outcome = 'holdout') AS held_back FROM sends "
        "WHERE campaign_id = $1 GROUP BY step_id), "
        "t AS (SELECT step_id, count(DISTINCT enrolment_id) AS touched FROM touches "
        "WHERE campaign_id = $1 GROUP BY step_id), "
        "c AS (SELECT credit->>'step_id' AS step_id, count(*) AS converted, "
        "sum((credit->>'revenue')::numeric) AS revenue FROM conversions, "
        "jsonb_array_elements(credits) AS credit WHERE campaign_id = $1 GROUP BY 1) "
        "SELECT coalesce(s.step_id, t.step_id, c.step_id) AS step_id, coalesce(s.sent, 0) AS sent, "
        "coalesce(s.held_back, 0) AS held_back, coalesce(t.touched, 0) AS touched, "
        "coalesce(c.converted, 0) AS converted, coalesce(c.revenue, 0) AS revenue "
        "FROM s FULL JOIN t ON t.step_id = s.step_id "
        "FULL JOIN c ON c.step_id = coalesce(s.step_id, t.step_id)",
        campaign_id,
    )
    return {row["step_id"]: StepCounts(**dict(row)) for row in rows}


async def touched_enrolments(conn: asyncpg.Connection, campaign_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(DISTINCT enrolment_id) FROM touches WHERE campaign_id = $1", campaign_id
    )
    return count
