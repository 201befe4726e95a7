"""The one thing crmctl reads from a service's database: its outbox rows not yet published."""

from __future__ import annotations

import asyncpg

from crm_kit.outbox import pending_count


async def unsent_outbox_rows(dsn: str) -> int:
    """Rows of the service's outbox not published yet (0 when it keeps no outbox)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        if await conn.fetchval("SELECT to_regclass('kit_outbox') IS NULL"):
            return 0
        return await pending_count(conn)
    finally:
        await conn.close()
