"""SQL of the timeline and of the projections of other services' events (scores, cases,
campaign enrolments) that the 360 view reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts.domain import TimelineEntry
from crm_kit.db import as_dict, as_dicts

TIMELINE_COLUMNS = (
    "id, contact_id, origin_contact_id, source, event_id, type, kind, channel, time, "
    "recorded_at, data"
)


async def insert_timeline(conn: asyncpg.Connection, entries: Sequence[TimelineEntry]) -> int:
    """Add entries (one statement); an event already there is skipped. Returns rows added."""
    if not entries:
        return 0
    rows = await conn.fetch(
        """
        INSERT INTO timeline (contact_id, origin_contact_id, source, event_id, type, kind,
                              channel, time, data)
        SELECT c, o, s, e, t, k, ch, tm, d::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::timestamptz[], $9::text[])
             AS u (c, o, s, e, t, k, ch, tm, d)
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING id
        """,
        [e.contact_id for e in entries],
        [e.origin_id for e in entries],
        [e.source for e in entries],
        [e.event_id for e in entries],
        [e.type for e in entries],
        [e.kind for e in entries],
        [e.channel for e in entries],
        [e.time for e in entries],
        [json.dumps(e.data) for e in entries],
    )
    return len(rows)


# An agent's interaction (a reply on a case) is not the customer's activity: lifecycle rules,
# which read these counts, leave it out (`TimelineEntry.by_agent`).
_NOT_BY_AGENT = "NOT (type = 'crm.interaction.recorded' AND data ? 'agent_id')"


async def count_kinds(
    conn: asyncpg.Connection, contact_id: str, kinds: Sequence[str]
) -> dict[str, int]:
    """How many timeline entries of each kind a contact has, agents' interactions left out."""
    if not kinds:
        return {}
    rows = await conn.fetch(
        f"SELECT kind, count(*) AS n FROM timeline "
        f"WHERE contact_id = $1 AND kind = ANY($2::text[]) AND {_NOT_BY_AGENT} GROUP BY kind",
        contact_id,
        list(kinds),
    )
    return {r["kind"]: int(r["n"]) for r in rows}


async def count_kinds_of(
    conn: asyncpg.Connection, contact_ids: Sequence[str], kinds: Sequence[str]
) -> dict[tuple[str, str], int]:
    """How many timeline entries of each kind each of these contacts has, agents' interactions
    left out (one statement)."""
    if not contact_ids or not kinds:
        return {}
    rows = await conn.fetch(
        f"SELECT contact_id, kind, count(*) AS n FROM timeline "
        f"WHERE contact_id = ANY($1::text[]) AND kind = ANY($2::text[]) AND {_NOT_BY_AGENT} "
        f"GROUP BY contact_id, kind",
        list(contact_ids),
        list(kinds),
    )
    return {(r["contact_id"], r["kind"]): int(r["n"]) for r in rows}


