"""Which example campaigns and segments were created once (`examples_loaded`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def lock_loaded(conn: asyncpg.Connection) -> set[str]:
    """The examples created before, locked so that one replica loads them at a time."""
    await conn.execute("LOCK TABLE examples_loaded IN EXCLUSIVE MODE")
    return {row["id"] for row in await conn.fetch("SELECT id FROM examples_loaded")}


async def record_loaded(conn: asyncpg.Connection, ids: Sequence[str]) -> None:
    await conn.execute(
        "INSERT INTO examples_loaded (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        list(ids),
    )
