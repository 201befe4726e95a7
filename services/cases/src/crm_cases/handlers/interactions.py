"""Resolved interactions: requests open cases, customers reply, agents respond, customers
rate. A batch is read in a handful of statements (who is merged or erased, the cases the
batch names, the open cases of its contacts, their clocks, the rules) and written in a
handful; most interactions mean nothing to cases and cost nothing.

Order is the batch's (per contact, the partition's): two requests of one new person in one
batch make one case, the second joining the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from crm_cases import domain
from crm_cases.domain import AfterResolution, Case, InteractionFacts, Signal
from crm_cases.handlers.assignment import assign_waiting
from crm_cases.handlers.casework import Casework
from crm_cases.handlers.context import Context, Publisher
from crm_cases.repository import scores as score_rows
from crm_contracts import CloudEvent
from crm_contracts import cases as cs
from crm_contracts import interactions as it
from crm_kit import subjects


@dataclass(frozen=True, slots=True)
class Item:
    """One interaction that means something to cases, and whose it is now."""

    event: CloudEvent
    data: it.InteractionResolved
    signal: Signal
    contact_id: str


def _facts(data: it.InteractionResolved) -> InteractionFacts:
    return InteractionFacts(
        kind=data.kind,
        agent_id=data.agent_id,
        case_id=data.case_id,
        csat=data.csat,
    )


async def record_interactions(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Apply a batch of resolved interactions to cases."""
    relevant = []
    for event in events:
        data = event.data_as(it.InteractionResolved)
        signal = domain.signal_of(_facts(data))
        if signal != Signal.NONE:
            relevant.append((event, data, signal))
    if not relevant:
        return
    now = await subjects.current(conn, {data.contact_id for _, data, _ in relevant})
    items = [
        Item(event, data, signal, now.survivor_of(data.contact_id))
        for event, data, signal in relevant
        if not now.is_erased(data.contact_id)
    ]
    if not items:
        return
    contact_ids = sorted({item.contact_id for item in items})
    case_ids = sorted({item.data.case_id for item in items if item.data.case_id})
    out = Publisher(ctx)
    work = await Casework.load(conn, ctx, out, case_ids=case_ids, contact_ids=contact_ids)
    standings = await score_rows.standings(conn, contact_ids)
    for item in items:
        _apply(work, ctx, item, standings)
    await assign_waiting(conn, work, at=max(item.event.time for item in items))
    await work.flush(conn)


def _apply(
    work: Casework, ctx: Context, item: Item, standings: dict[str, score_rows.Standing]
) -> None:
    data, event = item.data, item.event
    case = _named_case(work, item)
    if item.signal == Signal.AGENT_RESPONSE:
        target = case or _only_open_case(work, item.contact_id)
        if target is not None and target.is_open:
            agent = data.agent_id
            assert agent is not None
            work.agent_response(
                target, event.time, agent_id=agent, cause=event, channel=data.channel
            )
        return
    if item.signal == Signal.FEEDBACK:
        if case is not None and data.csat is not None:
            _record_csat(work, case, data.csat, item)
        return
    if item.signal == Signal.CUSTOMER_REPLY:
        if case is not None:
            _reply(work, ctx, case, item, standings)
            return
        if data.kind not in domain.OPENING_KINDS:
            return  # a message on a case that is not ours (or not this contact's)
    # A request, or a reply naming a case we do not know: open a case or join one.
    category = domain.category_of(data.kind, data.properties)
    joined = work.open_case_of(item.contact_id, category)
    if joined is not None:
        work.customer_reply(joined, event.time, cause=event, channel=data.channel)
        return
    _open_from(work, ctx, item, category, standings)


def _named_case(work: Casework, item: Item) -> Case | None:
    """The case the interaction names, if it is ours and the contact's (after merges)."""
    if item.data.case_id is None:
        return None
    case = work.cases.get(item.data.case_id)
    if case is None or case.contact_id != item.contact_id:
        return None
    return case


def _only_open_case(work: Casework, contact_id: str) -> Case | None:
    """An agent's reply naming no case counts for the contact's case if they have one."""
    open_cases = [c for c in work.cases.values() if c.contact_id == contact_id and c.is_open]
    return open_cases[0] if len(open_cases) == 1 else None


def _reply(
    work: Casework, ctx: Context, case: Case, item: Item, standings: dict[str, score_rows.Standing]
) -> None:
    event, data = item.event, item.data
    if case.is_open:
        work.customer_reply(case, event.time, cause=event, channel=data.channel)
        return
    decision = domain.after_resolution(case.status, case.resolved_at, event.time, ctx.reopen_window)
    if decision == AfterResolution.REOPEN:
        work.reopen(case, event.time, cause=event, reason="customer replied")
        work.customer_reply(case, event.time, cause=event, channel=data.channel)
        return
    _open_from(work, ctx, item, case.category, standings, linked=case)


def _open_from(
    work: Casework,
    ctx: Context,
    item: Item,
    category: str | None,
    standings: dict[str, score_rows.Standing],
    *,
    linked: Case | None = None,
) -> Case:
    event, data = item.event, item.data
    standing = standings.get(item.contact_id)
    priority = ctx.priority_for(standing)
    description = data.properties.get("description")
    return work.open(
        contact_id=item.contact_id,
        subject=domain.subject_of(data.kind, data.properties)
        if linked is None
        else f"Follow-up: {linked.subject}"[:200],
        description=description if isinstance(description, str) else None,
        at=event.time,
        queue=linked.queue if linked is not None else _queue_of(ctx, data),
        priority=priority,
        channel=data.channel,
        category=category,
        cause=event,
        linked_case_id=linked.id if linked is not None else None,
    )


def _queue_of(ctx: Context, data: it.InteractionResolved) -> str:
    queue = data.properties.get("queue")
    if isinstance(queue, str) and domain.is_code(queue):
        return queue
    return ctx.settings.default_queue


def _record_csat(work: Casework, case: Case, csat: int, item: Item) -> None:
    """A rating of the case: the last one counts and says which it replaced; the agent who
    resolved the case is credited."""
    replaced = case.csat
    case.csat = csat
    case.csat_at = item.event.time
    work.mark(case)
    work.note(case, "customer", item.event.time, event_id=item.event.id, channel=item.data.channel)
    work.out.case_event(
        cs.CASE_CSAT_RECORDED,
        cs.CaseCsatRecorded(
            case_id=case.id,
            contact_id=case.contact_id,
            csat=csat,
            cause_event_id=item.event.id,
            agent_id=case.resolved_by or case.assignee,
            replaced_csat=replaced,
        ),
        contact_id=case.contact_id,
        time=item.event.time,
        cause=item.event,
    )
