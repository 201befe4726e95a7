"""SQL of erasures: the erasing itself, identifier tombstones, requests and completions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from crm_kit import idempotency, outbox
from crm_kit.db import as_dict, as_dicts


async def erased_at(conn: asyncpg.Connection, digests: Sequence[str]) -> datetime | None:
    """When the latest of these identifier tombstones was written (None: none is erased)."""
    if not digests:
        return None
    value = await conn.fetchval(
        "SELECT max(erased_at) FROM erased_identifiers WHERE digest = ANY($1::text[])",
        list(digests),
    )
    return value if isinstance(value, datetime) else None


async def erase_contacts(
    conn: asyncpg.Connection,
    *,
    contact_id: str,
    contact_ids: Sequence[str],
    digests: Sequence[str],
    request_id: str,
    requested_by: str,
    erased_at: datetime,
) -> int:
    """Remove every piece of personal data of these contacts; keep tombstones. Rows touched."""
    ids = list(contact_ids)
    touched = 0
    await conn.execute(
        "INSERT INTO erased_identifiers (digest, erased_at, request_id) "
        "SELECT d, $2, $3 FROM unnest($1::text[]) AS d "
        "ON CONFLICT (digest) DO UPDATE SET erased_at = GREATEST(erased_identifiers.erased_at, "
        "EXCLUDED.erased_at), request_id = EXCLUDED.request_id",
        list(digests),
        erased_at,
        request_id,
    )
    statements = (
        "DELETE FROM identifiers WHERE contact_id = ANY($1::text[])",
        "UPDATE contacts SET first_name = NULL, last_name = NULL, company = NULL, "
        "job_title = NULL, locale = NULL, country = NULL, city = NULL, timezone = NULL, "
        "custom = '{}'::jsonb, status = 'erased', ended_at = clock_timestamp(), "
        "updated_at = clock_timestamp() WHERE id = ANY($1::text[])",
        "UPDATE timeline SET data = NULL WHERE contact_id = ANY($1::text[]) AND data IS NOT NULL",
        "UPDATE consent_history SET note = NULL WHERE contact_id = ANY($1::text[]) "
        "AND note IS NOT NULL",
        "UPDATE cases SET title = NULL WHERE contact_id = ANY($1::text[]) AND title IS NOT NULL",
        "UPDATE merges SET unmerge_reason = NULL WHERE (survivor_id = ANY($1::text[]) "
        "OR merged_id = ANY($1::text[])) AND unmerge_reason IS NOT NULL",
    )
    for statement in statements:
        status = await conn.execute(statement, ids)
        touched += int(status.rsplit(" ", 1)[-1])
    # Answers of POSTs about the person, and events about them in the outbox (profiles in
    # contact.created...) go too.
    touched += await idempotency.forget(conn, ids)
    await outbox.forget(conn, ids)
    await conn.execute(
        "INSERT INTO erasures (request_id, contact_id, requested_by, requested_at) "
        "VALUES ($1, $2, $3, $4)",
        request_id,
        contact_id,
        requested_by,
        erased_at,
    )
    return touched


async def erasure_of_contact(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any] | None:
    """The erasure request of an erased contact."""
    return as_dict(
        await conn.fetchrow(
            "SELECT request_id, contact_id, requested_by, requested_at FROM erasures "
            "WHERE contact_id = $1 ORDER BY requested_at LIMIT 1",
            contact_id,
        )
    )


async def get_erasure(conn: asyncpg.Connection, request_id: str) -> dict[str, Any] | None:
    """One erasure request."""
    return as_dict(
        await conn.fetchrow(
            "SELECT request_id, contact_id, requested_by, requested_at FROM erasures "
            "WHERE request_id = $1",
            request_id,
        )
    )


async def record_erasure_completion(
    conn: asyncpg.Connection,
    *,
    request_id: str,
    service: str,
    contact_id: str,
    records_erased: int | None,
    completed_at: datetime,
) -> None:
    """Remember that a service finished an erasure."""
    await conn.execute(
        "INSERT INTO erasure_completions (request_id, service, contact_id, records_erased, "
        "completed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        request_id,
        service,
        contact_id,
        records_erased,
        completed_at,
    )


async def erasure_completions(conn: asyncpg.Connection, request_id: str) -> list[dict[str, Any]]:
    """Which services finished an erasure."""
    rows = await conn.fetch(
        "SELECT service, records_erased, completed_at FROM erasure_completions "
        "WHERE request_id = $1 ORDER BY completed_at, service",
        request_id,
    )
    return as_dicts(rows)
