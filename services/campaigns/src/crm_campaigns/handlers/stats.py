"""What a campaign achieved, and where a contact is in campaigns (reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from crm_campaigns.handlers.campaigns import get_campaign
from crm_campaigns.repository import enrolments as enrolment_rows
from crm_campaigns.repository import stats as stat_rows
from crm_campaigns.repository.enrolments import Enrolment
from crm_campaigns.repository.stats import ArmCounts, StepCounts
from crm_kit import subjects


@dataclass(frozen=True, slots=True)
class ArmStats:
    enrolled: int
    converted: int
    conversion_rate: float | None
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class CampaignStats:
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
    steps: list[StepCounts]


def _rate(converted: int, enrolled: int) -> float | None:
    return converted / enrolled if enrolled else None


def _arm(counts: ArmCounts) -> ArmStats:
    return ArmStats(
        counts.enrolled, counts.converted, _rate(counts.converted, counts.enrolled), counts.revenue
    )


async def campaign_stats(conn: asyncpg.Connection, campaign_id: str) -> CampaignStats:
    """The campaign's figures. Conversion rate and revenue are the treated arm's (the holdout
    receives nothing); lift = treated rate - holdout rate, when both arms have members."""
    campaign = await get_campaign(conn, campaign_id)
    counts = await stat_rows.counts(conn, campaign_id)
    treated, holdout = _arm(counts.treated), _arm(counts.holdout)
    by_step = await stat_rows.step_counts(conn, campaign_id)
    lift = (
        treated.conversion_rate - holdout.conversion_rate
        if treated.conversion_rate is not None and holdout.conversion_rate is not None
        else None
    )
    steps = [
        by_step.get(step.id, StepCounts(step.id, 0, 0, 0, 0, Decimal(0)))
        for step in campaign.campaign.steps
    ]
    return CampaignStats(
        campaign_id=campaign_id,
        enrolled=counts.enrolled,
        holdout=counts.holdout.enrolled,
        sent=sum(s.sent for s in steps),
        touched=await stat_rows.touched_enrolments(conn, campaign_id),
        converted=counts.treated.converted,
        conversion_rate=treated.conversion_rate,
        revenue=counts.treated.revenue,
        lift=lift,
        arms={"treated": treated, "holdout": holdout},
        steps=steps,
    )


async def enrolments_of(conn: asyncpg.Connection, contact_id: str) -> list[Enrolment]:
    """The contact's enrolments (those of the contact it was merged into, if it was)."""
    now = await subjects.current(conn, [contact_id])
    return await enrolment_rows.enrolments_of(conn, [now.survivor_of(contact_id)], lock=False)
