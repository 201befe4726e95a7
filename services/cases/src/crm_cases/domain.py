"""The rules of a case, pure: statuses and their moves, priority from value, what an
interaction means for a case, reopening, first-contact resolution. No I/O; the handlers
load, ask these functions and write what they decide. SLA clocks are `crm_cases.sla`,
business hours `crm_cases.calendar`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crm_contracts.cases import CasePriority, CaseStatus
from crm_contracts.interactions import InteractionKind

OPEN_STATUSES = frozenset({CaseStatus.NEW, CaseStatus.OPEN, CaseStatus.PENDING, CaseStatus.ON_HOLD})
_WORKING = (CaseStatus.OPEN, CaseStatus.PENDING, CaseStatus.ON_HOLD)

# Where a case may go from each status. `resolved` leaves only by reopening (within the
# window) or closing; `closed` is for good: a later reply opens a new case linking it.
TRANSITIONS: Mapping[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.NEW: (*_WORKING, CaseStatus.RESOLVED, CaseStatus.CLOSED),
    CaseStatus.OPEN: (
        CaseStatus.PENDING,
        CaseStatus.ON_HOLD,
        CaseStatus.RESOLVED,
        CaseStatus.CLOSED,
    ),
    CaseStatus.PENDING: (
        CaseStatus.OPEN,
        CaseStatus.ON_HOLD,
        CaseStatus.RESOLVED,
        CaseStatus.CLOSED,
    ),
    CaseStatus.ON_HOLD: (
        CaseStatus.OPEN,
        CaseStatus.PENDING,
        CaseStatus.RESOLVED,
        CaseStatus.CLOSED,
    ),
    CaseStatus.RESOLVED: (CaseStatus.OPEN, CaseStatus.CLOSED),
    CaseStatus.CLOSED: (),
}

PRIORITY_RANK = {p: n for n, p in enumerate(CasePriority)}

# Kinds that ask for help: without a case id they open a case (or join an open one of
# their category). Kinds that are no message to an agent never count as a reply.
OPENING_KINDS = frozenset({InteractionKind.COMPLAINT, InteractionKind.SUPPORT_REQUEST})
NOT_A_REPLY = frozenset(
    {
        InteractionKind.PAGE_VIEW,
        InteractionKind.EMAIL_OPENED,
        InteractionKind.EMAIL_CLICKED,
        InteractionKind.FEEDBACK,
        InteractionKind.CONSENT_GIVEN,
        InteractionKind.CONSENT_WITHDRAWN,
        InteractionKind.UNSUBSCRIBE,
        InteractionKind.PURCHASE,
        InteractionKind.REFUND,
        InteractionKind.REVIEW,
    }
)
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class Signal(StrEnum):
    """What an interaction means for cases."""

    AGENT_RESPONSE = "agent_response"  # an agent of ours answered (it carries agent_id)
    CUSTOMER_REPLY = "customer_reply"  # the customer wrote on a case (it carries case_id)
    REQUEST = "request"  # a complaint or support request: open a case or join one
    FEEDBACK = "feedback"  # a rating of a case (feedback with csat and case_id)
    NONE = "none"  # nothing for cases


@dataclass(frozen=True, slots=True)
class InteractionFacts:
    """The parts of a resolved interaction that cases look at."""

    kind: str
    agent_id: str | None
    case_id: str | None
    csat: int | None


def signal_of(facts: InteractionFacts) -> Signal:
    """What an interaction means for cases (most interactions: nothing)."""
    if facts.agent_id is not None:
        return Signal.AGENT_RESPONSE if facts.kind not in NOT_A_REPLY else Signal.NONE
    if facts.kind == InteractionKind.FEEDBACK:
        return Signal.FEEDBACK if facts.case_id and facts.csat is not None else Signal.NONE
    if facts.case_id is not None and facts.kind not in NOT_A_REPLY:
        return Signal.CUSTOMER_REPLY
    if facts.kind in OPENING_KINDS:
        return Signal.REQUEST
    return Signal.NONE


def category_of(kind: str, properties: Mapping[str, Any]) -> str:
    """The category of a request: the channel's `category` property if it is a code, else
    the kind (`complaint`, `support_request`)."""
    category = properties.get("category")
    if isinstance(category, str) and _CODE.match(category):
        return category
    return kind


def subject_of(kind: str, properties: Mapping[str, Any]) -> str:
    """A case's subject from the request: the channel's `subject` property, else the kind
    in words (`Complaint`)."""
    subject = properties.get("subject")
    if isinstance(subject, str) and subject.strip():
        return subject.strip()[:200]
    return kind.replace("_", " ").capitalize()


def transition_allowed(current: CaseStatus, to: CaseStatus) -> bool:
    """Whether a case may move from `current` to `to` by an agent's request."""
    return to in TRANSITIONS[current]


def priority_from_value(
    tier: str | None,
    band: str | None,
    *,
    by_tier: Mapping[str, str],
    by_band: Mapping[str, str],
) -> CasePriority:
    """The default priority of a contact's case: the higher of what its value tier and its
    churn band ask for; normal for a contact not scored yet."""
    candidates = [
        CasePriority.NORMAL if tier is None else CasePriority(by_tier.get(tier, "normal"))
    ]
    if band is not None:
        candidates.append(CasePriority(by_band.get(band, "normal")))
    return max(candidates, key=PRIORITY_RANK.__getitem__)


class AfterResolution(StrEnum):
    """What a customer's reply does to a resolved or closed case."""

    REOPEN = "reopen"
    NEW_CASE = "new_case"


def after_resolution(
    status: CaseStatus, resolved_at: datetime | None, at: datetime, window: timedelta
) -> AfterResolution:
    """A reply within the reopen window reopens a resolved case; later, or to a closed
    case, it opens a new case that links the old one."""
    if status == CaseStatus.RESOLVED and resolved_at is not None and at - resolved_at <= window:
        return AfterResolution.REOPEN
    return AfterResolution.NEW_CASE


def first_contact_resolution(
    *, replied_after_response: bool, reopened: int, responded: bool
) -> bool:
    """Resolved at the first contact: an agent answered, the customer did not write again
    after that first answer, and the case was never reopened."""
    return responded and not replied_after_response and reopened == 0


@dataclass(slots=True)
class Case:
    """A case as the use cases see it (one row of `cases`); they change it in place and
    the repository writes it back."""

    id: str
    contact_id: str
    origin_contact_id: str
    subject: str
    description: str | None
    channel: str | None
    category: str | None
    queue: str
    priority: CasePriority
    priority_set_by: str  # value | agent
    status: CaseStatus
    assignee: str | None
    opened_at: datetime
    first_response_at: datetime | None = None
    last_customer_at: datetime | None = None
    last_agent_at: datetime | None = None
    awaiting_agent: bool = True
    customer_replied_after_response: bool = False
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    closed_at: datetime | None = None
    reopened: int = 0
    fcr: bool | None = None
    csat: int | None = None
    csat_at: datetime | None = None
    linked_case_id: str | None = None
    cause_event_id: str | None = None
    erased: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def is_code(value: str) -> bool:
    """A lowercase snake_case code (a queue, a category)."""
    return bool(_CODE.match(value))
