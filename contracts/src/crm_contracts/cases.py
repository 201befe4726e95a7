"""Events published by the cases service on `crm.cases.v1`, keyed by contact_id."""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from crm_contracts.base import Channel, Code, ContactId, EventId, EventModel, OpaqueId, Timestamp

CASE_OPENED = "crm.case.opened"
CASE_ASSIGNED = "crm.case.assigned"
CASE_STATUS_CHANGED = "crm.case.status_changed"
CASE_PRIORITY_CHANGED = "crm.case.priority_changed"
CASE_SLA_BREACHED = "crm.case.sla_breached"
CASE_RESOLVED = "crm.case.resolved"
CASE_REOPENED = "crm.case.reopened"
CASE_CLOSED = "crm.case.closed"
CASE_CSAT_RECORDED = "crm.case.csat_recorded"
CASE_COMMENTED = "crm.case.commented"


class CasePriority(StrEnum):
    """How urgently a case needs attention, lowest first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class CaseStatus(StrEnum):
    """Where a case is in its life."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class SlaKind(StrEnum):
    """Which service-level target a due time belongs to."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    NEXT_RESPONSE = "next_response"


QueueName = Annotated[Code, Field(description="Queue the case waits in, e.g. billing.")]
AgentId = Annotated[OpaqueId, Field(description="Opaque id of an agent.")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class Sla(EventModel):
    """Service-level due times of a case."""

    first_response_due_at: Timestamp | None = None
    resolution_due_at: Timestamp | None = None
    next_response_due_at: Timestamp | None = Field(
        default=None, description="When the customer's latest message needs an answer by."
    )


class CaseOpened(EventModel):
    """A case was opened for a contact, by an agent or from an interaction."""

    case_id: OpaqueId
    contact_id: ContactId
    title: Annotated[str, Field(min_length=1, max_length=200)]
    queue: QueueName
    priority: CasePriority = CasePriority.NORMAL
    status: CaseStatus = CaseStatus.NEW
    category: Code | None = Field(default=None, description="E.g. billing_dispute.")
    channel: Channel | None = Field(default=None, description="Where the request came from.")
    sla: Sla = Field(default_factory=Sla)
    cause_event_id: EventId | None = Field(
        default=None, description="Interaction that opened it, e.g. a complaint."
    )
    description: Annotated[str, Field(max_length=5000)] | None = Field(
        default=None, description="What the customer asked for, in more words than the title."
    )
    linked_case_id: OpaqueId | None = Field(
        default=None,
        description="An earlier case this one follows up, e.g. a reply after the reopen window.",
    )
    assignee: AgentId | None = Field(default=None, description="Absent: waiting in the queue.")


class CaseAssigned(EventModel):
    """A case was assigned to an agent or a queue (assignee absent: back in the queue)."""

    case_id: OpaqueId
    contact_id: ContactId
    queue: QueueName
    assignee: AgentId | None = None
    previous_assignee: AgentId | None = None
    previous_queue: QueueName | None = None


class CaseStatusChanged(EventModel):
    """A case moved from one status to another."""

    case_id: OpaqueId
    contact_id: ContactId
    from_status: CaseStatus
    to_status: CaseStatus
    reason: Reason | None = None

    @model_validator(mode="after")
    def _is_a_change(self) -> Self:
        if self.from_status == self.to_status:
            raise ValueError("from_status and to_status must differ")
        return self


class CasePriorityChanged(EventModel):
    """A case's priority changed, by an agent or a rule (e.g. a churn risk rise)."""

    case_id: OpaqueId
    contact_id: ContactId
    from_priority: CasePriority
    to_priority: CasePriority
    reason: Reason | None = None
    cause_event_id: EventId | None = Field(
        default=None, description="Event that prompted it, e.g. a score change."
    )
    sla: Sla | None = Field(default=None, description="Due times after the change.")


class CaseSlaBreached(EventModel):
    """A case missed a service-level target."""

    case_id: OpaqueId
    contact_id: ContactId
    sla_kind: SlaKind
    due_at: Timestamp
    queue: QueueName
    priority: CasePriority
    assignee: AgentId | None = None
    cycle: int | None = Field(
        default=None,
        ge=1,
        description="Which cycle of the metric missed its target, from 1: next_response counts "
        "one per customer message awaiting an answer, resolution one per reopen.",
    )
    breached_at: Timestamp | None = Field(default=None, description="When the breach was detected.")


class CaseResolved(EventModel):
    """A case was resolved; the contact may still reopen it."""

    case_id: OpaqueId
    contact_id: ContactId
    resolution: Code = Field(description="Resolution code, e.g. refund_issued.")
    resolved_by: AgentId | None = None
    first_response_at: Timestamp | None = None
    first_contact_resolution: bool | None = Field(
        default=None,
        description="Resolved with no customer reply after the first agent response, never "
        "reopened.",
    )


class CaseReopened(EventModel):
    """A resolved or closed case was reopened."""

    case_id: OpaqueId
    contact_id: ContactId
    reason: Reason | None = None
    cause_event_id: EventId | None = Field(
        default=None, description="Interaction that reopened it."
    )
    from_status: CaseStatus | None = Field(
        default=None, description="The status it was reopened from (resolved or closed)."
    )


class CaseClosed(EventModel):
    """A case was closed for good."""

    case_id: OpaqueId
    contact_id: ContactId
    resolution: Code | None = None


class CaseCsatRecorded(EventModel):
    """The contact rated how the case was handled."""

    case_id: OpaqueId
    contact_id: ContactId
    csat: int = Field(ge=1, le=5, description="Customer satisfaction, 1 (worst) to 5.")
    cause_event_id: EventId | None = Field(
        default=None, description="The feedback interaction that carried it."
    )
    agent_id: AgentId | None = Field(
        default=None, description="The agent who resolved the case, credited with the rating."
    )
    replaced_csat: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="The rating this one replaces: the last rating counts.",
    )


class CaseCommented(EventModel):
    """An agent commented on a case: a note for colleagues (internal) or a public comment."""

    case_id: OpaqueId
    contact_id: ContactId
    comment_id: OpaqueId
    author: AgentId
    internal: bool = Field(description="True: seen by agents only, never by the customer.")


EVENTS: dict[str, type[EventModel]] = {
    CASE_OPENED: CaseOpened,
    CASE_ASSIGNED: CaseAssigned,
    CASE_STATUS_CHANGED: CaseStatusChanged,
    CASE_PRIORITY_CHANGED: CasePriorityChanged,
    CASE_SLA_BREACHED: CaseSlaBreached,
    CASE_RESOLVED: CaseResolved,
    CASE_REOPENED: CaseReopened,
    CASE_CLOSED: CaseClosed,
    CASE_CSAT_RECORDED: CaseCsatRecorded,
    CASE_COMMENTED: CaseCommented,
}
