"""The send ledger and the frequency caps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from crm_kit.rows import records


@dataclass(frozen=True, slots=True)
class Send:
    """What became of one step of one enrolment: `sent` with its event id, or `holdout`."""

    enrolment_id: str
    step_id: str
    campaign_id: str
    contact_id: str
    channel: str
    outcome: str
    at: datetime
    event_id: str | None


@dataclass(frozen=True, slots=True)
class Cap:
    """At most `max_sends` steps per contact on `channel` in any rolling `window`."""

    channel: str
    max_sends: int
    window_seconds: int

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


async def record_sends(conn: asyncpg.Connection, sends: Sequence[Send]) -> set[tuple[str, str]]:
    """Enter sends in the ledger; the (enrolment, step) pairs that were not there yet. A pair
    already there is never sent again."""
    if not sends:
        return set()
    rows = await conn.fetch(
        "INSERT INTO sends (enrolment_id, step_id, campaign_id, contact_id, channel, outcome, "
        "at, event_id) SELECT enrolment_id, step_id, campaign_id, contact_id, channel, outcome, "
        "at, event_id FROM jsonb_populate_recordset(NULL::sends, $1::jsonb) "
        "ON CONFLICT (enrolment_id, step_id) DO NOTHING RETURNING enrolment_id, step_id",
        records(sends),
    )
    return {(row["enrolment_id"], row["step_id"]) for row in rows}


async def caps(conn: asyncpg.Connection) -> dict[str, Cap]:
    rows = await conn.fetch(
        "SELECT channel, max_sends, window_seconds FROM frequency_caps ORDER BY channel"
    )
    return {
        row["channel"]: Cap(row["channel"], row["max_sends"], row["window_seconds"]) for row in rows
    }


async def set_cap(conn: asyncpg.Connection, cap: Cap) -> None:
    await conn.execute(
        "INSERT INTO frequency_caps (channel, max_sends, window_seconds) VALUES ($1, $2, $3) "
        "ON CONFLICT (channel) DO UPDATE SET max_sends = EXCLUDED.max_sends, "
        "window_seconds = EXCLUDED.window_seconds, updated_at = clock_timestamp()",
        cap.channel,
        cap.max_sends,
        cap.window_seconds,
    )


async def delete_cap(conn: asyncpg.Connection, channel: str) -> bool:
    status: str = await conn.execute("DELETE FROM frequency_caps WHERE channel = $1", channel)
    return status != "DELETE 0"


async def lock_capped(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]) -> None:
    """Serialise sends per contact and channel across replicas until the transaction ends:
    two campaigns due at once for one contact are counted against its cap one after the
    other. Locks are taken in one order, so two rounds cannot deadlock."""
    keys = sorted(set(pairs))
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(c || '/' || ch, 7)) "
            "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(c, ch, n) ORDER BY n",
            [c for c, _ in keys],
            [ch for _, ch in keys],
        )


async def sent_since(
    conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]], *, since: datetime
) -> dict[tuple[str, str], list[datetime]]:
    """The times of the non-transactional steps sent to each (contact, channel) after
    `since`: what counts against the caps."""
    keys = sorted(set(pairs))
    out: dict[tuple[str, str], list[datetime]] = {key: [] for key in keys}
    if not keys:
        return out
    rows = await conn.fetch(
        "SELECT s.contact_id, s.channel, s.at FROM sends s "
        "JOIN unnest($1::text[], $2::text[]) AS k(c, ch) ON s.contact_id = k.c "
        "AND s.channel = k.ch JOIN campaigns c ON c.id = s.campaign_id "
        "WHERE s.outcome = 'sent' AND s.at > $3 "
        "AND NOT coalesce((c.definition->>'transactional')::boolean, false)",
        [c for c, _ in keys],
        [ch for _, ch in keys],
        since,
    )
    for row in rows:
        out[(row["contact_id"], row["channel"])].append(row["at"])
    return out


async def move_sends(conn: asyncpg.Connection, merged_ids: Sequence[str], survivor_id: str) -> None:
    """Sends to merged contacts count against the survivor's caps."""
    await conn.execute(
        "UPDATE sends SET contact_id = $2 WHERE contact_id = ANY($1::text[])",
        list(merged_ids),
        survivor_id,
    )
