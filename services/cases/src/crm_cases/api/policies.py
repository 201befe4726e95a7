"""SLA policies (one per priority) and business-hours calendars: read by agents, changed by
administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from crm_cases.api.dependencies import Admin, Ctx, Reader
from crm_cases.handlers import policies as handlers
from crm_cases.sla import Metric
from crm_contracts.cases import CasePriority, CaseStatus
from crm_kit.api import Input, in_transaction
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()

CalendarId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]
HourRange = Annotated[
    list[Annotated[str, Field(pattern=r"^\d{2}:\d{2}$")]], Field(min_length=2, max_length=2)
]


class CalendarIn(Input):
    """Business hours in an IANA time zone: per weekday (mon..sun) a list of ["HH:MM",
    "HH:MM"] ranges of local time (an end of "24:00" is midnight), and holidays."""

    time_zone: Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"])]
    hours: dict[str, Annotated[list[HourRange], Field(max_length=12)]] = Field(
        examples=[{"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}]
    )
    holidays: Annotated[list[str], Field(max_length=400)] = Field(
        default_factory=list, examples=[["2026-12-25"]]
    )


class CalendarOut(BaseModel):
    """A business-hours calendar."""

    id: str
    time_zone: str
    hours: dict[str, list[list[str]]]
    holidays: list[str]
    updated_at: datetime


class TargetIn(Input):
    """A metric's target: business seconds, and the statuses its clock pauses in."""

    seconds: Annotated[int, Field(ge=60, le=366 * 86400)]
    pauses_in: list[CaseStatus] = Field(default_factory=list)


class PolicyIn(Input):
    """The SLA policy of a priority."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    calendar_id: Annotated[str, Field(min_length=1, max_length=64)]
    targets: dict[Metric, TargetIn] = Field(
        description="Per metric (first_response, next_response, resolution); a metric left "
        "out has no target."
    )


class PolicyOut(BaseModel):
    """An SLA policy."""

    priority: CasePriority
    name: str
    calendar_id: str
    targets: dict[str, Any]
    updated_at: datetime


@router.get("/calendars", response_model=list[CalendarOut])
async def list_calendars(principal: Reader, conn: SnapshotDep) -> list[CalendarOut]:
    """Every business-hours calendar."""
    return [CalendarOut(**row) for row in await handlers.list_calendars(conn)]


@router.get(
    "/calendars/{calendar_id}", response_model=CalendarOut, responses=problem_responses(404)
)
async def get_calendar(calendar_id: str, principal: Reader, conn: SnapshotDep) -> CalendarOut:
    """One calendar."""
    return CalendarOut(**await handlers.get_calendar(conn, calendar_id))


@router.put("/calendars/{calendar_id}", response_model=CalendarOut)
async def put_calendar(
    calendar_id: CalendarId, body: CalendarIn, principal: Admin, conn: ConnectionDep, ctx: Ctx
) -> CalendarOut:
    """Create or replace a calendar; clocks counting on it keep the business time they used
    and count the rest against the new hours."""
    row = await in_transaction(conn, handlers.put_calendar, ctx, calendar_id, body.model_dump())
    return CalendarOut(**row)


@router.get("/sla-policies", response_model=list[PolicyOut])
async def list_policies(principal: Reader, conn: SnapshotDep) -> list[PolicyOut]:
    """The SLA policy of each priority, most urgent first."""
    return [PolicyOut(**row) for row in await handlers.list_policies(conn)]


@router.put("/sla-policies/{priority}", response_model=PolicyOut)
async def put_policy(
    priority: CasePriority, body: PolicyIn, principal: Admin, conn: ConnectionDep
) -> PolicyOut:
    """Replace the policy of a priority; it applies to clocks started from now on and to
    cases whose priority changes to it."""
    targets = {
        metric.value: {"seconds": t.seconds, "pauses_in": [s.value for s in t.pauses_in]}
        for metric, t in body.targets.items()
    }
    row = await in_transaction(
        conn,
        handlers.put_policy,
        priority,
        name=body.name,
        calendar_id=body.calendar_id,
        targets=targets,
    )
    return PolicyOut(**row)
