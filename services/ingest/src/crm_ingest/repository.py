"""The only SQL of ingest: the channels' API keys. Callers own connections and transactions."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from crm_ingest.domain import ApiKey

_COLUMNS = "id, source, prefix, description, created_by, created_at, revoked_at, last_used_at"


class DuplicatePrefixError(Exception):
    """Another key already has this public prefix."""


def _api_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        source=row["source"],
        prefix=row["prefix"],
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    source: str,
    prefix: str,
    key_hash: bytes,
    description: str,
    created_by: str,
) -> ApiKey:
    """Store a new key (its hash only)."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO ingest_api_keys (source, prefix, key_hash, description, created_by) "
            f"VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
            source,
            prefix,
            key_hash,
            description,
            created_by,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicatePrefixError(prefix) from exc
    assert row is not None
    return _api_key(row)


async def find_api_key(conn: asyncpg.Connection, *, prefix: str) -> tuple[ApiKey, bytes] | None:
    """The key with this public prefix and its stored hash, revoked or not."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, key_hash FROM ingest_api_keys WHERE prefix = $1", prefix
    )
    return None if row is None else (_api_key(row), bytes(row["key_hash"]))


async def get_api_key(conn: asyncpg.Connection, *, key_id: UUID) -> ApiKey | None:
    """One key by id."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM ingest_api_keys WHERE id = $1", key_id)
    return None if row is None else _api_key(row)


async def list_api_keys(
    conn: asyncpg.Connection,
    *,
    source: str | None,
    include_revoked: bool,
    limit: int,
    offset: int,
) -> list[ApiKey]:
    """Keys, oldest first, of one source or of all."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM ingest_api_keys "
        "WHERE ($1::text IS NULL OR source = $1) AND ($2 OR revoked_at IS NULL) "
        "ORDER BY created_at, id LIMIT $3 OFFSET $4",
        source,
        include_revoked,
        limit,
        offset,
    )
    return [_api_key(row) for row in rows]


async def revoke_api_key(conn: asyncpg.Connection, *, key_id: UUID) -> ApiKey | None:
    """Revoke a key (a revoked key keeps its first revocation time); None if there is none."""
    row = await conn.fetchrow(
        "UPDATE ingest_api_keys SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE id = $1 RETURNING {_COLUMNS}",
        key_id,
    )
    return None if row is None else _api_key(row)


async def touch_api_key(conn: asyncpg.Connection, *, key_id: UUID, every_seconds: float) -> None:
    """Record that the key was used, at most once per `every_seconds` (no write per request)."""
    await conn.execute(
        "UPDATE ingest_api_keys SET last_used_at = now() "
        "WHERE id = $1 AND (last_used_at IS NULL "
        "OR last_used_at < now() - make_interval(secs => $2))",
        key_id,
        every_seconds,
    )
