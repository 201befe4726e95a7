"""SQL of the answers of POSTs sent with an Idempotency-Key."""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_contacts.repository.rows import as_dict


async def stored_response(
    conn: asyncpg.Connection, *, principal: str, operation: str, key: str
) -> dict[str, Any] | None:
    """The response saved for an Idempotency-Key."""
    return as_dict(
        await conn.fetchrow(
            "SELECT request_hash, status_code, body FROM api_idempotency "
            "WHERE principal = $1 AND operation = $2 AND key = $3",
            principal,
            operation,
            key,
        )
    )


async def store_response(
    conn: asyncpg.Connection,
    *,
    principal: str,
    operation: str,
    key: str,
    request_hash: str,
    status_code: int,
    body: dict[str, Any],
    contact_id: str | None,
) -> None:
    """Save the response of a POST; a concurrent twin raises UniqueViolationError."""
    await conn.execute(
        "INSERT INTO api_idempotency (principal, operation, key, request_hash, status_code, "
        "body, contact_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        principal,
        operation,
        key,
        request_hash,
        status_code,
        body,
        contact_id,
    )
