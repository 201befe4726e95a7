"""Cases by hand: an agent opens, changes, moves, assigns and comments on cases, and reads
them. Each command runs in the route's transaction (`in_transaction`) or, for an
idempotent create, in `answer_once`'s; its time is the request's (the context's clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_cases import domain
from crm_cases.domain import Case
from crm_cases.handlers.assignment import assign_waiting
from crm_cases.handlers.casework import Casework
from crm_cases.handlers.context import Context, Publisher, new_id
from crm_cases.repository import cases as case_rows
from crm_cases.repository import scores as score_rows
from crm_cases.repository import sla as sla_rows
from crm_cases.repository.cases import CaseFilter
from crm_contracts import cases as cs
from crm_contracts.cases import CasePriority, CaseStatus
from crm_kit import subjects
from crm_kit.errors import Conflict, Gone, NotFound
from crm_kit.pages import decode_cursor, encode_cursor

HISTORY = 20  # earlier cases shown with a case


@dataclass(frozen=True, slots=True)
class NewCase:
    """What an agent opens a case with."""

    contact_id: str
    subject: str
    description: str | None = None
    channel: str | None = None
    category: str | None = None
    queue: str | None = None
    priority: CasePriority | None = None  # None: from the contact's value


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case, its SLA clocks and breaches, and (for one case) what happened on it and the
    contact's earlier cases."""

    case: Case
    clocks: list[sla_rows.StoredClock]
    breaches: list[dict[str, Any]]
    activity: list[dict[str, Any]] | None = None
    history: list[dict[str, Any]] | None = None


async def _work(
    conn: asyncpg.Connection, ctx: Context, case_id: str, correlation_id: str | None
) -> tuple[Casework, Case]:
    work = await Casework.load(conn, ctx, Publisher(ctx, correlation_id), case_ids=[case_id])
    case = work.cases.get(case_id)
    if case is None:
        raise NotFound("No case with this id.", reason="case-not-found")
    if case.erased:
        raise Gone("The case's contact was erased.", reason="contact-erased")
    return work, case


async def create_case(
    conn: asyncpg.Connection, ctx: Context, new: NewCase, *, correlation_id: str | None
) -> CaseView:
    """An agent opens a case; without a priority it takes the one the contact's value asks
    for, and follows it while nobody sets one."""
    now = await subjects.current(conn, [new.contact_id])
    if now.is_erased(new.contact_id):
        raise Gone("The contact was erased.", reason="contact-erased")
    contact_id = now.survivor_of(new.contact_id)
    priority, set_by = new.priority, "agent"
    if priority is None:
        standing = (await score_rows.standings(conn, [contact_id])).get(contact_id)
        priority = ctx.priority_for(standing)
        set_by = "value"
    work = await Casework.load(conn, ctx, Publisher(ctx, correlation_id))
    case = work.open(
        contact_id=contact_id,
        subject=new.subject,
        description=new.description,
        channel=new.channel,
        category=new.category,
        queue=new.queue or ctx.settings.default_queue,
        priority=priority,
        priority_set_by=set_by,
        at=ctx.clock(),
    )
    await assign_waiting(conn, work)
    await work.flush(conn)
    return await get_case(conn, ctx, case.id)


async def update_case(
    conn: asyncpg.Connection,
    ctx: Context,
    case_id: str,
    changes: dict[str, Any],
    *,
    correlation_id: str | None,
) -> CaseView:
    """Change a case's subject, description, category, queue or priority. A priority set
    by hand stays until changed by hand again; `null` gives it back to the contact's value."""
    work, case = await _work(conn, ctx, case_id, correlation_id)
    at = ctx.clock()
    for name in ("subject", "description", "category", "queue"):
        if name in changes:
            setattr(case, name, changes[name])
            work.mark(case)
    if "priority" in changes:
        if changes["priority"] is None:
            standing = (await score_rows.standings(conn, [case.contact_id])).get(case.contact_id)
            priority = ctx.priority_for(standing)
            work.reprioritise(case, priority, at, set_by="value", reason="priority from value")
        else:
            work.reprioritise(
                case,
                CasePriority(changes["priority"]),
                at,
                set_by="agent",
                reason="set by an agent",
            )
    await assign_waiting(conn, work)
    await work.flush(conn)
    return await get_case(conn, ctx, case_id)


