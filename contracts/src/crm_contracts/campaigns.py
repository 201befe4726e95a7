"""Events published by the campaigns service on `crm.campaigns.v1`.

Keyed by contact_id; the campaign-level events (launched, paused, completed) by campaign_id.
A segment's entries and exits are about the segment, which any number of campaigns may target.
"""

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, FiniteFloat, model_validator

from crm_contracts.base import (
    Channel,
    Code,
    ContactId,
    EventId,
    EventModel,
    Money,
    OpaqueId,
    Scalar,
    Timestamp,
)

CAMPAIGN_LAUNCHED = "crm.campaign.launched"
CAMPAIGN_PAUSED = "crm.campaign.paused"
CAMPAIGN_COMPLETED = "crm.campaign.completed"
CAMPAIGN_CONTACT_ENROLLED = "crm.campaign.contact_enrolled"
CAMPAIGN_STEP_DUE = "crm.campaign.step_due"
CAMPAIGN_CONVERTED = "crm.campaign.converted"
CAMPAIGN_EXITED = "crm.campaign.exited"
CAMPAIGN_SEGMENT_ENTERED = "crm.campaign.segment_entered"
CAMPAIGN_SEGMENT_LEFT = "crm.campaign.segment_left"


class ExitReason(StrEnum):
    """Why a contact left a campaign."""

    COMPLETED = "completed"
    CONVERTED = "converted"
    UNSUBSCRIBED = "unsubscribed"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    REMOVED = "removed"
    CAMPAIGN_ENDED = "campaign_ended"
    MERGED = "merged"
    ERASED = "erased"
    LEFT_SEGMENT = "left_segment"


class Arm(StrEnum):
    """Which arm of a campaign's experiment an enrolment is in."""

    TREATED = "treated"
    HOLDOUT = "holdout"


CampaignName = Annotated[str, Field(min_length=1, max_length=200)]


class CampaignLaunched(EventModel):
    """A campaign started enrolling contacts."""

    subject_field: ClassVar[str | None] = None

    campaign_id: OpaqueId
    name: CampaignName
    channels: list[Channel] = Field(default_factory=list, description="Channels it uses.")
    segment_id: OpaqueId | None = Field(default=None, description="Segment it targets.")
    goal_kind: Code | None = Field(
        default=None, description="Interaction kind that counts as a conversion, e.g. purchase."
    )
    ends_at: Timestamp | None = None


class CampaignPaused(EventModel):
    """A campaign stopped sending steps until it is launched again."""

    subject_field: ClassVar[str | None] = None

    campaign_id: OpaqueId
    reason: Annotated[str, Field(max_length=500)] | None = None


class CampaignCompleted(EventModel):
    """A campaign ended; its enrolments are exited."""

    subject_field: ClassVar[str | None] = None

    campaign_id: OpaqueId
    enrolled_count: int | None = Field(default=None, ge=0)
    converted_count: int | None = Field(default=None, ge=0)


class CampaignContactEnrolled(EventModel):
    """A contact entered a campaign."""

    campaign_id: OpaqueId
    contact_id: ContactId
    enrolment_id: OpaqueId
    segment_id: OpaqueId | None = None
    cause_event_id: EventId | None = Field(
        default=None, description="Event that qualified the contact, if any."
    )
    arm: Arm = Field(
        default=Arm.TREATED,
        description="treated: receives the campaign's steps; holdout: receives nothing and is "
        "kept to measure what the campaign changed.",
    )


class CampaignStepDue(EventModel):
    """A campaign step is due for a contact: the channel named delivers it."""

    campaign_id: OpaqueId
    contact_id: ContactId
    enrolment_id: OpaqueId
    step_id: OpaqueId
    channel: Channel
    template_ref: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="Template or content id in the channel's system."
    )
    locale: Annotated[str, Field(max_length=35)] | None = Field(
        default=None, description="BCP 47 tag the content should use."
    )
    variables: dict[Annotated[str, Field(max_length=64)], Scalar] = Field(
        default_factory=dict,
        max_length=50,
        description="Template variables (no personal data: the channel looks the contact up).",
    )
    deliver_before: Timestamp | None = Field(
        default=None, description="Skip delivery after this time."
    )


class StepCredit(EventModel):
    """The share of a conversion credited to one step of the campaign."""

    step_id: OpaqueId = Field(description="Step of the campaign credited.")
    share: FiniteFloat = Field(ge=0, le=1, description="Fraction of the conversion, 0 to 1.")
    revenue: Money | None = Field(
        default=None, description="The share of the conversion's value, in its currency."
    )


class CampaignConverted(EventModel):
    """A contact in a campaign reached its goal."""

    campaign_id: OpaqueId
    contact_id: ContactId
    enrolment_id: OpaqueId
    kind: Code = Field(description="Interaction kind that converted, e.g. purchase.")
    value: Money | None = None
    attributed_step_id: OpaqueId | None = Field(
        default=None, description="Step credited with the conversion."
    )
    cause_event_id: EventId = Field(description="The interaction that converted.")
    attribution_model: Code | None = Field(
        default=None,
        description="How credits were shared between steps, e.g. last_touch or linear.",
    )
    credits: list[StepCredit] = Field(
        default_factory=list,
        max_length=50,
        description="Credit per step under that model: the shares add up to at most 1, revenue "
        "is in the currency of value.",
    )

    @model_validator(mode="after")
    def _credits_add_up(self) -> Self:
        if sum(credit.share for credit in self.credits) > 1 + 1e-9:
            raise ValueError("the shares of credits add up to more than 1")
        currencies = {c.revenue.currency for c in self.credits if c.revenue is not None}
        if currencies and (self.value is None or currencies != {self.value.currency}):
            raise ValueError("credited revenue must be in the currency of the conversion's value")
        return self


class CampaignExited(EventModel):
    """A contact left a campaign."""

    campaign_id: OpaqueId
    contact_id: ContactId
    enrolment_id: OpaqueId
    reason: ExitReason
    cause_event_id: EventId | None = None


class SegmentEntered(EventModel):
    """A contact came to match a segment's definition."""

    segment_id: OpaqueId = Field(description="Segment whose answer for the contact changed.")
    contact_id: ContactId
    cause_event_id: EventId | None = Field(
        default=None,
        description="The event that changed the answer; absent when time alone did.",
    )


class SegmentLeft(EventModel):
    """A contact stopped matching a segment's definition."""

    segment_id: OpaqueId = Field(description="Segment whose answer for the contact changed.")
    contact_id: ContactId
    cause_event_id: EventId | None = Field(
        default=None,
        description="The event that changed the answer; absent when time alone did.",
    )


EVENTS: dict[str, type[EventModel]] = {
    CAMPAIGN_LAUNCHED: CampaignLaunched,
    CAMPAIGN_PAUSED: CampaignPaused,
    CAMPAIGN_COMPLETED: CampaignCompleted,
    CAMPAIGN_CONTACT_ENROLLED: CampaignContactEnrolled,
    CAMPAIGN_STEP_DUE: CampaignStepDue,
    CAMPAIGN_CONVERTED: CampaignConverted,
    CAMPAIGN_EXITED: CampaignExited,
    CAMPAIGN_SEGMENT_ENTERED: SegmentEntered,
    CAMPAIGN_SEGMENT_LEFT: SegmentLeft,
}
