"""The statements a block of code sends to Postgres on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from asyncpg.connection import LoggedQuery

# asyncpg's one-off type introspection on a connection's first use of a type: not the code's.
_INTROSPECTION = ("typeinfo_tree", "'jit'")


@contextlib.asynccontextmanager
async def statements_on(conn: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """Yield a list that holds, once the block has ended, the statements it sent on `conn`.

    asyncpg hands a finished query to its loggers on a later turn of the event loop, so at the
    block's end a marker query is sent and waited for (with a deadline) in the log: what was
    logged before it is the block's, complete.
    """
    marker = f"SELECT 'end of block {uuid.uuid4().hex}'"
    logged: list[str] = []

    def log(record: LoggedQuery) -> None:
        logged.append(record.query)

    statements: list[str] = []
    conn.add_query_logger(log)
    try:
        yield statements
        await conn.execute(marker)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while marker not in logged:
            if loop.time() > deadline:
                raise AssertionError("asyncpg never reported the marker query")
            await asyncio.sleep(0.01)
    finally:
        conn.remove_query_logger(log)
    before = logged[: logged.index(marker)]
    statements.extend(q for q in before if not any(part in q for part in _INTROSPECTION))