async def recorded_events(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (source, event id) are on a timeline already."""
    if not keys:
        return set()
    rows = await conn.fetch(
        """
        SELECT t.source, t.event_id FROM timeline t
        JOIN unnest($1::text[], $2::text[]) AS u (s, e) ON t.source = u.s AND t.event_id = u.e
        """,
        [source for source, _ in keys],
        [event_id for _, event_id in keys],
    )
    return {(r["source"], r["event_id"]) for r in rows}


@dataclass(frozen=True)
class TimelineFilter:
    """Filters of a timeline query; lists match any of their values."""

    kinds: Sequence[str] = ()
    channels: Sequence[str] = ()
    sources: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None


async def timeline_page(
    conn: asyncpg.Connection,
    contact_id: str,
    filters: TimelineFilter,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
    ascending: bool = False,
) -> list[dict[str, Any]]:
    """Timeline entries by event time (newest first unless ascending), after a keyset cursor."""
    direction = "ASC" if ascending else "DESC"
    compare = ">" if ascending else "<"
    rows = await conn.fetch(
        f"""
        SELECT {TIMELINE_COLUMNS} FROM timeline
        WHERE contact_id = $1
          AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
          AND (cardinality($3::text[]) = 0 OR channel = ANY($3::text[]))
          AND (cardinality($4::text[]) = 0 OR source = ANY($4::text[]))
          AND ($5::timestamptz IS NULL OR time >= $5)
          AND ($6::timestamptz IS NULL OR time < $6)
          AND ($7::timestamptz IS NULL OR (time, id) {compare} ($7, $8::bigint))
        ORDER BY time {direction}, id {direction}
        LIMIT $9
        """,
        contact_id,
        list(filters.kinds),
        list(filters.channels),
        list(filters.sources),
        filters.since,
        filters.until,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return as_dicts(rows)


# -- projections of other services ---------------------------------------------------------


@dataclass(frozen=True)
class ScoreWrite:
    """A score event's scores, for the contact (`origin_id`) it was about."""

    origin_id: str
    contact_id: str
    model_version: str
    scores: dict[str, Any]
    time: datetime
    event_id: str


async def upsert_scores(conn: asyncpg.Connection, writes: Sequence[ScoreWrite]) -> None:
    """`upsert_score` for each write in turn, in one statement: per origin, the write that
    would be left is the latest by time (of equal times, the last), and only it is upserted
    (one statement cannot update a row twice)."""
    last: dict[str, ScoreWrite] = {}
    for write in writes:
        kept = last.get(write.origin_id)
        if kept is None or kept.time <= write.time:
            last[write.origin_id] = write
    if not last:
        return
    rows = [last[origin] for origin in sorted(last)]
    await conn.execute(
        """
        INSERT INTO scores (origin_contact_id, contact_id, model_version, scores, time, event_id)
        SELECT o, c, m, s::jsonb, t, e
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                    $6::text[]) AS u (o, c, m, s, t, e)
        ON CONFLICT (origin_contact_id) DO UPDATE
        SET model_version = EXCLUDED.model_version, scores = EXCLUDED.scores,
            time = EXCLUDED.time, event_id = EXCLUDED.event_id
        WHERE scores.time <= EXCLUDED.time
        """,
        [r.origin_id for r in rows],
        [r.contact_id for r in rows],
        [r.model_version for r in rows],
        [json.dumps(r.scores) for r in rows],
        [r.time for r in rows],
        [r.event_id for r in rows],
    )


async def current_scores(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any] | None:
    """The latest scores of a contact (merged contacts included)."""
    return as_dict(
        await conn.fetchrow(
            "SELECT model_version, scores, time, event_id FROM scores WHERE contact_id = $1 "
            "ORDER BY time DESC LIMIT 1",
            contact_id,
        )
    )


async def upsert_case(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    contact_id: str,
    origin_id: str,
    time: datetime,
    title: str | None,
    queue: str | None,
    priority: str | None,
    status: str | None,
    assignee: str | None,
    assignee_set: bool,
    opened: bool,
) -> None:
    """Apply one case event to the case projection; a status older than the stored one loses."""
    await conn.execute(
        """
        INSERT INTO cases (case_id, contact_id, origin_contact_id, title, queue, priority,
                           status, status_time, assignee, opened_at)
        VALUES ($1, $2, $11, $3, $4, $5, COALESCE($6::text, 'open'), $7::timestamptz, $8,
                CASE WHEN $9::boolean THEN $7::timestamptz END)
        ON CONFLICT (case_id) DO UPDATE SET
            title = COALESCE($3::text, cases.title),
            queue = COALESCE($4::text, cases.queue),
            priority = COALESCE($5::text, cases.priority),
            status = CASE WHEN $6::text IS NOT NULL AND $7::timestamptz >= cases.status_time
                          THEN $6::text ELSE cases.status END,
            status_time = CASE WHEN $6::text IS NOT NULL AND $7::timestamptz >= cases.status_time
                               THEN $7::timestamptz ELSE cases.status_time END,
            assignee = CASE WHEN $10::boolean THEN $8::text ELSE cases.assignee END,
            opened_at = COALESCE(cases.opened_at, CASE WHEN $9::boolean THEN $7::timestamptz END)
        """,
        case_id,
        contact_id,
        title,
        queue,
        priority,
        status,
        time,
        assignee,
        opened,
        assignee_set,
        origin_id,
    )


async def open_cases(conn: asyncpg.Connection, contact_id: str) -> list[dict[str, Any]]:
    """Cases of a contact that are neither resolved nor closed."""
    rows = await conn.fetch(
        "SELECT case_id, title, queue, priority, status, assignee, opened_at, status_time "
        "FROM cases WHERE contact_id = $1 AND status NOT IN ('resolved', 'closed') "
        "ORDER BY opened_at NULLS LAST, case_id",
        contact_id,
    )
    return as_dicts(rows)


async def cases_of(conn: asyncpg.Connection, contact_id: str) -> list[dict[str, Any]]:
    """Every case of a contact."""
    rows = await conn.fetch(
        "SELECT case_id, title, queue, priority, status, assignee, opened_at, status_time "
        "FROM cases WHERE contact_id = $1 ORDER BY opened_at NULLS LAST, case_id",
        contact_id,
    )
    return as_dicts(rows)


async def upsert_enrolment(
    conn: asyncpg.Connection,
    *,
    enrolment_id: str,
    campaign_id: str,
    contact_id: str,
    origin_id: str,
    enrolled_at: datetime | None = None,
    converted_at: datetime | None = None,
    exited_at: datetime | None = None,
    exit_reason: str | None = None,
) -> None:
    """Apply one campaign event to the enrolment projection."""
    await conn.execute(
        """
        INSERT INTO enrolments (enrolment_id, campaign_id, contact_id, origin_contact_id,
                                enrolled_at, converted_at, exited_at, exit_reason)
        VALUES ($1, $2, $3, $8, $4::timestamptz, $5::timestamptz, $6::timestamptz, $7::text)
        ON CONFLICT (enrolment_id) DO UPDATE SET
            enrolled_at = COALESCE(LEAST(enrolments.enrolled_at, $4::timestamptz),
                                   enrolments.enrolled_at, $4::timestamptz),
            converted_at = COALESCE(enrolments.converted_at, $5::timestamptz),
            exited_at = COALESCE(enrolments.exited_at, $6::timestamptz),
            exit_reason = COALESCE(enrolments.exit_reason, $7::text)
        """,
        enrolment_id,
        campaign_id,
        contact_id,
        enrolled_at,
        converted_at,
        exited_at,
        exit_reason,
        origin_id,
    )


async def end_campaign(conn: asyncpg.Connection, campaign_id: str, time: datetime) -> None:
    """A completed campaign ends every enrolment still active."""
    await conn.execute(
        "UPDATE enrolments SET exited_at = $2, exit_reason = 'campaign_ended' "
        "WHERE campaign_id = $1 AND exited_at IS NULL",
        campaign_id,
        time,
    )


async def enrolments_of(
    conn: asyncpg.Connection, contact_id: str, *, active_only: bool
) -> list[dict[str, Any]]:
    """A contact's campaign enrolments (only those not exited when active_only)."""
    rows = await conn.fetch(
        "SELECT enrolment_id, campaign_id, enrolled_at, converted_at, exited_at, exit_reason "
        "FROM enrolments WHERE contact_id = $1 AND (NOT $2 OR exited_at IS NULL) "
        "ORDER BY enrolled_at NULLS LAST, enrolment_id",
        contact_id,
        active_only,
    )
    return as_dicts(rows)