async def transition_case(
    conn: asyncpg.Connection,
    ctx: Context,
    case_id: str,
    to: CaseStatus,
    *,
    agent: str,
    reason: str | None,
    resolution: str | None,
    correlation_id: str | None,
) -> CaseView:
    """Move a case to another status (409 naming the allowed ones when it may not)."""
    work, case = await _work(conn, ctx, case_id, correlation_id)
    late = (
        domain.after_resolution(case.status, case.resolved_at, ctx.clock(), ctx.reopen_window)
        != domain.AfterResolution.REOPEN
    )
    if to == CaseStatus.OPEN and case.status == CaseStatus.RESOLVED and late:
        raise Conflict(
            "The reopen window of this case has passed; open a new case that links it.",
            reason="reopen-window-passed",
        )
    work.move(case, to, ctx.clock(), reason=reason, resolved_by=agent, resolution=resolution)
    await assign_waiting(conn, work)
    await work.flush(conn)
    return await get_case(conn, ctx, case_id)


async def assign_case(
    conn: asyncpg.Connection,
    ctx: Context,
    case_id: str,
    *,
    assignee: str | None,
    queue: str | None,
    correlation_id: str | None,
    keep_assignee: bool = False,
) -> CaseView:
    """Give a case to an agent (None: back to its queue), or move it to another queue."""
    work, case = await _work(conn, ctx, case_id, correlation_id)
    previous_assignee, previous_queue = case.assignee, case.queue
    if not keep_assignee:
        case.assignee = assignee
    if queue is not None:
        case.queue = queue
    work.mark(case)
    if (previous_assignee, previous_queue) != (case.assignee, case.queue):
        work.out.case_event(
            cs.CASE_ASSIGNED,
            cs.CaseAssigned(
                case_id=case.id,
                contact_id=case.contact_id,
                queue=case.queue,
                assignee=case.assignee,
                previous_assignee=previous_assignee,
                previous_queue=previous_queue if previous_queue != case.queue else None,
            ),
            contact_id=case.contact_id,
            time=ctx.clock(),
        )
    await assign_waiting(conn, work)
    await work.flush(conn)
    return await get_case(conn, ctx, case_id)


async def comment_on_case(
    conn: asyncpg.Connection,
    ctx: Context,
    case_id: str,
    *,
    author: str,
    body: str,
    internal: bool,
    correlation_id: str | None,
) -> CaseView:
    """An agent's note on a case; `internal` ones are for agents only."""
    work, case = await _work(conn, ctx, case_id, correlation_id)
    at = ctx.clock()
    comment_id = new_id("comment")
    work.note(case, "comment", at, author=author, body=body, internal=internal, event_id=comment_id)
    work.out.case_event(
        cs.CASE_COMMENTED,
        cs.CaseCommented(
            case_id=case.id,
            contact_id=case.contact_id,
            comment_id=comment_id,
            author=author,
            internal=internal,
        ),
        contact_id=case.contact_id,
        time=at,
    )
    await work.flush(conn)
    return await get_case(conn, ctx, case_id)


async def get_case(conn: asyncpg.Connection, ctx: Context, case_id: str) -> CaseView:
    """One case with its clocks, breaches, activity and the contact's other cases."""
    case = (await case_rows.cases_by_id(conn, [case_id], lock=False)).get(case_id)
    if case is None:
        raise NotFound("No case with this id.", reason="case-not-found")
    return CaseView(
        case,
        await sla_rows.clocks_of(conn, [case_id]),
        await sla_rows.breaches_of(conn, [case_id]),
        await case_rows.activity_of(conn, case_id),
        await case_rows.history_of(conn, case.contact_id, besides=case_id, limit=HISTORY),
    )


@dataclass(frozen=True, slots=True)
class CasePage:
    """A page of cases with their clocks and breaches."""

    items: list[CaseView]
    next_cursor: str | None


async def list_cases(
    conn: asyncpg.Connection,
    ctx: Context,
    where: CaseFilter,
    *,
    cursor: str | None,
    limit: int,
) -> CasePage:
    """Cases newest first, filtered."""
    after = decode_cursor(cursor, datetime, str) if cursor else None
    found = await case_rows.list_cases(
        conn, where, after=(after[0], after[1]) if after else None, limit=limit + 1
    )
    more = len(found) > limit
    found = found[:limit]
    ids = [c.id for c in found]
    clocks = await sla_rows.clocks_of(conn, ids) if ids else []
    breaches = await sla_rows.breaches_of(conn, ids) if ids else []
    items = [
        CaseView(
            case,
            [k for k in clocks if k.case_id == case.id],
            [b for b in breaches if b["case_id"] == case.id],
        )
        for case in found
    ]
    next_cursor = encode_cursor(found[-1].opened_at, found[-1].id) if more and found else None
    return CasePage(items, next_cursor)
