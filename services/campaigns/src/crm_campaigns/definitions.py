"""A campaign's definition as a document: what the API takes and what is stored, checked
once here, and turned into the domain's `Campaign`.

    definition = CampaignDefinition.model_validate(body)
    campaign = definition.to_campaign(id="cmp-retention", status=CampaignStatus.ACTIVE)
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from crm_campaigns.domain import (
    AttributionModel,
    Campaign,
    CampaignStatus,
    EntryMode,
    Goal,
    QuietHours,
    Step,
)
from crm_contracts.base import Channel, Code
from crm_kit.inputs import Instant

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
WALL_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


def _wall_clock(value: Any) -> Any:
    """A local wall-clock time, `HH:MM` or `HH:MM:SS`, without a zone: the zone is the
    contact's (or the campaign's `time_zone`). Not JSON Schema's `time`, which has one."""
    if isinstance(value, str) and not re.fullmatch(WALL_CLOCK, value):
        raise ValueError("a local wall-clock time is HH:MM or HH:MM:SS, without a zone")
    if isinstance(value, time) and value.tzinfo is not None:
        raise ValueError("a local wall-clock time has no zone")
    return value


WallClock = Annotated[
    time,
    BeforeValidator(_wall_clock),
    WithJsonSchema({"type": "string", "pattern": WALL_CLOCK}),
]
MAX_STEPS = 20
MAX_WAIT_SECONDS = 366 * 86400


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepDefinition(_Document):
    """One message of a campaign."""

    id: StepId = Field(description="Unique within the campaign; named by touches and credit.")
    channel: Channel
    template_ref: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="Template or content id in the channel's system."
    )
    wait_seconds: int = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Wait after the previous step (after entry for the first).",
    )
    branch_kind: Code | None = Field(
        None,
        description="An interaction of this kind while waiting for this step jumps the journey "
        "to `branch_to` (a click on the last email, say).",
    )
    branch_to: StepId | None = Field(None, description="The step a branch jumps to.")

    @model_validator(mode="after")
    def _branch_whole(self) -> Self:
        if (self.branch_kind is None) != (self.branch_to is None):
            raise ValueError("branch_kind and branch_to go together")
        return self


class GoalDefinition(_Document):
    """What counts as a conversion."""

    kind: Code = Field(description="Interaction kind that converts, e.g. purchase.")
    min_value: FiniteFloat | None = Field(
        None, ge=0, description="Least value that counts, if any."
    )
    window_days: float = Field(
        30.0, gt=0, le=366, description="Days after entry in which a conversion is credited."
    )


class QuietHoursDefinition(_Document):
    """Local wall-clock hours in which no step goes out; a step due then waits for the end."""

    start: WallClock = Field(description="E.g. 21:00.")
    end: WallClock = Field(description="E.g. 08:00 (before start: the window spans midnight).")


class CampaignDefinition(_Document):
    """Everything that defines a campaign; its status is changed by launch, pause, complete."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    segment_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="Audience; without one, nobody enters."
    )
    entry_mode: EntryMode = Field(
        EntryMode.ON_ENTRY,
        description="on_entry: contacts enter when they enter the segment; audience_once: the "
        "segment's members at launch enter, once.",
    )
    reentry_days: float | None = Field(
        None,
        ge=0,
        le=3650,
        description="Absent: a contact never enters twice. Else it may enter again on a fresh "
        "entry into the segment this many days after its last entry (never while enrolled).",
    )
    exit_on_segment_leave: bool = Field(False, description="Leaving the segment exits.")
    pause_on_complaint: bool = Field(
        True, description="An open complaint case holds the contact's next step until resolved."
    )
    goal: GoalDefinition | None = None
    attribution_model: AttributionModel = AttributionModel.LAST_TOUCH
    holdout_share: float = Field(
        0.0, ge=0, le=0.9, description="Control share: enrolled and measured, sent nothing."
    )
    transactional: bool = Field(
        False, description="Transactional steps bypass frequency caps and quiet hours."
    )
    purpose: Code = Field("marketing", description="Consent purpose its steps need.")
    quiet_hours: QuietHoursDefinition | None = None
    time_zone: Annotated[str, Field(max_length=64)] = Field(
        "UTC", description="Quiet hours' zone for a contact without a known time zone."
    )
    # Instants every event can carry: launched and completed events name ends_at.
    starts_at: Instant | None = Field(None, description="No entry before this moment.")
    ends_at: Instant | None = Field(None, description="The campaign completes at this moment.")
    steps: list[StepDefinition] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. Z)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [step.id for step in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        for step in self.steps:
            if step.branch_to is not None and step.branch_to not in ids:
                raise ValueError(f"step {step.id} branches to unknown step {step.branch_to}")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def document(self) -> dict[str, Any]:
        """The definition as stored (JSON)."""
        return self.model_dump(mode="json")

    def to_campaign(self, *, id: str, status: CampaignStatus) -> Campaign:
        """The domain's view of this definition."""
        goal = self.goal
        quiet = self.quiet_hours
        return Campaign(
            id=id,
            name=self.name,
            status=status,
            segment_id=self.segment_id,
            steps=tuple(
                Step(
                    id=s.id,
                    channel=s.channel.value,
                    template_ref=s.template_ref,
                    wait_seconds=s.wait_seconds,
                    branch_kind=s.branch_kind,
                    branch_to=s.branch_to,
                )
                for s in self.steps
            ),
            goal=Goal(goal.kind, goal.min_value, goal.window_days) if goal else None,
            entry_mode=self.entry_mode,
            reentry_days=self.reentry_days,
            exit_on_segment_leave=self.exit_on_segment_leave,
            pause_on_complaint=self.pause_on_complaint,
            holdout_share=self.holdout_share,
            transactional=self.transactional,
            purpose=self.purpose,
            quiet_hours=QuietHours(quiet.start, quiet.end) if quiet else None,
            time_zone=self.time_zone,
            attribution_model=self.attribution_model,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
        )
