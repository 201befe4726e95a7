"""The local projection of crm.scores.v1: each contact's value tier and churn band."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from crm_kit.rows import records


@dataclass(frozen=True, slots=True)
class Standing:
    """What a contact's scores say of its value: tier and band, as of an event time."""

    contact_id: str
    value_tier: str
    churn_band: str
    score_time: datetime
    event_id: str


async def standings(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> dict[str, Standing]:
    """The projection of these contacts (those scored so far)."""
    rows = await conn.fetch(
        "SELECT contact_id, value_tier, churn_band, score_time, event_id FROM case_contact_scores "
        "WHERE contact_id = ANY($1::text[])",
        list(contact_ids),
    )
    return {row["contact_id"]: Standing(**dict(row)) for row in rows}


async def save_standings(conn: asyncpg.Connection, items: Sequence[Standing]) -> None:
    """Keep each contact's latest standing by event time (one statement)."""
    if not items:
        return
    await conn.execute(
        "INSERT INTO case_contact_scores (contact_id, value_tier, churn_band, score_time, "
        "event_id) SELECT contact_id, value_tier, churn_band, score_time, event_id "
        "FROM jsonb_populate_recordset(NULL::case_contact_scores, $1::jsonb) "
        "ON CONFLICT (contact_id) DO UPDATE SET value_tier = EXCLUDED.value_tier, "
        "churn_band = EXCLUDED.churn_band, score_time = EXCLUDED.score_time, "
        "event_id = EXCLUDED.event_id WHERE EXCLUDED.score_time >= case_contact_scores.score_time",
        records(items),
    )


async def forget_standings(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> None:
    """A merge or an erasure: these contacts' projection goes (the survivor's own scores
    arrive from scoring)."""
    await conn.execute(
        "DELETE FROM case_contact_scores WHERE contact_id = ANY($1::text[])", list(contact_ids)
    )
