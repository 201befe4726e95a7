"""Cases and their activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from crm_cases.domain import Case
from crm_contracts.cases import CasePriority, CaseStatus
from crm_kit.db import as_dicts
from crm_kit.rows import records

COLUMNS = tuple(f.name for f in fields(Case))
_SELECT = ", ".join(COLUMNS)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")


def case_of(row: asyncpg.Record) -> Case:
    """A row of `cases` as a Case."""
    values = {name: row[name] for name in COLUMNS}
    values["priority"] = CasePriority(values["priority"])
    values["status"] = CaseStatus(values["status"])
    return Case(**values)


async def cases_by_id(
    conn: asyncpg.Connection, case_ids: Sequence[str], *, lock: bool = True
) -> dict[str, Case]:
    """The cases with these ids; locked for the caller's transaction unless `lock=False`."""
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM cases WHERE id = ANY($1::text[])" + (" FOR UPDATE" if lock else ""),
        list(case_ids),
    )
    return {row["id"]: case_of(row) for row in rows}


async def open_cases_of(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> list[Case]:
    """The open cases of these contacts, oldest first, locked for the caller's transaction."""
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM cases WHERE contact_id = ANY($1::text[]) "
        "AND status IN ('new', 'open', 'pending', 'on_hold') ORDER BY opened_at, id FOR UPDATE",
        list(contact_ids),
    )
    return [case_of(row) for row in rows]


async def save_cases(conn: asyncpg.Connection, cases: Sequence[Case]) -> None:
    """Insert or update these cases (one statement)."""
    if not cases:
        return
    await conn.execute(
        f"INSERT INTO cases ({_SELECT}) SELECT {_SELECT} "
        "FROM jsonb_populate_recordset(NULL::cases, $1::jsonb) "
        f"ON CONFLICT (id) DO UPDATE SET {_UPDATES}, updated_at = clock_timestamp()",
        records(cases),
    )


@dataclass(frozen=True, slots=True)
class Activity:
    """One thing that happened on a case: a customer's or agent's interaction, a comment."""

    case_id: str
    kind: str  # customer | agent | comment
    at: datetime
    author: str | None = None
    event_id: str | None = None
    channel: str | None = None
    body: str | None = None
    internal: bool = False


async def add_activity(conn: asyncpg.Connection, items: Sequence[Activity]) -> None:
    """Append activity rows in the order given (one statement)."""
    if not items:
        return
    await conn.execute(
        "INSERT INTO case_activity (case_id, kind, at, author, event_id, channel, body, internal) "
        "SELECT case_id, kind, at, author, event_id, channel, body, internal "
        "FROM jsonb_populate_recordset(NULL::case_activity, $1::jsonb) WITH ORDINALITY AS r "
        "ORDER BY r.ordinality",
        records(items),
    )


async def activity_of(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    """A case's activity in the order it was recorded."""
    return as_dicts(
        await conn.fetch(
            "SELECT n, kind, at, author, event_id, channel, body, internal FROM case_activity "
            "WHERE case_id = $1 ORDER BY n",
            case_id,
        )
    )


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What a list of cases is narrowed to; None: any."""

    status: str | None = None
    priority: str | None = None
    queue: str | None = None
    assignee: str | None = None
    contact_id: str | None = None
    breached: bool | None = None


async def list_cases(
    conn: asyncpg.Connection,
    where: CaseFilter,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Case]:
    """Cases newest first (opened_at, id), filtered, after a cursor."""
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM cases c WHERE "
        "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR priority = $2) "
        "AND ($3::text IS NULL OR queue = $3) AND ($4::text IS NULL OR assignee = $4) "
        "AND ($5::text IS NULL OR contact_id = $5) "
        "AND ($6::boolean IS NULL OR $6 = EXISTS "
        "(SELECT 1 FROM case_sla_breaches b WHERE b.case_id = c.id)) "
        "AND ($7::timestamptz IS NULL OR (opened_at, id) < ($7, $8)) "
        "ORDER BY opened_at DESC, id DESC LIMIT $9",
        where.status,
        where.priority,
        where.queue,
        where.assignee,
        where.contact_id,
        where.breached,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [case_of(row) for row in rows]


async def history_of(
    conn: asyncpg.Connection, contact_id: str, *, besides: str, limit: int
) -> list[dict[str, Any]]:
    """The contact's other cases, newest first: what whoever picks up a case should know."""
    return as_dicts(
        await conn.fetch(
            "SELECT id, subject, category, status, priority, opened_at, resolved_at, resolution, "
            "csat, fcr AS first_contact_resolution FROM cases WHERE contact_id = $1 AND id <> $2 "
            "ORDER BY opened_at DESC, id DESC LIMIT $3",
            contact_id,
            besides,
            limit,
        )
    )


async def cases_of_contacts(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> list[str]:
    """Ids of every case of these contacts."""
    rows = await conn.fetch(
        "SELECT id FROM cases WHERE contact_id = ANY($1::text[])", list(contact_ids)
    )
    return [row["id"] for row in rows]


async def move_cases(conn: asyncpg.Connection, merged_ids: Sequence[str], survivor: str) -> int:
    """A merge: the merged contacts' cases now belong to the survivor."""
    status = await conn.execute(
        "UPDATE cases SET contact_id = $2, updated_at = clock_timestamp() "
        "WHERE contact_id = ANY($1::text[])",
        list(merged_ids),
        survivor,
    )
    return int(status.split()[-1])


async def restore_cases(conn: asyncpg.Connection, restored: str, survivor: str) -> int:
    """An unmerge: the cases that were the restored contact's before the merge go back."""
    status = await conn.execute(
        "UPDATE cases SET contact_id = origin_contact_id, updated_at = clock_timestamp() "
        "WHERE contact_id = $2 AND origin_contact_id = $1",
        restored,
        survivor,
    )
    return int(status.split()[-1])


async def erase_cases(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> int:
    """An erasure: every word of these contacts' cases goes; their statistics (times,
    priority, SLA, CSAT, FCR) stay for the analytics."""
    status = await conn.execute(
        "UPDATE cases SET subject = 'erased', description = NULL, erased = true, "
        "updated_at = clock_timestamp() WHERE contact_id = ANY($1::text[]) AND NOT erased",
        list(contact_ids),
    )
    await conn.execute(
        "UPDATE case_activity SET body = NULL, event_id = NULL WHERE case_id IN "
        "(SELECT id FROM cases WHERE contact_id = ANY($1::text[]))",
        list(contact_ids),
    )
    return int(status.split()[-1])
