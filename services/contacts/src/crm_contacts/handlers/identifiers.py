"""Identifiers by hand: an agent adds an email, phone or id to a contact, or takes one off."""

from __future__ import annotations

import logging

import asyncpg

from crm_contacts import repository as repo
from crm_contacts.domain import Identifier
from crm_contacts.handlers.contacts import identity_linked, public_value
from crm_contacts.handlers.context import Context, Publisher
from crm_contacts.handlers.lookups import (
    ContactDetails,
    active_contact,
    contact_details,
    contact_or_fail,
)
from crm_contracts import contacts as ct
from crm_kit.errors import Conflict, NotFound

log = logging.getLogger(__name__)


def _taken(identifier: Identifier, owner: str) -> Conflict:
    return Conflict(
        f"The {identifier.kind.value} already belongs to another contact; "
        "merge the two if they are one person.",
        reason="identifier-taken",
        extensions={"contact_id": owner},
    )


async def link_identifier(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    identifier: Identifier,
    actor: str,
    correlation_id: str,
) -> tuple[ContactDetails, bool]:
    """Point an identifier at the contact; False when it already did (nothing changes).

    An identifier of another active contact is a Conflict naming that contact; one left by a
    deleted contact is taken over, as when a contact is created."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    links = await repo.find_identifiers(conn, [identifier])
    if links and links[0].contact.id == target:
        return await contact_details(conn, contact, asked=contact_id), False
    if links and links[0].contact_status == "active":
        raise _taken(identifier, links[0].contact.id)
    await repo.release_identifiers(conn, [link.identifier for link in links])
    try:
        await repo.insert_identifiers(
            conn, contact_id=target, origin_id=target, identifiers=[identifier], cause_event_id=None
        )
    except asyncpg.UniqueViolationError:
        # An interaction linked it to someone a moment ago; the agent sees who on a retry.
        raise Conflict(
            "The identifier was linked meanwhile; try again.", reason="identifier-taken"
        ) from None
    await repo.touch(conn, target)
    out = Publisher(ctx, correlation_id=correlation_id)
    out.contact_event(
        ct.CONTACT_IDENTITY_LINKED, identity_linked(target, identifier, None), key=target
    )
    await out.flush(conn)
    log.info(
        "identifier linked by hand",
        extra={"contact_id": target, "identity_type": identifier.kind.value, "actor": actor},
    )
    details = await contact_details(conn, await contact_or_fail(conn, target), asked=contact_id)
    return details, True


async def unlink_identifier(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    identifier: Identifier,
    reason: str | None,
    actor: str,
    correlation_id: str,
) -> ContactDetails:
    """Take an identifier off the contact: later events carrying it alone no longer find
    this contact (NotFound when it does not point at the contact)."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    links = await repo.find_identifiers(conn, [identifier])
    if not links or links[0].contact.id != target:
        raise NotFound(
            f"The contact has no such {identifier.kind.value}.", reason="identifier-not-found"
        )
    await repo.release_identifiers(conn, [identifier])
    await repo.touch(conn, target)
    out = Publisher(ctx, correlation_id=correlation_id)
    out.contact_event(
        ct.CONTACT_IDENTITY_UNLINKED,
        ct.ContactIdentityUnlinked(
            contact_id=target,
            identity_type=identifier.kind,
            system=identifier.system,
            identifier=public_value(identifier),
            reason=reason,
        ),
        key=target,
    )
    await out.flush(conn)
    log.info(
        "identifier unlinked by hand",
        extra={"contact_id": target, "identity_type": identifier.kind.value, "actor": actor},
    )
    return await contact_details(conn, await contact_or_fail(conn, target), asked=contact_id)
