"""The contact an id names now (NotFound if unknown, Gone if deleted or erased; locked for a
change), and the details the API shows of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_contacts import repository as repo
from crm_kit.errors import Conflict, Gone, NotFound


async def contact_or_fail(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any]:
    """A contact row, or NotFound."""
    row = await repo.get_contact(conn, contact_id)
    if row is None:
        raise NotFound("No contact with this id.")
    return row


async def resolve_contact(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any]:
    """The contact an id names now: a merged id answers for its survivor; NotFound or Gone."""
    row = await repo.survivor_of(conn, contact_id)
    if row is None:
        raise NotFound("No contact with this id.")
    if row["status"] == "deleted":
        raise Gone("The contact was deleted.", reason="contact-deleted")
    if row["status"] == "erased":
        raise Gone("The contact was erased.", reason="contact-erased")
    return row


async def active_contact(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any]:
    """The contact an id names now, locked for a change; Conflict if it stopped being active."""
    row = await resolve_contact(conn, contact_id)
    locked = await repo.lock_contacts(conn, [str(row["id"])])
    if not locked or locked[0]["status"] != "active":
        raise Conflict("The contact changed meanwhile; try again.")
    return locked[0]


@dataclass(frozen=True)
class ContactDetails:
    """A contact row with its identifiers, the ids merged into it, and the merged id asked
    for when it is not the contact's own."""

    row: dict[str, Any]
    identifiers: list[dict[str, Any]]
    merged_ids: list[str]
    resolved_from: str | None


async def contact_details(
    conn: asyncpg.Connection, row: dict[str, Any], *, asked: str | None = None
) -> ContactDetails:
    """The details of a contact row (`asked`: the id the caller named it by)."""
    contact_id = str(row["id"])
    return ContactDetails(
        row=row,
        identifiers=await repo.identifiers_of(conn, contact_id),
        merged_ids=await repo.merged_into(conn, contact_id),
        resolved_from=asked if asked is not None and asked != contact_id else None,
    )
