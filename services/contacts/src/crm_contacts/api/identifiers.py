"""Identifiers by hand: add an email, phone or id to a contact, or take one off it.

Both are POSTs with the identifier in the body, so that emails and phone numbers stay out
of paths and access logs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import Field

from crm_contacts import handlers
from crm_contacts.api.contacts import ContactOut, parse_identifier
from crm_contacts.api.dependencies import Ctx, Writer
from crm_contacts.api.models import Reason
from crm_contracts.contacts import IdentityType
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep

router = APIRouter()
_LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "It already pointed at the contact; nothing changed."},
    **problem_responses(404, 409, 410),
}


class IdentifierIn(Input):
    """An identifier: an external id is `system:id`, e.g. `webshop:c-42`."""

    kind: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=322)]


class UnlinkIn(IdentifierIn):
    """The identifier to take off, and why (optional)."""

    reason: Reason | None = None


@router.post(
    "/contacts/{contact_id}/identifiers",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=_LINK_RESPONSES,
)
async def link_identifier(
    contact_id: str,
    body: IdentifierIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
    response: Response,
) -> ContactOut:
    """Add an identifier to the contact; emits contact.identity_linked. One that belongs to
    another contact is a 409 naming it (merge them if they are one person)."""
    identifier = parse_identifier(body.kind, body.value, ctx.settings.default_phone_region)
    contact, linked = await in_transaction(
        conn,
        handlers.link_identifier,
        ctx,
        contact_id=contact_id,
        identifier=identifier,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    if not linked:
        response.status_code = status.HTTP_200_OK
    return ContactOut.from_details(contact)


@router.post(
    "/contacts/{contact_id}/identifiers/unlink",
    response_model=ContactOut,
    responses=problem_responses(404, 409, 410),
)
async def unlink_identifier(
    contact_id: str,
    body: UnlinkIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> ContactOut:
    """Take an identifier off the contact; emits contact.identity_unlinked. Later events that
    carry it alone no longer find this contact."""
    identifier = parse_identifier(body.kind, body.value, ctx.settings.default_phone_region)
    contact = await in_transaction(
        conn,
        handlers.unlink_identifier,
        ctx,
        contact_id=contact_id,
        identifier=identifier,
        reason=body.reason,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return ContactOut.from_details(contact)
