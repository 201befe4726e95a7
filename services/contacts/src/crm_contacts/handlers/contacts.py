"""Contacts by hand: create, change, delete, read and search."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.domain import Identifier
from crm_contacts.handlers.context import Context, Publisher, new_id
from crm_contacts.handlers.lifecycle import lifecycle_changed
from crm_contacts.handlers.lookups import (
    ContactDetails,
    active_contact,
    contact_details,
    contact_or_fail,
    resolve_contact,
)
from crm_contracts import contacts as ct
from crm_kit.errors import Conflict, InvalidInput
from crm_kit.idempotency import Answer, IdempotentPost, answer_once
from crm_kit.pages import RowPage, decode_cursor, page_of

log = logging.getLogger(__name__)


def profile_of(row: dict[str, Any]) -> dict[str, Any]:
    """The profile traits of a contact row."""
    profile = {name: row.get(name) for name in domain.PROFILE_FIELDS}
    profile["custom"] = dict(row.get("custom") or {})
    return profile


def profile_model(profile: dict[str, Any]) -> ct.Profile:
    """The profile traits as they go into events."""
    return ct.Profile.model_validate(profile)


def public_value(identifier: Identifier) -> str | None:
    """What events may say of an identifier's value: never an email or a phone number."""
    if identifier.kind == ct.IdentityType.EXTERNAL_ID:
        return identifier.value.split(":", 1)[1]
    return None if identifier.is_personal else identifier.value


def identity_linked(
    contact_id: str, identifier: Identifier, cause_event_id: str | None
) -> ct.ContactIdentityLinked:
    """The identity_linked event: emails and phone numbers are never in it."""
    return ct.ContactIdentityLinked(
        contact_id=contact_id,
        identity_type=identifier.kind,
        system=identifier.system,
        identifier=public_value(identifier),
        cause_event_id=cause_event_id,
    )


@dataclass(frozen=True)
class NewContact:
    """A contact an agent creates."""

    identifiers: tuple[Identifier, ...]
    profile: dict[str, Any]
    stage: ct.LifecycleStage | None
    account_id: str | None


async def create_contact(
    conn: asyncpg.Connection,
    ctx: Context,
    command: NewContact,
    *,
    actor: str,
    correlation_id: str,
) -> dict[str, Any]:
    """Create a contact; Conflict when one of its identifiers already belongs to someone."""
    taken = await repo.find_identifiers(conn, command.identifiers)
    active = [link for link in taken if link.contact_status == "active"]
    if active:
        raise Conflict(
            f"The {active[0].identifier.kind.value} already belongs to a contact.",
            reason="identifier-taken",
            extensions={"contact_id": active[0].contact.id},
        )
    await repo.release_identifiers(conn, [link.identifier for link in taken])
    if command.account_id is not None and await repo.get_account(conn, command.account_id) is None:
        raise InvalidInput("No account with this id.", reason="unknown-account")
    stage = command.stage or ctx.lifecycle.initial_stage
    contact_id = new_id("c")
    row = await repo.insert_contact(
        conn,
        contact_id=contact_id,
        stage=stage.value,
        profile=command.profile,
        traits_time=None,
        account_id=command.account_id,
    )
    await repo.insert_identifiers(
        conn,
        contact_id=contact_id,
        origin_id=contact_id,
        identifiers=command.identifiers,
        cause_event_id=None,
    )
    out = Publisher(ctx, correlation_id=correlation_id)
    out.contact_event(
        ct.CONTACT_CREATED,
        ct.ContactCreated(
            contact_id=contact_id, stage=stage, profile=profile_model(profile_of(row))
        ),
        key=contact_id,
    )
    for identifier in command.identifiers:
        out.contact_event(
            ct.CONTACT_IDENTITY_LINKED,
            identity_linked(contact_id, identifier, None),
            key=contact_id,
        )
    lifecycle_changed(out, contact_id, None, stage, None, "manual")
    await out.flush(conn)
    log.info("contact created by hand", extra={"contact_id": contact_id, "actor": actor})
    return row


async def create_contact_once(
    conn: asyncpg.Connection,
    ctx: Context,
    command: NewContact,
    *,
    post: IdempotentPost,
    render: Callable[[ContactDetails], BaseModel],
    correlation_id: str,
) -> Answer:
    """Create a contact in a transaction of its own; a repeated Idempotency-Key gets the
    first answer (`render` makes the answer of the new contact)."""

    async def create() -> tuple[BaseModel, str]:
        row = await create_contact(
            conn, ctx, command, actor=post.principal, correlation_id=correlation_id
        )
        out = render(await contact_details(conn, row))
        return out, str(row["id"])

    return await answer_once(conn, post, create)


_UNSET: Any = object()


async def update_contact(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    changes: dict[str, Any],
    correlation_id: str,
) -> ContactDetails:
    """Change profile fields (None clears one) and the account link."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    profile = profile_of(contact)
    changed: list[str] = []
    for name, value in changes.items():
        if name in domain.PROFILE_FIELDS and profile.get(name) != value:
            profile[name] = value
            changed.append(name)
    if "custom" in changes and changes["custom"] != profile["custom"]:
        profile["custom"] = changes["custom"] or {}
        changed.append("custom")
    account_id = changes.get("account_id", _UNSET)
    if account_id is not _UNSET and account_id != contact.get("account_id"):
        if account_id is not None and await repo.get_account(conn, account_id) is None:
            raise InvalidInput("No account with this id.", reason="unknown-account")
        await repo.set_account(conn, target, account_id)
        changed.append("account_id")
    if changed:
        await repo.update_profile(conn, target, profile)
        out = Publisher(ctx, correlation_id=correlation_id)
        out.contact_event(
            ct.CONTACT_UPDATED,
            ct.ContactUpdated(
                contact_id=target, profile=profile_model(profile), changed_fields=changed
            ),
            key=target,
        )
        await out.flush(conn)
    return await contact_details(conn, await contact_or_fail(conn, target), asked=contact_id)


async def delete_contact(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    reason: str | None,
    actor: str,
    correlation_id: str,
) -> None:
    """Soft-delete: hidden from every list; its identifiers go to whoever comes next."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    await repo.mark_deleted(conn, target)
    out = Publisher(ctx, correlation_id=correlation_id)
    out.contact_event(
        ct.CONTACT_DELETED, ct.ContactDeleted(contact_id=target, reason=reason), key=target
    )
    await out.flush(conn)
    log.info("contact deleted", extra={"contact_id": target, "actor": actor})


async def get_contact(conn: asyncpg.Connection, contact_id: str) -> ContactDetails:
    """One contact; a merged id answers for its survivor."""
    row = await resolve_contact(conn, contact_id)
    return await contact_details(conn, row, asked=contact_id)


async def search_contacts(
    conn: asyncpg.Connection,
    *,
    identifier: Identifier | None,
    name: str | None,
    stage: ct.LifecycleStage | None,
    account_id: str | None,
    updated_since: datetime | None,
    cursor: str | None,
    limit: int,
) -> RowPage:
    """Active contacts by one identifier or a name, stage, account and update time."""
    after = decode_cursor(cursor, datetime, str) if cursor else None
    rows = await repo.list_contacts(
        conn,
        repo.ContactFilter(
            stage=None if stage is None else stage.value,
            account_id=account_id,
            updated_since=updated_since,
            name=name,
            identifier=identifier,
        ),
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
    )
    return page_of(rows, limit, "updated_at", "id")
