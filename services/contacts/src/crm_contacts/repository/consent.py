"""SQL of the consent history; the effective statement is the latest by event time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts.domain import ConsentStatement
from crm_contacts.repository.rows import as_dicts

CONSENT_COLUMNS = (
    "id, contact_id, origin_contact_id, channel, purpose, granted, source, actor, "
    "cause_event_id, note, time, recorded_at"
)


async def latest_consent(
    conn: asyncpg.Connection, contact_id: str, channel: str | None, purpose: str
) -> ConsentStatement | None:
    """The effective statement for one (channel, purpose)."""
    row = await conn.fetchrow(
        "SELECT granted, time FROM consent_history "
        "WHERE contact_id = $1 AND channel IS NOT DISTINCT FROM $2 AND purpose = $3 "
        "ORDER BY time DESC, id DESC LIMIT 1",
        contact_id,
        channel,
        purpose,
    )
    return None if row is None else ConsentStatement(row["granted"], row["time"])


async def insert_consent(
    conn: asyncpg.Connection,
    *,
    contact_id: str,
    origin_id: str,
    channel: str | None,
    purpose: str,
    granted: bool,
    source: str,
    actor: str | None,
    cause_event_id: str | None,
    note: str | None,
    time: datetime,
) -> None:
    """Record a consent statement."""
    await conn.execute(
        """
        INSERT INTO consent_history (contact_id, origin_contact_id, channel, purpose, granted,
                                     source, actor, cause_event_id, note, time)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """,
        contact_id,
        origin_id,
        channel,
        purpose,
        granted,
        source,
        actor,
        cause_event_id,
        note,
        time,
    )


async def current_consents(conn: asyncpg.Connection, contact_id: str) -> list[dict[str, Any]]:
    """The effective consent per (channel, purpose)."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT ON (purpose, channel) {CONSENT_COLUMNS} FROM consent_history
        WHERE contact_id = $1
        ORDER BY purpose, channel NULLS FIRST, time DESC, id DESC
        """,
        contact_id,
    )
    return as_dicts(rows)


async def consent_history(conn: asyncpg.Connection, contact_id: str) -> list[dict[str, Any]]:
    """Every consent statement, newest first."""
    rows = await conn.fetch(
        f"SELECT {CONSENT_COLUMNS} FROM consent_history WHERE contact_id = $1 "
        "ORDER BY time DESC, id DESC",
        contact_id,
    )
    return as_dicts(rows)
