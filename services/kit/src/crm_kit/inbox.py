"""Idempotent consumer: remember which events a consumer applied, in the effect's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def claim(
    conn: asyncpg.Connection, consumer: str, keys: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Record `(source, id)` pairs for `consumer`; return those not seen before.

    Call it inside the transaction that applies the events: if that transaction
    rolls back, the claim goes with it, and a redelivery is applied then.
    """
    unique = list(dict.fromkeys(keys))
    if not unique:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO kit_inbox (consumer, source, event_id)
        SELECT $1, s, i FROM unnest($2::text[], $3::text[]) AS t(s, i)
        ON CONFLICT DO NOTHING
        RETURNING source, event_id
        """,
        consumer,
        [source for source, _ in unique],
        [event_id for _, event_id in unique],
    )
    return {(row["source"], row["event_id"]) for row in rows}
