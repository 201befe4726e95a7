"""What campaigns knows of a contact and of a campaign: pure values, no I/O.

`ContactView` is the local projection of one contact built from the events campaigns
consumes (stage, scores, consent, traits, open cases, recent behaviour); segments are
evaluated on it (`crm_campaigns.segments`). `Campaign` and `Step` are a campaign's
definition; `Enrolment` is one contact's way through one campaign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any

# Behaviour kept per contact and interaction kind: the newest this many, none older than
# the longest window a segment may name.
ACTIVITY_KEEP = 100
MAX_WINDOW_DAYS = 400
COMPLAINT = "complaint"


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The latest word (by event time) on one purpose and channel (`*`: every channel)."""

    granted: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One interaction of a kind, for behaviour conditions."""

    at: datetime
    channel: str


def consent_key(purpose: str, channel: str | None) -> str:
    """The key of a consent in `ContactView.consents`: `purpose:channel`, `purpose:*`."""
    return f"{purpose}:{channel or '*'}"


@dataclass(slots=True)
class ContactView:
    """One contact as campaigns sees it.

    `traits` holds the profile fields (`country`, `company`, `timezone`, ...) and custom
    traits as `custom.<name>`; `open_cases` maps an open case to its category; `activity`
    maps an interaction kind to its newest touchpoints, newest first."""

    contact_id: str
    stage: str | None = None
    value_tier: str | None = None
    churn_band: str | None = None
    churn_risk: float | None = None
    engagement: int | None = None
    clv: float | None = None
    consents: dict[str, ConsentState] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    open_cases: dict[str, str] = field(default_factory=dict)
    activity: dict[str, list[Touchpoint]] = field(default_factory=dict)
    # Categories of recently resolved cases, should one reopen.
    closed_cases: dict[str, str] = field(default_factory=dict)

    @property
    def time_zone(self) -> str | None:
        zone = self.traits.get("timezone")
        return zone if isinstance(zone, str) and zone else None

    def consent(self, purpose: str, channel: str | None) -> ConsentState | None:
        """The latest word on this purpose for this channel: of the channel's own consent
        and the purpose's every-channel consent, the newer by event time."""
        own = self.consents.get(consent_key(purpose, channel)) if channel else None
        every = self.consents.get(consent_key(purpose, None))
        if own is None or (every is not None and every.at > own.at):
            return every
        return own

    def has_complaint_open(self) -> bool:
        return COMPLAINT in self.open_cases.values()


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class EntryMode(StrEnum):
    """When contacts enter: each time they enter the segment, or once, the audience at
    launch."""

    ON_ENTRY = "on_entry"
    AUDIENCE_ONCE = "audience_once"


class AttributionModel(StrEnum):
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    EXITED = "exited"


class Arm(StrEnum):
    TREATED = "treated"
    HOLDOUT = "holdout"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in local wall-clock time, in which no step goes out; `start` after
    `end` spans midnight (21:00 to 08:00)."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Step:
    """One message of a campaign: sent `wait_seconds` after the previous step (after entry
    for the first). When `branch_kind` is set and the contact has an interaction of that
    kind while waiting for this step, the journey jumps to step `branch_to` instead."""

    id: str
    channel: str
    template_ref: str
    wait_seconds: int = 0
    branch_kind: str | None = None
    branch_to: str | None = None


@dataclass(frozen=True, slots=True)
class Goal:
    """What counts as a conversion: an interaction of `kind`, worth at least `min_value`
    when set, within `window_days` of entry."""

    kind: str
    min_value: float | None = None
    window_days: float = 30.0


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign's definition and status."""

    id: str
    name: str
    status: CampaignStatus
    segment_id: str | None
    steps: tuple[Step, ...]
    goal: Goal | None = None
    entry_mode: EntryMode = EntryMode.ON_ENTRY
    reentry_days: float | None = None  # None: never enters twice
    exit_on_segment_leave: bool = False
    pause_on_complaint: bool = True
    holdout_share: float = 0.0
    transactional: bool = False
    purpose: str = "marketing"
    quiet_hours: QuietHours | None = None
    time_zone: str = "UTC"
    attribution_model: AttributionModel = AttributionModel.LAST_TOUCH
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def channels(self) -> list[str]:
        return sorted({step.channel for step in self.steps})

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def step_after(self, step_id: str | None) -> Step | None:
        """The step that follows `step_id` (the first step for None)."""
        if step_id is None:
            return self.steps[0] if self.steps else None
        ids = [s.id for s in self.steps]
        at = ids.index(step_id) + 1 if step_id in ids else len(ids)
        return self.steps[at] if at < len(ids) else None
