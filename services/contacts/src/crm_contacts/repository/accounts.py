"""SQL of the `accounts` table (companies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from crm_kit.db import as_dict, as_dicts, contains_pattern

ACCOUNT_COLUMNS = "id, name, domain, industry, created_at, updated_at"


async def insert_account(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    name: str,
    domain: str | None,
    industry: str | None,
) -> dict[str, Any]:
    """Create an account; a taken domain raises UniqueViolationError."""
    row = await conn.fetchrow(
        f"INSERT INTO accounts (id, name, domain, industry) VALUES ($1, $2, $3, $4) "
        f"RETURNING {ACCOUNT_COLUMNS}",
        account_id,
        name,
        domain,
        industry,
    )
    assert row is not None
    return dict(row.items())


async def get_account(conn: asyncpg.Connection, account_id: str) -> dict[str, Any] | None:
    """One account."""
    return as_dict(
        await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
    )


async def account_by_domain(conn: asyncpg.Connection, domain: str) -> dict[str, Any] | None:
    """The account that owns a domain."""
    return as_dict(
        await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = $1", domain)
    )


async def account_by_name(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    """The oldest account with this name (case-insensitive)."""
    return as_dict(
        await conn.fetchrow(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE lower(name) = lower($1) "
            "ORDER BY created_at, id LIMIT 1",
            name,
        )
    )


async def list_accounts(
    conn: asyncpg.Connection,
    *,
    name: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Accounts by (created_at, id) after a keyset cursor."""
    pattern = contains_pattern(name) if name else None
    rows = await conn.fetch(
        f"""
        SELECT {ACCOUNT_COLUMNS} FROM accounts
        WHERE ($1::text IS NULL OR lower(name) LIKE $1)
          AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text))
        ORDER BY created_at, id LIMIT $4
        """,
        pattern,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return as_dicts(rows)
