"""Segments and memberships."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_kit.rows import records

_SEGMENT = (
    "id, name, description, rule, version, backfilling, backfill_after, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """A segment as stored; `rule` is the rule tree's JSON."""

    id: str
    name: str
    description: str | None
    rule: dict[str, Any]
    version: int
    backfilling: bool
    backfill_after: str
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Membership:
    """Whether a contact is in a segment, since when, and when time alone changes that."""

    segment_id: str
    contact_id: str
    member: bool
    since: datetime | None
    changes_at: datetime | None

    @property
    def worth_keeping(self) -> bool:
        return self.member or self.changes_at is not None


@dataclass(frozen=True, slots=True)
class SegmentStamp:
    """A segment's version as stored; `rule` only when the caller did not know this version."""

    id: str
    version: int
    updated_at: datetime
    backfilling: bool
    rule: dict[str, Any] | None


def _segment(row: asyncpg.Record) -> SegmentRow:
    return SegmentRow(**{name: row[name] for name in SegmentRow.__slots__})


async def all_segments(conn: asyncpg.Connection) -> list[SegmentRow]:
    rows = await conn.fetch(f"SELECT {_SEGMENT} FROM segments ORDER BY id")
    return [_segment(row) for row in rows]


async def segment_stamps(
    conn: asyncpg.Connection, known: dict[str, tuple[int, datetime]]
) -> list[SegmentStamp]:
    """Every segment's version, by id, with its rule unless `known` holds that version
    (id -> (version, updated_at)); one statement, so one snapshot."""
    rows = await conn.fetch(
        "SELECT s.id, s.version, s.updated_at, s.backfilling, "
        "CASE WHEN k.id IS NULL THEN s.rule END AS rule FROM segments s "
        "LEFT JOIN unnest($1::text[], $2::integer[], $3::timestamptz[]) AS k(id, version, at) "
        "ON k.id = s.id AND k.version = s.version AND k.at = s.updated_at ORDER BY s.id",
        list(known),
        [version for version, _ in known.values()],
        [at for _, at in known.values()],
    )
    return [SegmentStamp(**{name: row[name] for name in SegmentStamp.__slots__}) for row in rows]


async def segment(
    conn: asyncpg.Connection, segment_id: str, *, lock: bool = False
) -> SegmentRow | None:
    row = await conn.fetchrow(
        f"SELECT {_SEGMENT} FROM segments WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        segment_id,
    )
    return _segment(row) if row else None


async def insert_segment(
    conn: asyncpg.Connection, *, id: str, name: str, description: str | None, rule: dict[str, Any]
) -> SegmentRow:
    row = await conn.fetchrow(
        "INSERT INTO segments (id, name, description, rule) VALUES ($1, $2, $3, $4) "
        f"RETURNING {_SEGMENT}",
        id,
        name,
        description,
        rule,
    )
    return _segment(row)


async def update_segment(
    conn: asyncpg.Connection, *, id: str, name: str, description: str | None, rule: dict[str, Any]
) -> SegmentRow:
    """A new rule: a new version, evaluated again over every contact by the backfill."""
    row = await conn.fetchrow(
        "UPDATE segments SET name = $2, description = $3, rule = $4, version = version + 1, "
        "backfilling = true, backfill_after = '', updated_at = clock_timestamp() "
        f"WHERE id = $1 RETURNING {_SEGMENT}",
        id,
        name,
        description,
        rule,
    )
    return _segment(row)


async def delete_segment(conn: asyncpg.Connection, segment_id: str) -> None:
    await conn.execute("DELETE FROM segments WHERE id = $1", segment_id)


async def backfilling(conn: asyncpg.Connection) -> SegmentRow | None:
    """One segment still being evaluated over every contact, locked; others' rounds skip it.

    The lock is `NO KEY UPDATE`: a campaign saved on this segment meanwhile (its foreign key
    takes `KEY SHARE`) does not wait for the round."""
    row = await conn.fetchrow(
        f"SELECT {_SEGMENT} FROM segments WHERE backfilling ORDER BY updated_at, id LIMIT 1 "
        "FOR NO KEY UPDATE SKIP LOCKED"
    )
    return _segment(row) if row else None


async def advance_backfill(conn: asyncpg.Connection, segment_id: str, after: str | None) -> None:
    """Record how far the backfill got (None: done)."""
    await conn.execute(
        "UPDATE segments SET backfilling = $2, backfill_after = $3 WHERE id = $1",
        segment_id,
        after is not None,
        after or "",
    )


_MEMBERSHIP = "segment_id, contact_id, member, since, changes_at"


def _membership(row: asyncpg.Record) -> Membership:
    return Membership(**{name: row[name] for name in Membership.__slots__})


async def memberships_of(
    conn: asyncpg.Connection, contact_ids: Iterable[str]
) -> dict[tuple[str, str], Membership]:
    """Every membership row of these contacts, locked, by (segment, contact)."""
    rows = await conn.fetch(
        f"SELECT {_MEMBERSHIP} FROM memberships WHERE contact_id = ANY($1::text[]) "
        "ORDER BY segment_id, contact_id FOR UPDATE",
        sorted(set(contact_ids)),
    )
    return {(row["segment_id"], row["contact_id"]): _membership(row) for row in rows}


async def due_contacts(conn: asyncpg.Connection, *, now: datetime, limit: int) -> list[str]:
    """Contacts with an answer that time has changed by `now`; their rows are locked and
    other rounds pass them by."""
    rows = await conn.fetch(
        "SELECT DISTINCT contact_id FROM (SELECT contact_id FROM memberships "
        "WHERE changes_at <= $1 ORDER BY changes_at LIMIT $2 FOR UPDATE SKIP LOCKED) due",
        now,
        limit,
    )
    return [row["contact_id"] for row in rows]


async def save_memberships(conn: asyncpg.Connection, changed: Sequence[Membership]) -> None:
    """Write these memberships: the ones worth keeping upserted, the rest deleted."""
    keep = [m for m in changed if m.worth_keeping]
    drop = [m for m in changed if not m.worth_keeping]
    if keep:
        await conn.execute(
            f"INSERT INTO memberships ({_MEMBERSHIP}) SELECT {_MEMBERSHIP} "
            "FROM jsonb_populate_recordset(NULL::memberships, $1::jsonb) "
            "ON CONFLICT (segment_id, contact_id) DO UPDATE SET member = EXCLUDED.member, "
            "since = EXCLUDED.since, changes_at = EXCLUDED.changes_at",
            records(keep),
        )
    if drop:
        await conn.execute(
            "DELETE FROM memberships m USING unnest($1::text[], $2::text[]) AS d(s, c) "
            "WHERE m.segment_id = d.s AND m.contact_id = d.c",
            [m.segment_id for m in drop],
            [m.contact_id for m in drop],
        )


async def forget_contacts(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> None:
    await conn.execute(
        "DELETE FROM memberships WHERE contact_id = ANY($1::text[])", list(contact_ids)
    )


async def members(
    conn: asyncpg.Connection, segment_id: str, *, after: str = "", limit: int = 1000
) -> list[str]:
    """Members of a segment in contact id order after `after`."""
    rows = await conn.fetch(
        "SELECT contact_id FROM memberships WHERE segment_id = $1 AND member "
        "AND contact_id > $2 ORDER BY contact_id LIMIT $3",
        segment_id,
        after,
        limit,
    )
    return [row["contact_id"] for row in rows]


async def member_count(conn: asyncpg.Connection, segment_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM memberships WHERE segment_id = $1 AND member", segment_id
    )
    return count
