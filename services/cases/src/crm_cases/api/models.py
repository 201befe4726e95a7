"""Response models of the cases API, built from the handlers' typed views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from crm_cases.handlers.cases import CaseView
from crm_contracts.cases import CasePriority, CaseStatus


class ClockOut(BaseModel):
    """One SLA clock: a metric's cycle, its target and where it stands."""

    metric: str
    cycle: int
    calendar_id: str
    started_at: datetime
    target_seconds: int
    used_seconds: float = Field(description="Business seconds used before running_since.")
    running_since: datetime | None = Field(description="Absent while paused or met.")
    due_at: datetime | None = Field(description="When it breaches if it keeps running.")
    stopped_at: datetime | None = Field(description="When it was met.")
    breached_at: datetime | None


class BreachOut(BaseModel):
    """A target missed."""

    metric: str
    cycle: int
    due_at: datetime
    detected_at: datetime


class ActivityOut(BaseModel):
    """Something that happened on the case: a customer's or an agent's interaction, a comment."""

    kind: str
    at: datetime
    author: str | None
    event_id: str | None
    channel: str | None
    body: str | None
    internal: bool


class EarlierCase(BaseModel):
    """Another case of the same contact: the service history whoever picks up a case sees."""

    id: str
    subject: str
    category: str | None
    status: CaseStatus
    priority: CasePriority
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    csat: int | None
    first_contact_resolution: bool | None


class CaseOut(BaseModel):
    """A case, its SLA clocks and breaches; one case also has its activity."""

    id: str
    contact_id: str
    subject: str
    description: str | None
    channel: str | None
    category: str | None
    queue: str
    priority: CasePriority
    priority_set_by: str = Field(description="value: follows the contact's value; agent: by hand.")
    status: CaseStatus
    assignee: str | None
    opened_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    closed_at: datetime | None
    reopened: int
    first_contact_resolution: bool | None
    csat: int | None
    linked_case_id: str | None
    cause_event_id: str | None
    erased: bool
    clocks: list[ClockOut]
    breaches: list[BreachOut]
    activity: list[ActivityOut] | None = Field(
        None, description="What happened on the case, in order (one case only)."
    )
    earlier_cases: list[EarlierCase] | None = Field(
        None,
        description="The contact's other cases, newest first (one case only; at most 20). "
        "Every interaction is on the contact's timeline in contacts.",
    )

    @classmethod
    def of(cls, view: CaseView) -> CaseOut:
        c = view.case
        return cls(
            id=c.id,
            contact_id=c.contact_id,
            subject=c.subject,
            description=c.description,
            channel=c.channel,
            category=c.category,
            queue=c.queue,
            priority=c.priority,
            priority_set_by=c.priority_set_by,
            status=c.status,
            assignee=c.assignee,
            opened_at=c.opened_at,
            first_response_at=c.first_response_at,
            resolved_at=c.resolved_at,
            resolved_by=c.resolved_by,
            resolution=c.resolution,
            closed_at=c.closed_at,
            reopened=c.reopened,
            first_contact_resolution=c.fcr,
            csat=c.csat,
            linked_case_id=c.linked_case_id,
            cause_event_id=c.cause_event_id,
            erased=c.erased,
            clocks=[ClockOut(calendar_id=k.calendar_id, **_clock(k.clock)) for k in view.clocks],
            breaches=[BreachOut(**_breach(b)) for b in view.breaches],
            activity=None
            if view.activity is None
            else [ActivityOut(**{k: v for k, v in a.items() if k != "n"}) for a in view.activity],
            earlier_cases=None
            if view.history is None
            else [EarlierCase(**row) for row in view.history],
        )


def _clock(clock: Any) -> dict[str, Any]:
    return {
        "metric": clock.metric.value,
        "cycle": clock.cycle,
        "started_at": clock.started_at,
        "target_seconds": clock.target_seconds,
        "used_seconds": clock.used_seconds,
        "running_since": clock.running_since,
        "due_at": clock.due_at,
        "stopped_at": clock.stopped_at,
        "breached_at": clock.breached_at,
    }


def _breach(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("metric", "cycle", "due_at", "detected_at")}
