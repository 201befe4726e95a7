"""Campaigns: created as drafts, launched, paused, launched again, completed.

A definition can be changed in draft or paused, not while active (contacts are on their way
through it) nor once completed. Launching an `audience_once` campaign for the first time
enrols the segment's members at that moment (the segment must have been evaluated over every
contact: a segment still backfilling is refused). Completing exits every active enrolment
(`campaign_ended`); a campaign with `ends_at` completes by itself then (`complete_ended`).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from crm_campaigns.definitions import CampaignDefinition
from crm_campaigns.domain import CampaignStatus, EntryMode
from crm_campaigns.handlers.context import Context, Publisher, new_id
from crm_campaigns.handlers.journeys import Journeys
from crm_campaigns.repository import campaigns as campaign_rows
from crm_campaigns.repository import enrolments as enrolment_rows
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository import stats as stat_rows
from crm_campaigns.repository.campaigns import CampaignRow
from crm_contracts import campaigns as cp
from crm_kit.errors import Conflict, InvalidInput, NotFound

EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.PAUSED)
LAUNCHABLE = (CampaignStatus.DRAFT, CampaignStatus.PAUSED)


class InvalidTransition(Conflict):
    """A lifecycle change the campaign's status does not allow."""

    def __init__(self, current: CampaignStatus, action: str) -> None:
        super().__init__(
            f"A {current.value} campaign cannot be {action}.",
            reason="invalid-transition",
            extensions={"campaign_status": current.value},
        )


async def get_campaign(
    conn: asyncpg.Connection, campaign_id: str, *, lock: bool = False
) -> CampaignRow:
    found = await campaign_rows.campaign(conn, campaign_id, lock=lock)
    if found is None:
        raise NotFound("No campaign with this id.", reason="campaign-not-found")
    return found


async def _check_segment(conn: asyncpg.Connection, definition: CampaignDefinition) -> None:
    if definition.segment_id and await segment_rows.segment(conn, definition.segment_id) is None:
        raise InvalidInput(
            "No segment with this id.",
            reason="segment-not-found",
            extensions={"segment_id": definition.segment_id},
        )


async def create_campaign(
    conn: asyncpg.Connection, definition: CampaignDefinition, *, campaign_id: str | None = None
) -> CampaignRow:
    """A new draft campaign."""
    await _check_segment(conn, definition)
    created = await campaign_rows.insert_campaign(
        conn, id=campaign_id or new_id("cmp"), definition=definition
    )
    if created is None:
        raise Conflict("A campaign with this id exists.", reason="campaign-exists")
    return created


async def update_campaign(
    conn: asyncpg.Connection, campaign_id: str, definition: CampaignDefinition
) -> CampaignRow:
    """A new definition for a draft or paused campaign."""
    current = await get_campaign(conn, campaign_id, lock=True)
    if current.status not in EDITABLE:
        raise InvalidTransition(current.status, "changed")
    await _check_segment(conn, definition)
    return await campaign_rows.update_definition(conn, campaign_id, definition)


async def launch(conn: asyncpg.Connection, ctx: Context, campaign_id: str) -> CampaignRow:
    """Start (or resume) a campaign; an audience_once campaign enrols its audience."""
    current = await get_campaign(conn, campaign_id, lock=True)
    if current.status == CampaignStatus.ACTIVE:
        return current
    if current.status not in LAUNCHABLE:
        raise InvalidTransition(current.status, "launched")
    first = current.launched_at is None
    campaign = current.campaign
    audience: list[str] = []
    if first and campaign.entry_mode == EntryMode.AUDIENCE_ONCE and campaign.segment_id:
        segment = await segment_rows.segment(conn, campaign.segment_id)
        if segment is not None and segment.backfilling:
            raise Conflict(
                "The segment is still being evaluated over every contact; launch it when "
                "that is done (GET the segment: backfilling).",
                reason="segment-backfilling",
            )
        audience = await _all_members(conn, campaign.segment_id)
    now = ctx.clock()
    launched = await campaign_rows.set_status(conn, campaign_id, CampaignStatus.ACTIVE, at=now)
    out = Publisher(ctx)
    out.campaign_event(
        cp.CAMPAIGN_LAUNCHED,
        cp.CampaignLaunched(
            campaign_id=campaign_id,
            name=launched.name,
            channels=campaign.channels,
            segment_id=campaign.segment_id,
            goal_kind=campaign.goal.kind if campaign.goal else None,
            ends_at=campaign.ends_at,
        ),
        key=campaign_id,
        time=now,
    )
    work = await Journeys.load(conn, ctx, out, audience, segments=[])
    for contact_id in audience:
        work.enrol(launched.campaign, contact_id, at=now, cause=None)
    await work.flush(conn)
    return launched


