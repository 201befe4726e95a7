"""SQL of the identity graph: identifiers, merges and the pairs never to merge again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts.batching import StoredLink
from crm_contacts.domain import Identifier, KnownContact
from crm_contacts.repository.contacts import touch
from crm_contracts.contacts import IdentityType
from crm_kit.db import as_dicts

# Tables whose rows follow a contact into a merge and back out of it.
_MOVABLE = ("identifiers", "timeline", "consent_history", "scores", "cases", "enrolments")


@dataclass(frozen=True)
class IdentifierLink:
    """A stored identifier and the contact it points at."""

    identifier: Identifier
    contact: KnownContact
    contact_status: str
    origin_id: str


async def find_identifiers(
    conn: asyncpg.Connection, identifiers: Sequence[Identifier]
) -> list[IdentifierLink]:
    """The stored links of these identifiers (one statement for all)."""
    if not identifiers:
        return []
    rows = await conn.fetch(
        """
        SELECT i.kind, i.value, i.contact_id, i.origin_contact_id, c.created_at, c.status
        FROM identifiers i JOIN contacts c ON c.id = i.contact_id
        JOIN unnest($1::text[], $2::text[]) AS wanted (kind, value)
          ON wanted.kind = i.kind AND wanted.value = i.value
        """,
        [i.kind.value for i in identifiers],
        [i.value for i in identifiers],
    )
    return [
        IdentifierLink(
            identifier=Identifier(IdentityType(r["kind"]), r["value"]),
            contact=KnownContact(r["contact_id"], r["created_at"]),
            contact_status=r["status"],
            origin_id=r["origin_contact_id"],
        )
        for r in rows
    ]


async def links_of(
    conn: asyncpg.Connection, identifiers: Sequence[Identifier]
) -> dict[Identifier, StoredLink]:
    """The stored link of each of these identifiers that has one (one statement for all)."""
    return {
        link.identifier: StoredLink(link.contact.id, link.origin_id, link.contact_status)
        for link in await find_identifiers(conn, list(dict.fromkeys(identifiers)))
    }


async def erased_digests(conn: asyncpg.Connection, digests: Sequence[str]) -> dict[str, datetime]:
    """When each of these identifier tombstones was written (absent: not erased)."""
    if not digests:
        return {}
    rows = await conn.fetch(
        "SELECT digest, erased_at FROM erased_identifiers WHERE digest = ANY($1::text[])",
        list(set(digests)),
    )
    return {r["digest"]: r["erased_at"] for r in rows}


@dataclass(frozen=True)
class NewLink:
    """An identifier to link to a contact, through the contact an interaction came by."""

    identifier: Identifier
    contact_id: str
    origin_id: str
    cause_event_id: str | None


async def insert_links(conn: asyncpg.Connection, links: Sequence[NewLink]) -> None:
    """Link identifiers to their contacts (one statement); like `insert_identifiers`, a
    concurrent link of the same identifier raises UniqueViolationError."""
    if not links:
        return
    ordered = sorted(links, key=lambda link: link.identifier)  # one lock order for every writer
    try:
        await conn.execute(
            """
            INSERT INTO identifiers (kind, value, contact_id, origin_contact_id, cause_event_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
            """,
            [link.identifier.kind.value for link in ordered],
            [link.identifier.value for link in ordered],
            [link.contact_id for link in ordered],
            [link.origin_id for link in ordered],
            [link.cause_event_id for link in ordered],
        )
    except asyncpg.UniqueViolationError:
        raise _concurrent_link() from None


def _concurrent_link() -> asyncpg.UniqueViolationError:
    # Postgres names the duplicate key (an email...) in its message; logs, retries and
    # dead letters get this one instead. Still a UniqueViolationError: it is retried.
    return asyncpg.UniqueViolationError("an identifier was linked by a concurrent transaction")


async def insert_identifiers(
    conn: asyncpg.Connection,
    *,
    contact_id: str,
    origin_id: str,
    identifiers: Sequence[Identifier],
    cause_event_id: str | None,
) -> None:
    """Link identifiers; a concurrent link of the same one raises UniqueViolationError."""
    if not identifiers:
        return
    ordered = sorted(identifiers)  # one lock order for every writer
    try:
        await conn.execute(
            """
            INSERT INTO identifiers (kind, value, contact_id, origin_contact_id, cause_event_id)
            SELECT k, v, $3, $4, $5 FROM unnest($1::text[], $2::text[]) AS u (k, v)
            """,
            [i.kind.value for i in ordered],
            [i.value for i in ordered],
            contact_id,
            origin_id,
            cause_event_id,
        )
    except asyncpg.UniqueViolationError:
        raise _concurrent_link() from None


async def release_identifiers(conn: asyncpg.Connection, identifiers: Sequence[Identifier]) -> None:
    """Unlink identifiers (of a deleted contact, before someone else takes them)."""
    if not identifiers:
        return
    await conn.execute(
        """
        DELETE FROM identifiers i USING unnest($1::text[], $2::text[]) AS u (k, v)
        WHERE i.kind = u.k AND i.value = u.v
        """,
        [i.kind.value for i in identifiers],
        [i.value for i in identifiers],
    )


async def identifiers_of(conn: asyncpg.Connection, contact_id: str) -> list[dict[str, Any]]:
    """A contact's identifiers, oldest first."""
    rows = await conn.fetch(
        "SELECT kind, value, origin_contact_id, cause_event_id, linked_at FROM identifiers "
        "WHERE contact_id = $1 ORDER BY linked_at, kind, value",
        contact_id,
    )
    return as_dicts(rows)


async def merge_contacts(
    conn: asyncpg.Connection,
    *,
    survivor_id: str,
    merged_ids: Sequence[str],
    matched_on: str | None,
    cause_event_id: str | None,
    actor: str | None,
) -> None:
    """Fold contacts into the survivor; every row keeps its origin for an unmerge."""
    merged = list(merged_ids)
    await conn.execute(
        "UPDATE contacts SET status = 'merged', merged_into = $1, ended_at = clock_timestamp(), "
        "updated_at = clock_timestamp() WHERE id = ANY($2::text[])",
        survivor_id,
        merged,
    )
    # Contacts merged into a merged contact keep pointing at it: the chain is the history.
    for table in _MOVABLE:
        await conn.execute(
            f"UPDATE {table} SET contact_id = $1 WHERE contact_id = ANY($2::text[])",
            survivor_id,
            merged,
        )
    await conn.execute(
        """
        INSERT INTO merges (survivor_id, merged_id, matched_on, cause_event_id, actor)
        SELECT $1, m, $3, $4, $5 FROM unnest($2::text[]) AS m
        """,
        survivor_id,
        merged,
        matched_on,
        cause_event_id,
        actor,
    )
    await touch(conn, survivor_id)


async def unmerge_contact(
    conn: asyncpg.Connection, *, survivor_id: str, merged_id: str, reason: str | None
) -> None:
    """Split a merged contact (and whatever was merged into it) back off the survivor."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE sub (id) AS (
            SELECT $1::text
            UNION
            SELECT c.id FROM contacts c JOIN sub ON c.merged_into = sub.id
        )
        SELECT id FROM sub
        """,
        merged_id,
    )
    origins = [r["id"] for r in rows]
    for table in _MOVABLE:
        await conn.execute(
            f"UPDATE {table} SET contact_id = $1 "
            "WHERE contact_id = $2 AND origin_contact_id = ANY($3::text[])",
            merged_id,
            survivor_id,
            origins,
        )
    await conn.execute(
        "UPDATE contacts SET status = 'active', merged_into = NULL, ended_at = NULL, "
        "updated_at = clock_timestamp() WHERE id = $1",
        merged_id,
    )
    await conn.execute(
        "UPDATE merges SET unmerged_at = clock_timestamp(), unmerge_reason = $2 "
        "WHERE merged_id = $1 AND unmerged_at IS NULL",
        merged_id,
        reason,
    )
    a, b = sorted((survivor_id, merged_id))
    await conn.execute(
        "INSERT INTO merge_exclusions (contact_a, contact_b) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING",
        a,
        b,
    )
    await touch(conn, survivor_id)


async def exclusions_among(
    conn: asyncpg.Connection, contact_ids: Sequence[str]
) -> frozenset[frozenset[str]]:
    """Pairs of these contacts that an agent split apart."""
    if len(contact_ids) < 2:
        return frozenset()
    rows = await conn.fetch(
        "SELECT contact_a, contact_b FROM merge_exclusions "
        "WHERE contact_a = ANY($1::text[]) AND contact_b = ANY($1::text[])",
        list(contact_ids),
    )
    return frozenset(frozenset((r["contact_a"], r["contact_b"])) for r in rows)


async def merges_of(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Merge history touching these contacts."""
    rows = await conn.fetch(
        "SELECT survivor_id, merged_id, matched_on, cause_event_id, actor, merged_at, "
        "unmerged_at, unmerge_reason FROM merges "
        "WHERE survivor_id = ANY($1::text[]) OR merged_id = ANY($1::text[]) ORDER BY id",
        list(contact_ids),
    )
    return as_dicts(rows)
