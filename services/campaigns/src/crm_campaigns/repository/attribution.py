"""Touches and conversions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from crm_kit.rows import records


@dataclass(frozen=True, slots=True)
class TouchRow:
    """An interaction that names a campaign step, credited to an enrolment."""

    event_id: str
    enrolment_id: str
    campaign_id: str
    step_id: str
    contact_id: str
    kind: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConversionRow:
    """An enrolment's conversion and the credit of its steps."""

    enrolment_id: str
    campaign_id: str
    contact_id: str
    event_id: str
    kind: str
    at: datetime
    revenue: Decimal | None
    currency: str | None
    step_id: str | None
    credits: list[dict[str, Any]]


async def record_touches(conn: asyncpg.Connection, touches: Sequence[TouchRow]) -> None:
    if touches:
        await conn.execute(
            "INSERT INTO touches (event_id, enrolment_id, campaign_id, step_id, contact_id, kind, "
            "at) SELECT event_id, enrolment_id, campaign_id, step_id, contact_id, kind, at "
            "FROM jsonb_populate_recordset(NULL::touches, $1::jsonb) "
            "ON CONFLICT (event_id) DO NOTHING",
            records(touches),
        )


async def touches_of(
    conn: asyncpg.Connection, enrolment_ids: Iterable[str]
) -> dict[str, list[TouchRow]]:
    """The touches of these enrolments, oldest first."""
    rows = await conn.fetch(
        "SELECT event_id, enrolment_id, campaign_id, step_id, contact_id, kind, at FROM touches "
        "WHERE enrolment_id = ANY($1::text[]) ORDER BY at, event_id",
        sorted(set(enrolment_ids)),
    )
    out: dict[str, list[TouchRow]] = {}
    for row in rows:
        out.setdefault(row["enrolment_id"], []).append(TouchRow(**dict(row)))
    return out


async def converted(conn: asyncpg.Connection, enrolment_ids: Iterable[str]) -> set[str]:
    """Which of these enrolments have converted already."""
    rows = await conn.fetch(
        "SELECT enrolment_id FROM conversions WHERE enrolment_id = ANY($1::text[])",
        sorted(set(enrolment_ids)),
    )
    return {row["enrolment_id"] for row in rows}


async def record_conversions(
    conn: asyncpg.Connection, conversions: Sequence[ConversionRow]
) -> None:
    if conversions:
        await conn.execute(
            "INSERT INTO conversions (enrolment_id, campaign_id, contact_id, event_id, kind, at, "
            "revenue, currency, step_id, credits) SELECT enrolment_id, campaign_id, contact_id, "
            "event_id, kind, at, revenue, currency, step_id, credits "
            "FROM jsonb_populate_recordset(NULL::conversions, $1::jsonb) "
            "ON CONFLICT (enrolment_id) DO NOTHING",
            records(conversions),
        )


async def move_touches(
    conn: asyncpg.Connection, merged_ids: Sequence[str], survivor_id: str
) -> None:
    for table in ("touches", "conversions"):
        await conn.execute(
            f"UPDATE {table} SET contact_id = $2 WHERE contact_id = ANY($1::text[])",
            list(merged_ids),
            survivor_id,
        )
