"""The contact projection (`contact_views`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from crm_campaigns.domain import ConsentState, ContactView, Touchpoint

_COLUMNS = (
    "contact_id, stage, value_tier, churn_band, churn_risk, engagement, clv, consents, traits, "
    "open_cases, activity, closed_cases"
)


def view_of(row: asyncpg.Record) -> ContactView:
    """A row of `contact_views` as a ContactView."""
    return ContactView(
        contact_id=row["contact_id"],
        stage=row["stage"],
        value_tier=row["value_tier"],
        churn_band=row["churn_band"],
        churn_risk=row["churn_risk"],
        engagement=row["engagement"],
        clv=row["clv"],
        consents={
            key: ConsentState(granted=c["granted"], at=datetime.fromisoformat(c["at"]))
            for key, c in row["consents"].items()
        },
        traits=dict(row["traits"]),
        open_cases=dict(row["open_cases"]),
        activity={
            kind: [Touchpoint(at=datetime.fromisoformat(at), channel=ch) for at, ch in points]
            for kind, points in row["activity"].items()
        },
        closed_cases=dict(row["closed_cases"]),
    )


def _row(view: ContactView) -> dict[str, Any]:
    return {
        "contact_id": view.contact_id,
        "stage": view.stage,
        "value_tier": view.value_tier,
        "churn_band": view.churn_band,
        "churn_risk": view.churn_risk,
        "engagement": view.engagement,
        "clv": view.clv,
        "consents": {
            key: {"granted": c.granted, "at": c.at.isoformat()} for key, c in view.consents.items()
        },
        "traits": view.traits,
        "open_cases": view.open_cases,
        "activity": {
            kind: [[p.at.isoformat(), p.channel] for p in points]
            for kind, points in view.activity.items()
        },
        "closed_cases": view.closed_cases,
    }


async def views(
    conn: asyncpg.Connection, contact_ids: Iterable[str], *, lock: bool = True
) -> dict[str, ContactView]:
    """The views of these contacts that exist; locked for the caller's transaction unless
    `lock=False`."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM contact_views WHERE contact_id = ANY($1::text[]) "
        "ORDER BY contact_id" + (" FOR UPDATE" if lock else ""),
        sorted(set(contact_ids)),
    )
    return {row["contact_id"]: view_of(row) for row in rows}


async def save_views(conn: asyncpg.Connection, changed: Sequence[ContactView]) -> None:
    """Insert or update these views (one statement)."""
    if not changed:
        return
    await conn.execute(
        f"INSERT INTO contact_views ({_COLUMNS}) SELECT {_COLUMNS} "
        "FROM jsonb_populate_recordset(NULL::contact_views, $1::jsonb) "
        "ON CONFLICT (contact_id) DO UPDATE SET stage = EXCLUDED.stage, "
        "value_tier = EXCLUDED.value_tier, churn_band = EXCLUDED.churn_band, "
        "churn_risk = EXCLUDED.churn_risk, engagement = EXCLUDED.engagement, "
        "clv = EXCLUDED.clv, consents = EXCLUDED.consents, traits = EXCLUDED.traits, "
        "open_cases = EXCLUDED.open_cases, activity = EXCLUDED.activity, "
        "closed_cases = EXCLUDED.closed_cases, updated_at = clock_timestamp()",
        [_row(v) for v in changed],  # JSON-ready already
    )


async def delete_views(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> int:
    """Forget these contacts' views; how many there were."""
    status: str = await conn.execute(
        "DELETE FROM contact_views WHERE contact_id = ANY($1::text[])", list(contact_ids)
    )
    return int(status.split()[-1])


async def page_of_views(conn: asyncpg.Connection, *, after: str, limit: int) -> list[ContactView]:
    """Views in contact id order after `after` (the backfill and the preview walk them)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM contact_views WHERE contact_id > $1 ORDER BY contact_id LIMIT $2",
        after,
        limit,
    )
    return [view_of(row) for row in rows]
