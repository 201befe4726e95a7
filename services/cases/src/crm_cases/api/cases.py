"""Cases: open (idempotent), list and filter, read, change, move, assign, comment; a
contact's cases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from crm_cases.api.dependencies import Ctx, Reader, Writer
from crm_cases.api.models import CaseOut
from crm_cases.handlers import cases as handlers
from crm_cases.repository.cases import CaseFilter
from crm_contracts.base import Channel, Code
from crm_contracts.cases import CasePriority, CaseStatus
from crm_kit.api import MAX_PAGE, IdempotencyKey, Input, created, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.idempotency import IdempotentPost, answer_once
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()

Subject = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class CaseCreate(Input):
    """A case an agent opens for a contact; without a priority it follows the contact's value."""

    contact_id: Id
    subject: Subject
    description: Description | None = None
    channel: Channel | None = None
    category: Code | None = None
    queue: Code | None = None
    priority: CasePriority | None = None


class CasePatch(Input):
    """Fields to change; a priority of null gives the priority back to the contact's value."""

    subject: Subject | None = None
    description: Description | None = None
    category: Code | None = None
    queue: Code | None = None
    priority: CasePriority | None = None


class Transition(Input):
    """Move a case to another status (resolved → open reopens it within the window)."""

    to: CaseStatus
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    resolution: Code | None = Field(default=None, description="For resolved and closed.")


class Assignment(Input):
    """Give a case to an agent (null: back to its queue) and/or move it to a queue (an
    assignee left out stays)."""

    assignee: Id | None = None
    queue: Code | None = None


class CommentIn(Input):
    """An agent's note on a case."""

    body: Annotated[str, Field(min_length=1, max_length=10000)]
    internal: bool = Field(True, description="For agents only (not a reply to the customer).")


class CasePage(BaseModel):
    """One page of cases; pass next_cursor as `cursor` for the next."""

    items: list[CaseOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: handlers.CasePage) -> CasePage:
        return cls(items=[CaseOut.of(v) for v in page.items], next_cursor=page.next_cursor)


@router.post(
    "/cases",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseOut,
    responses=problem_responses(409, 410),
)
async def create_case(
    body: CaseCreate,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Open a case for a contact; SLA clocks start now on the policy of its priority."""

    async def create() -> tuple[BaseModel, str]:
        view = await handlers.create_case(
            conn,
            ctx,
            handlers.NewCase(**body.model_dump()),
            correlation_id=correlation_id,
        )
        return CaseOut.of(view), view.case.contact_id

    post = IdempotentPost.of(
        body, principal=principal.subject, operation="create_case", key=idempotency_key
    )
    return created(await answer_once(conn, post, create), "/v1/cases")


@router.get("/cases", response_model=CasePage, responses=problem_responses(400))
async def list_cases(
    principal: Reader,
    conn: SnapshotDep,
    ctx: Ctx,
    status_: Annotated[CaseStatus | None, Query(alias="status")] = None,
    priority: CasePriority | None = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    contact_id: Annotated[str | None, Query(max_length=128)] = None,
    breached: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CasePage:
    """Cases newest first, filtered by status, priority, queue, assignee, contact and
    whether they breached a target."""
    where = CaseFilter(
        status=status_.value if status_ else None,
        priority=priority.value if priority else None,
        queue=queue,
        assignee=assignee,
        contact_id=contact_id,
        breached=breached,
    )
    page = await handlers.list_cases(conn, ctx, where, cursor=cursor, limit=limit)
    return CasePage.of(page)


@router.get(
    "/contacts/{contact_id}/cases", response_model=CasePage, responses=problem_responses(400)
)
async def contact_cases(
    contact_id: str,
    principal: Reader,
    conn: SnapshotDep,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CasePage:
    """A contact's cases, newest first."""
    page = await handlers.list_cases(
        conn, ctx, CaseFilter(contact_id=contact_id), cursor=cursor, limit=limit
    )
    return CasePage.of(page)


@router.get("/cases/{case_id}", response_model=CaseOut, responses=problem_responses(404))
async def get_case(case_id: str, principal: Reader, conn: SnapshotDep, ctx: Ctx) -> CaseOut:
    """One case: its SLA clocks, breaches and everything that happened on it."""
    return CaseOut.of(await handlers.get_case(conn, ctx, case_id))


@router.patch("/cases/{case_id}", response_model=CaseOut, responses=problem_responses(404, 410))
async def update_case(
    case_id: str,
    body: CasePatch,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> CaseOut:
    """Change a case; a new priority re-targets its SLA clocks from their start."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("subject", "queue"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    view = await in_transaction(
        conn, handlers.update_case, ctx, case_id, changes, correlation_id=correlation_id
    )
    return CaseOut.of(view)


@router.post(
    "/cases/{case_id}/transitions",
    response_model=CaseOut,
    responses=problem_responses(404, 409, 410),
)
async def transition_case(
    case_id: str,
    body: Transition,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> CaseOut:
    """Move a case; 409 names the statuses it may move to."""
    view = await in_transaction(
        conn,
        handlers.transition_case,
        ctx,
        case_id,
        body.to,
        agent=principal.subject,
        reason=body.reason,
        resolution=body.resolution,
        correlation_id=correlation_id,
    )
    return CaseOut.of(view)


@router.post(
    "/cases/{case_id}/assignment", response_model=CaseOut, responses=problem_responses(404, 410)
)
async def assign_case(
    case_id: str,
    body: Assignment,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> CaseOut:
    """Assign a case to an agent or a queue."""
    view = await in_transaction(
        conn,
        handlers.assign_case,
        ctx,
        case_id,
        assignee=body.assignee,
        keep_assignee="assignee" not in body.model_fields_set,
        queue=body.queue,
        correlation_id=correlation_id,
    )
    return CaseOut.of(view)


@router.post(
    "/cases/{case_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseOut,
    responses=problem_responses(404, 410),
)
async def comment_on_case(
    case_id: str,
    body: CommentIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> CaseOut:
    """Add an agent's comment to a case."""
    view = await in_transaction(
        conn,
        handlers.comment_on_case,
        ctx,
        case_id,
        author=principal.subject,
        body=body.body,
        internal=body.internal,
        correlation_id=correlation_id,
    )
    return CaseOut.of(view)
