"""Privacy (scope `privacy:erase`): the export of everything held about a person, erasure,
and the status of an erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from crm_contacts import handlers
from crm_contacts.api.accounts import AccountOut
from crm_contacts.api.consent import ConsentOut
from crm_contacts.api.contacts import ContactOut
from crm_contacts.api.dependencies import Ctx, Eraser
from crm_contacts.api.models import Reason
from crm_contacts.api.timeline import CaseOut, EnrolmentOut, ScoresOut, TimelineEntryOut
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()


class EraseIn(Input):
    """Why the person's data is erased (optional; goes to the other services, not stored)."""

    reason: Reason | None = None


class MergeOut(BaseModel):
    """A merge of the contact's history."""

    survivor_id: str
    merged_id: str
    matched_on: str | None
    cause_event_id: str | None
    actor: str | None
    merged_at: datetime
    unmerged_at: datetime | None
    unmerge_reason: str | None


class ExportOut(BaseModel):
    """Everything held about a person (subject access request)."""

    contact: ContactOut
    account: AccountOut | None
    consent_history: list[ConsentOut]
    timeline: list[TimelineEntryOut]
    cases: list[CaseOut]
    campaigns: list[EnrolmentOut]
    scores: ScoresOut | None
    merges: list[MergeOut]

    @classmethod
    def from_export(cls, export: handlers.Export) -> ExportOut:
        """Everything held about a person."""
        return cls(
            contact=ContactOut.from_details(export.contact),
            account=None if export.account is None else AccountOut(**export.account),
            consent_history=[ConsentOut(**c) for c in export.consent_history],
            timeline=[TimelineEntryOut.from_row(r) for r in export.timeline],
            cases=[CaseOut(**c) for c in export.cases],
            campaigns=[EnrolmentOut(**e) for e in export.campaigns],
            scores=None if export.scores is None else ScoresOut(**export.scores),
            merges=[MergeOut(**m) for m in export.merges],
        )


class ErasureOut(BaseModel):
    """An erasure request and the services that reported it done."""

    request_id: str
    contact_id: str
    requested_at: datetime
    completed_by: list[dict[str, Any]] = Field(default_factory=list)


@router.get(
    "/contacts/{contact_id}/export", response_model=ExportOut, responses=problem_responses(404)
)
async def export_contact(contact_id: str, principal: Eraser, conn: SnapshotDep) -> ExportOut:
    """Everything held about the person, erased contacts included (scope privacy:erase)."""
    return ExportOut.from_export(await handlers.export_contact(conn, contact_id))


@router.post(
    "/contacts/{contact_id}/erase",
    response_model=ErasureOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404),
)
async def erase_contact(
    contact_id: str,
    principal: Eraser,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
    body: EraseIn | None = None,
) -> JSONResponse:
    """Erase the person here now and ask every service to (202; 200 if already erased)."""
    erasure = await in_transaction(
        conn,
        handlers.erase_contact,
        ctx,
        contact_id=contact_id,
        requested_by=principal.subject,
        reason=None if body is None else body.reason,
        correlation_id=correlation_id,
    )
    out = ErasureOut(**erasure.status)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=202 if erasure.created else 200,
        headers={"Location": f"/v1/erasures/{out.request_id}"},
    )


@router.get("/erasures/{request_id}", response_model=ErasureOut, responses=problem_responses(404))
async def get_erasure(request_id: str, principal: Eraser, conn: SnapshotDep) -> ErasureOut:
    """An erasure request, and which services reported it done."""
    return ErasureOut(**await handlers.erasure_status(conn, request_id))
