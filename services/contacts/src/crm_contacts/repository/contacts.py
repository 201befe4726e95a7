"""SQL of the `contacts` table: profiles, stage, status and the merge chain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts.domain import PROFILE_FIELDS, Identifier
from crm_kit.db import as_dict, as_dicts, contains_pattern

CONTACT_COLUMNS = (
    "id, status, stage, first_name, last_name, company, job_title, locale, country, city, "
    "timezone, custom, traits_time, account_id, merged_into, created_at, updated_at, ended_at"
)


async def insert_contact(
    conn: asyncpg.Connection,
    *,
    contact_id: str,
    stage: str,
    profile: dict[str, Any],
    traits_time: datetime | None,
    account_id: str | None = None,
) -> dict[str, Any]:
    """Create a contact; return its row."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO contacts (id, stage, first_name, last_name, company, job_title, locale,
                              country, city, timezone, custom, traits_time, account_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        RETURNING {CONTACT_COLUMNS}
        """,
        contact_id,
        stage,
        *(profile.get(name) for name in PROFILE_FIELDS),
        profile.get("custom") or {},
        traits_time,
        account_id,
    )
    assert row is not None
    return dict(row.items())


@dataclass(frozen=True)
class ContactWrite:
    """What a batch writes of a contact: its whole state after the batch."""

    id: str
    stage: str
    profile: dict[str, Any]
    traits_time: datetime | None
    account_id: str | None


def _columns(rows: Sequence[ContactWrite]) -> list[list[Any]]:
    return [
        [r.id for r in rows],
        [r.stage for r in rows],
        *([r.profile.get(name) for r in rows] for name in PROFILE_FIELDS),
        [json.dumps(r.profile.get("custom") or {}) for r in rows],
        [r.traits_time for r in rows],
        [r.account_id for r in rows],
    ]


_UNNEST_CONTACTS = """
    unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[])
    AS u (id, stage, first_name, last_name, company, job_title, locale, country, city,
          timezone, custom, traits_time, account_id)
