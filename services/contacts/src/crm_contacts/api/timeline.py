"""The timeline of a contact, and the 360 view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from crm_contacts import handlers
from crm_contacts.api.accounts import AccountOut
from crm_contacts.api.consent import ConsentOut
from crm_contacts.api.contacts import ContactOut
from crm_contacts.api.dependencies import Ctx, Reader
from crm_kit.api import MAX_PAGE, Page
from crm_kit.inputs import Instant
from crm_kit.problems import problem_responses
from crm_kit.runtime import SnapshotDep

router = APIRouter()


class TimelineEntryOut(BaseModel):
    """One event about the contact, at the time it happened."""

    id: int
    time: datetime
    recorded_at: datetime
    type: str
    kind: str
    channel: str | None
    source: str
    event_id: str
    origin_contact_id: str
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TimelineEntryOut:
        """A timeline row (its contact id is the one asked about)."""
        return cls(**{k: v for k, v in row.items() if k != "contact_id"})


class CaseOut(BaseModel):
    """A case of the contact, as the cases service reported it."""

    case_id: str
    title: str | None
    queue: str | None
    priority: str | None
    status: str
    assignee: str | None
    opened_at: datetime | None


class EnrolmentOut(BaseModel):
    """A campaign enrolment of the contact."""

    enrolment_id: str
    campaign_id: str
    enrolled_at: datetime | None
    converted_at: datetime | None
    exited_at: datetime | None
    exit_reason: str | None


class ScoresOut(BaseModel):
    """The contact's latest scores."""

    model_version: str
    scores: dict[str, Any]
    time: datetime
    event_id: str


class View360(BaseModel):
    """Everything about a contact, from this service's own database."""

    contact: ContactOut
    consent: list[ConsentOut]
    account: AccountOut | None
    scores: ScoresOut | None
    open_cases: list[CaseOut]
    campaigns: list[EnrolmentOut]
    timeline: list[TimelineEntryOut]

    @classmethod
    def from_view(cls, view: handlers.Contact360) -> View360:
        """The 360 of a contact."""
        return cls(
            contact=ContactOut.from_details(view.contact),
            consent=[ConsentOut(**c) for c in view.consent],
            account=None if view.account is None else AccountOut(**view.account),
            scores=None if view.scores is None else ScoresOut(**view.scores),
            open_cases=[CaseOut(**c) for c in view.open_cases],
            campaigns=[EnrolmentOut(**e) for e in view.campaigns],
            timeline=[TimelineEntryOut.from_row(r) for r in view.timeline],
        )


@router.get(
    "/contacts/{contact_id}/timeline",
    response_model=Page[TimelineEntryOut],
    responses=problem_responses(400, 404, 410),
)
async def get_timeline(
    contact_id: str,
    principal: Reader,
    conn: SnapshotDep,
    kind: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI copies it
    channel: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    source: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    since: Instant | None = None,
    until: Instant | None = None,
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[TimelineEntryOut]:
    """Everything that happened with the contact, by event time (newest first by default)."""
    rows = await handlers.get_timeline(
        conn,
        contact_id,
        kinds=kind,
        channels=channel,
        sources=source,
        since=since,
        until=until,
        ascending=order == "asc",
        cursor=cursor,
        limit=limit,
    )
    return Page[TimelineEntryOut].of(rows, TimelineEntryOut.from_row)


@router.get(
    "/contacts/{contact_id}/360", response_model=View360, responses=problem_responses(404, 410)
)
async def get_360(contact_id: str, principal: Reader, conn: SnapshotDep, ctx: Ctx) -> View360:
    """Profile, identifiers, stage, consent, account, scores, open cases, campaigns, timeline.

    A merged id answers for its survivor (`contact.resolved_from` names the id asked for).
    """
    return View360.from_view(await handlers.get_360(conn, ctx, contact_id))
