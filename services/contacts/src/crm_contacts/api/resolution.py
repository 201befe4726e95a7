"""Merges by hand, and unmerges of contacts that are not one person."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from crm_contacts import handlers
from crm_contacts.api.contacts import ContactOut
from crm_contacts.api.dependencies import Ctx, Writer
from crm_contacts.api.models import ContactIdPath, Reason
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep

router = APIRouter()


class UnmergeIn(Input):
    """Which merged contact to split back off."""

    merged_id: ContactIdPath
    reason: Reason | None = None


class MergeIn(Input):
    """Contacts to fold into this one (chosen by hand)."""

    merged_ids: list[ContactIdPath] = Field(min_length=1, max_length=20)


class UnmergeOut(BaseModel):
    """Both contacts after the split."""

    survivor: ContactOut
    restored: ContactOut


@router.post(
    "/contacts/{contact_id}/merge",
    response_model=ContactOut,
    responses=problem_responses(404, 409, 410),
)
async def merge_contacts(
    contact_id: str,
    body: MergeIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> ContactOut:
    """Fold other contacts into this one by hand; emits contact.merged."""
    survivor = await in_transaction(
        conn,
        handlers.merge_by_hand,
        ctx,
        survivor_id=contact_id,
        merged_ids=body.merged_ids,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return ContactOut.from_details(survivor)


@router.post(
    "/contacts/{contact_id}/unmerge",
    response_model=UnmergeOut,
    responses=problem_responses(404, 409),
)
async def unmerge_contact(
    contact_id: str,
    body: UnmergeIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> UnmergeOut:
    """Split a wrongly merged contact back off; emits contact.unmerged."""
    survivor, restored = await in_transaction(
        conn,
        handlers.unmerge,
        ctx,
        survivor_id=contact_id,
        merged_id=body.merged_id,
        reason=body.reason,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return UnmergeOut(
        survivor=ContactOut.from_details(survivor),
        restored=ContactOut.from_details(restored),
    )
