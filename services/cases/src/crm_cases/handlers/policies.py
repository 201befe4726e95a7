"""SLA policies and business-hours calendars, administered by hand.

A calendar edited while cases count on it keeps the business time they have used and counts
the rest against the new hours: every running clock on it is re-based at the moment of the
edit (crm_cases.sla.recalendar) in the edit's transaction. A policy changed for a priority
applies to clocks started from then on; running clocks keep the target they started with
until their case's priority changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from crm_cases import calendar as cal
from crm_cases.handlers.casework import parse_targets
from crm_cases.handlers.context import Context
from crm_cases.repository import sla as sla_rows
from crm_cases.sla import recalendar
from crm_contracts.cases import CasePriority
from crm_kit.errors import InvalidInput, NotFound


async def list_calendars(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return await sla_rows.calendars(conn)


async def get_calendar(conn: asyncpg.Connection, calendar_id: str) -> dict[str, Any]:
    found = await sla_rows.calendar(conn, calendar_id)
    if found is None:
        raise NotFound("No calendar with this id.", reason="calendar-not-found")
    return found


async def put_calendar(
    conn: asyncpg.Connection, ctx: Context, calendar_id: str, document: dict[str, Any]
) -> dict[str, Any]:
    """Create or replace a calendar; clocks running on it are re-based now."""
    try:
        new = cal.parse_calendar(document)
    except ValueError as exc:
        raise InvalidInput(str(exc), reason="invalid-calendar") from None
    if not new.hours:
        # No clock on it could ever fall due: every case of its policies would fail to open.
        raise InvalidInput(
            "A calendar needs business hours on at least one day.", reason="invalid-calendar"
        )
    old_row = await sla_rows.calendar(conn, calendar_id, lock=True)
    saved = await sla_rows.save_calendar(conn, new.to_document(), calendar_id)
    if old_row is not None:
        old = cal.parse_calendar(
            {
                "time_zone": old_row["time_zone"],
                "hours": old_row["hours"],
                "holidays": old_row["holidays"],
            }
        )
        at = ctx.clock()
        rebased = [
            replace(
                stored,
                clock=recalendar(stored.clock, max(at, stored.clock.running_since or at), old, new),
            )
            for stored in await sla_rows.running_clocks_on(conn, calendar_id)
        ]
        await sla_rows.save_clocks(conn, rebased)
    return saved


async def list_policies(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return await sla_rows.policies(conn)


async def put_policy(
    conn: asyncpg.Connection,
    priority: CasePriority,
    *,
    name: str,
    calendar_id: str,
    targets: dict[str, Any],
) -> dict[str, Any]:
    """Replace the policy of a priority."""
    if await sla_rows.calendar(conn, calendar_id) is None:
        raise InvalidInput("No calendar with this id.", reason="calendar-not-found")
    parse_targets(targets)
    return await sla_rows.save_policy(
        conn, priority=priority.value, name=name, calendar_id=calendar_id, targets=targets
    )
