"""SQL of the consent history; the effective statement is the latest by event time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts.domain import ConsentStatement
from crm_kit.db import as_dicts

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


ConsentKey = tuple[str, str | None, str]  # contact id, channel (None: every channel), purpose


async def latest_consents(
    conn: asyncpg.Connection, keys: Sequence[ConsentKey]
) -> dict[ConsentKey, ConsentStatement]:
    """The effective statement for each (contact, channel, purpose) that has one (one
    statement for all)."""
    if not keys:
        return {}
    wanted = sorted(set(keys), key=lambda k: (k[0], k[1] or "", k[2]))
    rows = await conn.fetch(
        """
        SELECT u.n, l.granted, l.time
        FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u (c, ch, p, n)
        JOIN LATERAL (
            SELECT granted, time FROM consent_history
            WHERE contact_id = u.c AND channel IS NOT DISTINCT FROM u.ch AND purpose = u.p
            ORDER BY time DESC, id DESC LIMIT 1
        ) l ON true
        """,
        [k[0] for k in wanted],
        [k[1] for k in wanted],
        [k[2] for k in wanted],
    )
    return {wanted[r["n"] - 1]: ConsentStatement(r["granted"], r["time"]) for r in rows}


@dataclass(frozen=True)
class NewConsent:
    """A consent statement an interaction made."""

    contact_id: str
    origin_id: str
    channel: str | None
    purpose: str
    granted: bool
    source: str
    cause_event_id: str
    time: datetime


async def insert_consents(conn: asyncpg.Connection, statements: Sequence[NewConsent]) -> None:
    """Record consent statements of interactions, in order (one statement)."""
    if not statements:
        return
    await conn.execute(
        """
        INSERT INTO consent_history (contact_id, origin_contact_id, channel, purpose, granted,
                                     source, cause_event_id, time)
        SELECT c, o, ch, p, g, s, e, t
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::text[],
                    $7::text[], $8::timestamptz[]) WITH ORDINALITY AS u (c, o, ch, p, g, s, e, t, n)
        ORDER BY n
        """,
        [s.contact_id for s in statements],
        [s.origin_id for s in statements],
        [s.channel for s in statements],
        [s.purpose for s in statements],
        [s.granted for s in statements],
        [s.source for s in statements],
        [s.cause_event_id for s in statements],
        [s.time for s in statements],
    )
