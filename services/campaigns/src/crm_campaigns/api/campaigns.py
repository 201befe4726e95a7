"""Campaigns: define, read, launch, pause, complete; stats; a contact's enrolments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, Field

from crm_campaigns.api.dependencies import Ctx, Reader, ResourceId, Writer
from crm_campaigns.definitions import CampaignDefinition
from crm_campaigns.domain import CampaignStatus
from crm_campaigns.handlers import campaigns as handlers
from crm_campaigns.handlers import stats
from crm_campaigns.repository import campaigns as campaign_rows
from crm_campaigns.repository.campaigns import CampaignRow
from crm_campaigns.repository.enrolments import Enrolment
from crm_kit.api import Input, in_transaction
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter(tags=["campaigns"])


class CampaignOut(BaseModel):
    """A campaign: its definition and where it is in its life."""

    id: str
    status: CampaignStatus
    definition: CampaignDefinition
    launched_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: CampaignRow) -> CampaignOut:
        return cls(
            id=row.id,
            status=row.status,
            definition=row.definition,
            launched_at=row.launched_at,
            completed_at=row.completed_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class PauseIn(Input):
    """Why the campaign is paused (optional)."""

    reason: Annotated[str, Field(max_length=500)] | None = None


class ArmStats(BaseModel):
    enrolled: int
    converted: int
    conversion_rate: float | None
    revenue: Decimal


class StepStats(BaseModel):
    """One step: sent, held back (holdout), touched, conversions credited and their revenue."""

    step_id: str
    sent: int
    held_back: int
    touched: int
    converted: int
    revenue: Decimal


class StatsOut(BaseModel):
    """A campaign's figures; lift is the treated arm's conversion rate minus the holdout's."""

    campaign_id: str
    enrolled: int
    holdout: int
    sent: int
    touched: int
    converted: int
    conversion_rate: float | None
    revenue: Decimal
    lift: float | None
    arms: dict[str, ArmStats]
    steps: list[StepStats]


class EnrolmentOut(BaseModel):
    """One way of a contact through a campaign."""

    id: str
    campaign_id: str
    contact_id: str
    entry: int
    arm: str
    status: str
    entered_at: datetime
    next_step_id: str | None
    due_at: datetime | None
    held: bool = Field(description="Waiting for the contact's complaint case to be resolved.")
    exited_at: datetime | None
    exit_reason: str | None

    @classmethod
    def of(cls, e: Enrolment) -> EnrolmentOut:
        return cls(
            id=e.id,
            campaign_id=e.campaign_id,
            contact_id=e.contact_id,
            entry=e.entry,
            arm=e.arm.value,
            status=e.status.value,
            entered_at=e.entered_at,
            next_step_id=e.next_step_id,
            due_at=e.due_at,
            held=e.held,
            exited_at=e.exited_at,
            exit_reason=e.exit_reason,
        )


@router.get("/campaigns", response_model=list[CampaignOut])
async def list_campaigns(principal: Reader, conn: SnapshotDep) -> list[CampaignOut]:
    """Every campaign."""
    return [CampaignOut.of(row) for row in await campaign_rows.campaigns(conn)]


@router.get(
    "/campaigns/{campaign_id}", response_model=CampaignOut, responses=problem_responses(404)
)
async def get_campaign(
    campaign_id: ResourceId, principal: Reader, conn: SnapshotDep
) -> CampaignOut:
    """One campaign."""
    return CampaignOut.of(await handlers.get_campaign(conn, campaign_id))


@router.put(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses={201: {"model": CampaignOut}, **problem_responses(409)},
)
async def put_campaign(
    campaign_id: ResourceId,
    body: CampaignDefinition,
    principal: Writer,
    conn: ConnectionDep,
    response: Response,
) -> CampaignOut:
    """Create a draft with this id (201), or change a draft or paused campaign."""
    row, created = await in_transaction(conn, handlers.put_campaign, campaign_id, body)
    response.status_code = 201 if created else 200
    return CampaignOut.of(row)


@router.delete("/campaigns/{campaign_id}", status_code=204, responses=problem_responses(404, 409))
async def delete_campaign(campaign_id: ResourceId, principal: Writer, conn: ConnectionDep) -> None:
    """Remove a draft."""
    await in_transaction(conn, handlers.delete_campaign, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/launch",
    response_model=CampaignOut,
    responses=problem_responses(404, 409),
)
async def launch(
    campaign_id: ResourceId, principal: Writer, conn: ConnectionDep, ctx: Ctx
) -> CampaignOut:
    """Start or resume a campaign (an audience_once campaign enrols its audience now)."""
    return CampaignOut.of(await in_transaction(conn, handlers.launch, ctx, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/pause",
    response_model=CampaignOut,
    responses=problem_responses(404, 409),
)
async def pause(
    campaign_id: ResourceId,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    body: Annotated[PauseIn | None, Body()] = None,
) -> CampaignOut:
    """Stop sending and enrolling until launched again; due steps wait."""
    reason = body.reason if body else None
    return CampaignOut.of(await in_transaction(conn, handlers.pause, ctx, campaign_id, reason))


@router.post(
    "/campaigns/{campaign_id}/complete",
    response_model=CampaignOut,
    responses=problem_responses(404, 409),
)
async def complete(
    campaign_id: ResourceId, principal: Writer, conn: ConnectionDep, ctx: Ctx
) -> CampaignOut:
    """End a campaign; its contacts exit (campaign_ended)."""
    return CampaignOut.of(await in_transaction(conn, handlers.complete, ctx, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/stats", response_model=StatsOut, responses=problem_responses(404)
)
async def campaign_stats(campaign_id: ResourceId, principal: Reader, conn: SnapshotDep) -> StatsOut:
    """Enrolled, holdout, sent, touched, converted, conversion rate, revenue and lift, per
    campaign and per step."""
    found = await stats.campaign_stats(conn, campaign_id)
    return StatsOut.model_validate(found, from_attributes=True)


@router.get("/contacts/{contact_id}/enrolments", response_model=list[EnrolmentOut])
async def enrolments_of(
    contact_id: ResourceId, principal: Reader, conn: SnapshotDep
) -> list[EnrolmentOut]:
    """A contact's enrolments in every campaign, oldest first (a merged id: its survivor's)."""
    return [EnrolmentOut.of(e) for e in await stats.enrolments_of(conn, contact_id)]
