"""The lifecycle stage set by hand."""

from __future__ import annotations

from fastapi import APIRouter

from crm_contacts import handlers
from crm_contacts.api.contacts import ContactOut
from crm_contacts.api.dependencies import Ctx, Writer
from crm_contacts.api.models import Reason
from crm_contracts.contacts import LifecycleStage
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep

router = APIRouter()


class StageIn(Input):
    """A stage set by hand."""

    stage: LifecycleStage
    reason: Reason | None = None


@router.put(
    "/contacts/{contact_id}/stage", response_model=ContactOut, responses=problem_responses(404, 410)
)
async def set_stage(
    contact_id: str,
    body: StageIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> ContactOut:
    """Set the lifecycle stage by hand (backwards too); emits contact.lifecycle_changed."""
    contact = await in_transaction(
        conn,
        handlers.set_stage,
        ctx,
        contact_id=contact_id,
        stage=body.stage,
        reason=body.reason,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return ContactOut.from_details(contact)
