"""Calendars, SLA policies, clocks and the breach record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_cases.sla import Clock, Metric
from crm_kit.db import as_dicts
from crm_kit.rows import jsonable


async def calendars(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every calendar: id, time_zone, hours, holidays, updated_at."""
    return as_dicts(
        await conn.fetch(
            "SELECT id, time_zone, hours, holidays, updated_at FROM case_calendars ORDER BY id"
        )
    )


async def calendar(
    conn: asyncpg.Connection, calendar_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """One calendar, or None."""
    row = await conn.fetchrow(
        "SELECT id, time_zone, hours, holidays, updated_at FROM case_calendars WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        calendar_id,
    )
    return dict(row) if row is not None else None


async def save_calendar(
    conn: asyncpg.Connection, document: dict[str, Any], calendar_id: str
) -> dict[str, Any]:
    """Create or replace a calendar."""
    row = await conn.fetchrow(
        "INSERT INTO case_calendars (id, time_zone, hours, holidays) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO UPDATE SET time_zone = EXCLUDED.time_zone, hours = EXCLUDED.hours, "
        "holidays = EXCLUDED.holidays, updated_at = clock_timestamp() "
        "RETURNING id, time_zone, hours, holidays, updated_at",
        calendar_id,
        document["time_zone"],
        document["hours"],
        document["holidays"],
    )
    assert row is not None
    return dict(row)


async def policies(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every SLA policy: priority, name, calendar_id, targets, updated_at."""
    return as_dicts(
        await conn.fetch(
            "SELECT priority, name, calendar_id, targets, updated_at FROM case_sla_policies "
            "ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 "
            "WHEN 'normal' THEN 2 ELSE 3 END"
        )
    )


async def save_policy(
    conn: asyncpg.Connection, *, priority: str, name: str, calendar_id: str, targets: dict[str, Any]
) -> dict[str, Any]:
    """Replace the policy of a priority."""
    row = await conn.fetchrow(
        "INSERT INTO case_sla_policies (priority, name, calendar_id, targets) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (priority) DO UPDATE SET name = EXCLUDED.name, "
        "calendar_id = EXCLUDED.calendar_id, targets = EXCLUDED.targets, "
        "updated_at = clock_timestamp() RETURNING priority, name, calendar_id, targets, updated_at",
        priority,
        name,
        calendar_id,
        targets,
    )
    assert row is not None
    return dict(row)


@dataclass(frozen=True, slots=True)
class StoredClock:
    """A clock of one case, and the calendar it counts on."""

    case_id: str
    calendar_id: str
    clock: Clock

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case_id, self.clock.metric.value, self.clock.cycle)


_CLOCK_COLUMNS = (
    "case_id, metric, cycle, calendar_id, started_at, target_seconds, used_seconds, "
    "running_since, stopped_at, due_at, breached_at"
)


def _stored(row: asyncpg.Record) -> StoredClock:
    return StoredClock(
        case_id=row["case_id"],
        calendar_id=row["calendar_id"],
        clock=Clock(
            metric=Metric(row["metric"]),
            cycle=row["cycle"],
            started_at=row["started_at"],
            target_seconds=row["target_seconds"],
            used_seconds=row["used_seconds"],
            running_since=row["running_since"],
            stopped_at=row["stopped_at"],
            due_at=row["due_at"],
            breached_at=row["breached_at"],
        ),
    )


async def clocks_of(conn: asyncpg.Connection, case_ids: Sequence[str]) -> list[StoredClock]:
    """Every clock of these cases, by case, metric and cycle."""
    rows = await conn.fetch(
        f"SELECT {_CLOCK_COLUMNS} FROM case_sla_clocks WHERE case_id = ANY($1::text[]) "
        "ORDER BY case_id, metric, cycle",
        list(case_ids),
    )
    return [_stored(row) for row in rows]


async def running_clocks_on(conn: asyncpg.Connection, calendar_id: str) -> list[StoredClock]:
    """Clocks counting on a calendar that are neither met nor paused (a calendar edit)."""
    rows = await conn.fetch(
        f"SELECT {_CLOCK_COLUMNS} FROM case_sla_clocks WHERE calendar_id = $1 "
        "AND stopped_at IS NULL AND running_since IS NOT NULL FOR UPDATE",
        calendar_id,
    )
    return [_stored(row) for row in rows]


async def save_clocks(conn: asyncpg.Connection, clocks: Sequence[StoredClock]) -> None:
    """Insert or update these clocks (one statement)."""
    if not clocks:
        return
    items = [
        {
            "case_id": c.case_id,
            "calendar_id": c.calendar_id,
            "metric": c.clock.metric.value,
            "cycle": c.clock.cycle,
            "started_at": jsonable(c.clock.started_at),
            "target_seconds": c.clock.target_seconds,
            "used_seconds": c.clock.used_seconds,
            "running_since": jsonable(c.clock.running_since),
            "stopped_at": jsonable(c.clock.stopped_at),
            "due_at": jsonable(c.clock.due_at),
            "breached_at": jsonable(c.clock.breached_at),
        }
        for c in clocks
    ]
    await conn.execute(
        f"INSERT INTO case_sla_clocks ({_CLOCK_COLUMNS}) SELECT {_CLOCK_COLUMNS} "
        "FROM jsonb_populate_recordset(NULL::case_sla_clocks, $1::jsonb) "
        "ON CONFLICT (case_id, metric, cycle) DO UPDATE SET calendar_id = EXCLUDED.calendar_id, "
        "target_seconds = EXCLUDED.target_seconds, used_seconds = EXCLUDED.used_seconds, "
        "running_since = EXCLUDED.running_since, stopped_at = EXCLUDED.stopped_at, "
        "due_at = EXCLUDED.due_at, "
        "breached_at = COALESCE(case_sla_clocks.breached_at, EXCLUDED.breached_at)",
        items,
    )


async def due_case_ids(conn: asyncpg.Connection, now: datetime, *, limit: int) -> list[str]:
    """Cases with a clock due by `now` that is neither met nor breached, locked for this
    transaction; cases another replica's timer holds are skipped (SKIP LOCKED)."""
    rows = await conn.fetch(
        "SELECT c.id FROM cases c WHERE c.id IN (SELECT k.case_id FROM case_sla_clocks k "
        "WHERE k.due_at <= $1 AND k.breached_at IS NULL AND k.stopped_at IS NULL "
        "AND k.due_at IS NOT NULL ORDER BY k.due_at LIMIT $2) FOR UPDATE OF c SKIP LOCKED",
        now,
        limit,
    )
    return [row["id"] for row in rows]


@dataclass(frozen=True, slots=True)
class Breach:
    """A clock that missed its target: the durable record of its one breach event."""

    case_id: str
    metric: str
    cycle: int
    due_at: datetime
    detected_at: datetime
    event_id: str
    queue: str
    priority: str


async def record_breaches(
    conn: asyncpg.Connection, breaches: Sequence[Breach]
) -> set[tuple[str, str, int]]:
    """Record breaches not recorded before; the keys of those that are new (one statement).
    Only those are announced: a breach is announced once per case, metric and cycle."""
    if not breaches:
        return set()
    rows = await conn.fetch(
        "INSERT INTO case_sla_breaches (case_id, metric, cycle, due_at, detected_at, event_id, "
        "queue, priority) SELECT case_id, metric, cycle, due_at, detected_at, event_id, queue, "
        "priority FROM jsonb_populate_recordset(NULL::case_sla_breaches, $1::jsonb) "
        "ON CONFLICT DO NOTHING RETURNING case_id, metric, cycle",
        [_breach(b) for b in breaches],
    )
    return {(r["case_id"], r["metric"], r["cycle"]) for r in rows}


def _breach(b: Breach) -> dict[str, Any]:
    return {
        "case_id": b.case_id,
        "metric": b.metric,
        "cycle": b.cycle,
        "due_at": jsonable(b.due_at),
        "detected_at": jsonable(b.detected_at),
        "event_id": b.event_id,
        "queue": b.queue,
        "priority": b.priority,
    }


async def breaches_of(conn: asyncpg.Connection, case_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The breaches of these cases."""
    return as_dicts(
        await conn.fetch(
            "SELECT case_id, metric, cycle, due_at, detected_at FROM case_sla_breaches "
            "WHERE case_id = ANY($1::text[]) ORDER BY due_at",
            list(case_ids),
        )
    )
