"""Events published by the campaigns service on `crm.campaigns.v1`.

Keyed by contact_id; the campaign-level events (launched, paused, completed) by campaign_id.
"""

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

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


class CampaignExited(EventModel):
    """A contact left a campaign."""

    campaign_id: OpaqueId
    contact_id: ContactId
    enrolment_id: OpaqueId
    reason: ExitReason
    cause_event_id: EventId | None = None


EVENTS: dict[str, type[EventModel]] = {
    CAMPAIGN_LAUNCHED: CampaignLaunched,
    CAMPAIGN_PAUSED: CampaignPaused,
    CAMPAIGN_COMPLETED: CampaignCompleted,
    CAMPAIGN_CONTACT_ENROLLED: CampaignContactEnrolled,
    CAMPAIGN_STEP_DUE: CampaignStepDue,
    CAMPAIGN_CONVERTED: CampaignConverted,
    CAMPAIGN_EXITED: CampaignExited,
}