async def _all_members(conn: asyncpg.Connection, segment_id: str) -> list[str]:
    members: list[str] = []
    while page := await segment_rows.members(
        conn, segment_id, after=members[-1] if members else "", limit=5000
    ):
        members.extend(page)
    return members


async def pause(
    conn: asyncpg.Connection, ctx: Context, campaign_id: str, reason: str | None = None
) -> CampaignRow:
    """Stop sending steps (due steps wait) and entering contacts until launched again."""
    current = await get_campaign(conn, campaign_id, lock=True)
    if current.status == CampaignStatus.PAUSED:
        return current
    if current.status != CampaignStatus.ACTIVE:
        raise InvalidTransition(current.status, "paused")
    now = ctx.clock()
    paused = await campaign_rows.set_status(conn, campaign_id, CampaignStatus.PAUSED, at=now)
    out = Publisher(ctx)
    out.campaign_event(
        cp.CAMPAIGN_PAUSED,
        cp.CampaignPaused(campaign_id=campaign_id, reason=reason),
        key=campaign_id,
        time=now,
    )
    await out.flush(conn)
    return paused


async def complete(conn: asyncpg.Connection, ctx: Context, campaign_id: str) -> CampaignRow:
    """End a campaign: every active enrolment exits, `campaign_ended`."""
    current = await get_campaign(conn, campaign_id, lock=True)
    if current.status == CampaignStatus.COMPLETED:
        return current
    if current.status == CampaignStatus.DRAFT:
        raise InvalidTransition(current.status, "completed")
    now = ctx.clock()
    return await _complete(conn, ctx, current, at=now)


async def _complete(
    conn: asyncpg.Connection, ctx: Context, current: CampaignRow, *, at: datetime
) -> CampaignRow:
    out = Publisher(ctx)
    active = await enrolment_rows.active_in(conn, current.id)
    work = Journeys(
        ctx,
        out,
        segments=[],
        campaigns={current.id: current.campaign},
        views={},
        memberships={},
        enrolments=active,
        converted=set(),
    )
    for enrolment in active:
        work.exit(enrolment, cp.ExitReason.CAMPAIGN_ENDED, at=at, cause=None)
    completed = await campaign_rows.set_status(conn, current.id, CampaignStatus.COMPLETED, at=at)
    counts = await stat_rows.counts(conn, current.id)
    out.campaign_event(
        cp.CAMPAIGN_COMPLETED,
        cp.CampaignCompleted(
            campaign_id=current.id,
            enrolled_count=counts.enrolled,
            converted_count=counts.converted,
        ),
        key=current.id,
        time=at,
    )
    await work.flush(conn)
    return completed


async def complete_ended(pool: asyncpg.Pool, *, ctx: Context) -> int:
    """One round: the campaigns whose `ends_at` has come are completed."""
    async with pool.acquire() as conn, conn.transaction():
        now = ctx.clock()
        ended = await campaign_rows.ending(conn, now=now)
        for campaign_id in ended:
            current = await get_campaign(conn, campaign_id)
            await _complete(conn, ctx, current, at=current.campaign.ends_at or now)
        return len(ended)


async def put_campaign(
    conn: asyncpg.Connection, campaign_id: str, definition: CampaignDefinition
) -> tuple[CampaignRow, bool]:
    """Create a draft with this id, or give a draft or paused one a new definition; whether
    it was created."""
    if await campaign_rows.campaign(conn, campaign_id, lock=True) is None:
        return await create_campaign(conn, definition, campaign_id=campaign_id), True
    return await update_campaign(conn, campaign_id, definition), False


async def delete_campaign(conn: asyncpg.Connection, campaign_id: str) -> None:
    """Remove a draft (a campaign that ever ran keeps its history: complete it instead)."""
    current = await get_campaign(conn, campaign_id, lock=True)
    if current.status != CampaignStatus.DRAFT:
        raise InvalidTransition(current.status, "deleted")
    await campaign_rows.delete_campaign(conn, campaign_id)
