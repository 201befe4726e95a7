"""asyncpg pool with JSON codecs, rows as dicts, and database creation for the embedded stack
and tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool whose connections speak JSON for json/jsonb columns."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """Open one connection (for listeners and admin work) with the same codecs as the pool."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


def with_database(dsn: str, database: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def quote_ident(name: str) -> str:
    """Quote an identifier for the few statements that cannot take parameters."""
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_dsn: str, database: str) -> bool:
    """Create `database` on the server of `admin_dsn` unless it exists; True when created."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(database)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, database: str) -> None:
    """Drop `database`, disconnecting whoever is still connected."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
    finally:
        await conn.close()


def as_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """One row as a plain dict (None stays None)."""
    return None if record is None else dict(record.items())


def as_dicts(records: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    """Rows as plain dicts."""
    return [dict(r.items()) for r in records]


def contains_pattern(text: str) -> str:
    """A case-insensitive LIKE pattern matching `text` anywhere (`%`, `_`, `\\` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"