"""


async def insert_contacts(conn: asyncpg.Connection, rows: Sequence[ContactWrite]) -> None:
    """Create contacts (one statement)."""
    if not rows:
        return
    await conn.execute(
        f"""
        INSERT INTO contacts (id, stage, first_name, last_name, company, job_title, locale,
                              country, city, timezone, custom, traits_time, account_id)
        SELECT id, stage, first_name, last_name, company, job_title, locale, country, city,
               timezone, custom::jsonb, traits_time, account_id
        FROM {_UNNEST_CONTACTS}
        """,
        *_columns(rows),
    )


async def update_contacts(conn: asyncpg.Connection, rows: Sequence[ContactWrite]) -> None:
    """Write the stage, profile, traits time and account of contacts (one statement)."""
    if not rows:
        return
    await conn.execute(
        f"""
        UPDATE contacts c SET stage = u.stage, first_name = u.first_name,
               last_name = u.last_name, company = u.company, job_title = u.job_title,
               locale = u.locale, country = u.country, city = u.city, timezone = u.timezone,
               custom = u.custom::jsonb, traits_time = u.traits_time, account_id = u.account_id,
               updated_at = clock_timestamp()
        FROM {_UNNEST_CONTACTS}
        WHERE c.id = u.id
        """,
        *_columns(sorted(rows, key=lambda r: r.id)),
    )


async def accounts_named(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, str | None]:
    """For each company name, the oldest account of that name (case-insensitive), if any."""
    if not names:
        return {}
    rows = await conn.fetch(
        """
        SELECT n.name, a.id FROM unnest($1::text[]) AS n (name)
        LEFT JOIN LATERAL (
            SELECT id FROM accounts WHERE lower(accounts.name) = lower(n.name)
            ORDER BY created_at, id LIMIT 1
        ) a ON true
        """,
        sorted(set(names)),
    )
    return {r["name"]: r["id"] for r in rows}


async def get_contact(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any] | None:
    """A contact's row, whatever its status."""
    return as_dict(
        await conn.fetchrow(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1", contact_id)
    )


async def lock_contacts(
    conn: asyncpg.Connection, contact_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Lock contacts for the transaction, in id order (so concurrent lockers never deadlock)."""
    rows = await conn.fetch(
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        sorted(set(contact_ids)),
    )
    return as_dicts(rows)


async def survivor_of(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any] | None:
    """The contact a (possibly merged) id ends at, following merged_into; None if unknown."""
    end = (await survivors_of(conn, [contact_id])).get(contact_id)
    return None if end is None else await get_contact(conn, end.id)


@dataclass(frozen=True)
class Survivor:
    """The contact an id ends at, following merged_into, and its status."""

    id: str
    status: str


async def survivors_of(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> dict[str, Survivor]:
    """For each of these (possibly merged) ids, the contact it ends at, following merged_into
    (one statement); unknown ids are left out."""
    if not contact_ids:
        return {}
    rows = await conn.fetch(
        """
        WITH RECURSIVE chain (asked, id, merged_into, status, depth) AS (
            SELECT id, id, merged_into, status, 0 FROM contacts WHERE id = ANY($1::text[])
            UNION ALL
            SELECT chain.asked, c.id, c.merged_into, c.status, chain.depth + 1
            FROM contacts c JOIN chain ON c.id = chain.merged_into
            WHERE chain.depth < 100
        )
        -- The chain carries each step's status: joining its ends back to contacts made the
        -- planner hash the whole table (5 ms a batch at 10,000 contacts, growing with them).
        SELECT DISTINCT ON (asked) asked, id, status FROM chain ORDER BY asked, depth DESC
        """,
        sorted(set(contact_ids)),
    )
    return {r["asked"]: Survivor(str(r["id"]), r["status"]) for r in rows}


async def merged_into(conn: asyncpg.Connection, survivor_id: str) -> list[str]:
    """Every contact merged (directly or through another) into a survivor."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE sub (id) AS (
            SELECT id FROM contacts WHERE merged_into = $1
            UNION
            SELECT c.id FROM contacts c JOIN sub ON c.merged_into = sub.id
        )
        SELECT id FROM sub ORDER BY id
        """,
        survivor_id,
    )
    return [r["id"] for r in rows]


async def update_profile(
    conn: asyncpg.Connection,
    contact_id: str,
    profile: dict[str, Any],
    *,
    traits_time: datetime | None = None,
) -> None:
    """Write the whole profile (and the event time of the traits, when given)."""
    await conn.execute(
        """
        UPDATE contacts SET first_name = $2, last_name = $3, company = $4, job_title = $5,
               locale = $6, country = $7, city = $8, timezone = $9, custom = $10,
               traits_time = COALESCE($11, traits_time), updated_at = clock_timestamp()
        WHERE id = $1
        """,
        contact_id,
        *(profile.get(name) for name in PROFILE_FIELDS),
        profile.get("custom") or {},
        traits_time,
    )


async def update_stage(conn: asyncpg.Connection, contact_id: str, stage: str) -> None:
    """Set a contact's lifecycle stage."""
    await conn.execute(
        "UPDATE contacts SET stage = $2, updated_at = clock_timestamp() WHERE id = $1",
        contact_id,
        stage,
    )


async def set_account(conn: asyncpg.Connection, contact_id: str, account_id: str | None) -> None:
    """Link a contact to an account (None: unlink)."""
    await conn.execute(
        "UPDATE contacts SET account_id = $2, updated_at = clock_timestamp() WHERE id = $1",
        contact_id,
        account_id,
    )


async def touch(conn: asyncpg.Connection, contact_id: str) -> None:
    """Mark a contact changed (list filters on updated_at)."""
    await conn.execute(
        "UPDATE contacts SET updated_at = clock_timestamp() WHERE id = $1", contact_id
    )


async def mark_deleted(conn: asyncpg.Connection, contact_id: str) -> None:
    """Soft-delete: the contact leaves every list."""
    await conn.execute(
        "UPDATE contacts SET status = 'deleted', ended_at = clock_timestamp(), "
        "updated_at = clock_timestamp() WHERE id = $1",
        contact_id,
    )


@dataclass(frozen=True)
class ContactFilter:
    """Filters of the contact list; every one optional."""

    stage: str | None = None
    account_id: str | None = None
    updated_since: datetime | None = None
    name: str | None = None
    identifier: Identifier | None = None


async def list_contacts(
    conn: asyncpg.Connection,
    filters: ContactFilter,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Active contacts by (updated_at, id), after a keyset cursor."""
    pattern = contains_pattern(filters.name) if filters.name else None
    rows = await conn.fetch(
        f"""
        SELECT {CONTACT_COLUMNS} FROM contacts c
        WHERE c.status = 'active'
          AND ($1::text IS NULL OR c.stage = $1)
          AND ($2::text IS NULL OR c.account_id = $2)
          AND ($3::timestamptz IS NULL OR c.updated_at >= $3)
          AND ($4::text IS NULL OR lower(concat_ws(' ', c.first_name, c.last_name)) LIKE $4)
          AND ($5::text IS NULL OR EXISTS (
                SELECT 1 FROM identifiers i
                WHERE i.contact_id = c.id AND i.kind = $5 AND i.value = $6))
          AND ($7::timestamptz IS NULL OR (c.updated_at, c.id) > ($7, $8::text))
        ORDER BY c.updated_at, c.id
        LIMIT $9
        """,
        filters.stage,
        filters.account_id,
        filters.updated_since,
        pattern,
        filters.identifier.kind.value if filters.identifier else None,
        filters.identifier.value if filters.identifier else None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return as_dicts(rows)
