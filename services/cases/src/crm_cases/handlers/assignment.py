"""Assignment: queues hand their waiting cases to agents with room (crm_cases.assignment).

Every use case that changes cases calls `assign_waiting(conn, work)` just before
`work.flush`: the queues of the cases it holds, and the queues of those cases' assignees
(a case resolved, closed or pending frees a slot), hand out their oldest waiting cases. An
administrator's change to a queue or an agent (available again, more capacity, a new
queue) does the same for the queues concerned. A batch costs a handful of statements,
whatever its size: the assignees' queues, the queues that assign (locked), their agents
with their loads (locked, one GROUP BY), the waiting cases (locked), the round-robin
pointers; the cases are written by the casework's flush.

Locks are taken queues first (by name), then agents (by id), then waiting cases with SKIP
LOCKED: a case another transaction holds is left to it. What is left so (and anything a
change outside these use cases frees) is picked up by `sweep`, a periodic job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from crm_cases import assignment as rules
from crm_cases.domain import Case
from crm_cases.handlers.casework import Casework
from crm_cases.handlers.context import Context, Publisher
from crm_cases.repository import assignment as rows
from crm_cases.repository.assignment import AgentRow, QueueRow
from crm_contracts import cases as cs
from crm_kit.errors import InvalidInput, NotFound

# At most this many waiting cases are handed out by one transaction; the sweep hands out
# the rest.
MAX_PER_ROUND = 500


async def assign_waiting(
    conn: asyncpg.Connection,
    work: Casework,
    *,
    queues: Iterable[str] = (),
    at: datetime | None = None,
) -> int:
    """Hand the waiting cases of the queues the work touches (and of `queues`) to agents
    with room, in the work's transaction; `at` is when (default: the context's clock).
    Returns how many were assigned."""
    held = list(work.cases.values())
    touched = {c.queue for c in held} | set(queues)
    assignees = sorted({c.assignee for c in held if c.assignee is not None})
    if assignees:
        touched |= set(await rows.queues_of_agents(conn, assignees))
    if not touched:
        return 0
    assigning = await rows.lock_assigning_queues(conn, sorted(touched))
    if not assigning:
        return 0
    names = [q.name for q in assigning]
    agents = _with_held_load(
        await rows.lock_agents_of(conn, names, not_counting=list(work.cases)), held
    )
    room = sum(a.capacity - a.load for a in agents if a.has_room)
    if room == 0:
        return 0
    waiting = [c for c in held if c.queue in names and _waits(c)]
    stored = await rows.lock_waiting_cases(
        conn, names, not_in=list(work.cases), limit=min(room, MAX_PER_ROUND)
    )
    for case in stored:
        work.cases[case.id] = case
    decided = rules.plan(
        {
            q.name: rules.Queue(q.name, rules.Strategy(q.strategy), q.last_agent_id)
            for q in assigning
        },
        agents,
        [rules.Waiting(c.id, c.queue, c.opened_at) for c in [*waiting, *stored]],
    )
    when = at or work.ctx.clock()
    for case_id, agent_id in decided.assignments:
        _assign(work, work.cases[case_id], agent_id, when)
    await rows.move_pointers(conn, decided.last_agent)
    return len(decided.assignments)


async def sweep(pool: asyncpg.Pool, ctx: Context) -> int:
    """The safety net (a periodic job): assign what waits in a queue whose agents have room
    although no change said so: a case another transaction held when a slot freed (SKIP
    LOCKED), more waiting than one round hands out, a row changed by hand. One statement
    when there is nothing to do. Non-zero when a full round was handed out (more may wait)."""
    async with pool.acquire() as conn:
        names = await rows.queues_to_assign(conn)
        if not names:
            return 0
        async with conn.transaction():
            work = await Casework.load(conn, ctx, Publisher(ctx))
            assigned = await assign_waiting(conn, work, queues=names)
            await work.flush(conn)
    return assigned if assigned >= MAX_PER_ROUND else 0


def _waits(case: Case) -> bool:
    return case.assignee is None and rules.counts(case.status) and not case.erased


def _with_held_load(stored: list[AgentRow], held: list[Case]) -> list[rules.Agent]:
    """Loads as stored for the cases the work does not hold, plus the held ones as they
    are now (opened, resolved or moved in this transaction)."""
    extra = Counter(c.assignee for c in held if c.assignee is not None and rules.counts(c.status))
    return [
        rules.Agent(a.id, a.available, a.capacity, a.load + extra[a.id], frozenset(a.queues))
        for a in stored
    ]


def _assign(work: Casework, case: Case, agent_id: str, at: datetime) -> None:
    case.assignee = agent_id
    work.mark(case)
    work.out.case_event(
        cs.CASE_ASSIGNED,
        cs.CaseAssigned(
            case_id=case.id, contact_id=case.contact_id, queue=case.queue, assignee=agent_id
        ),
        contact_id=case.contact_id,
        time=max(at, case.opened_at),
    )


# ---- queues and agents, administered by hand


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue and how many cases wait in it."""

    queue: QueueRow
    waiting: int


async def list_queues(conn: asyncpg.Connection) -> list[QueueView]:
    """Every queue with its waiting count."""
    found = await rows.queues(conn)
    waiting = await rows.waiting_counts(conn, [q.name for q in found])
    return [QueueView(q, waiting.get(q.name, 0)) for q in found]


async def get_queue(conn: asyncpg.Connection, name: str) -> QueueView:
    """One queue with its waiting count."""
    found = await rows.queue(conn, name)
    if found is None:
        raise NotFound("No queue with this name.", reason="queue-not-found")
    return QueueView(found, (await rows.waiting_counts(conn, [name])).get(name, 0))


async def put_queue(
    conn: asyncpg.Connection,
    ctx: Context,
    name: str,
    *,
    strategy: rules.Strategy,
    auto_assign: bool,
    correlation_id: str | None,
) -> QueueView:
    """Create or change a queue; one that assigns hands out its waiting cases now."""
    await rows.lock_queues(conn, [name])
    await rows.save_queue(conn, name, strategy=strategy.value, auto_assign=auto_assign)
    await _assign_queues(conn, ctx, [name], correlation_id)
    return await get_queue(conn, name)


async def list_agents(conn: asyncpg.Connection) -> list[AgentRow]:
    """Every agent with their load."""
    return await rows.agents(conn)


async def get_agent(conn: asyncpg.Connection, agent_id: str) -> AgentRow:
    """One agent with their load."""
    found = await rows.agent(conn, agent_id)
    if found is None:
        raise NotFound("No agent with this id.", reason="agent-not-found")
    return found


async def put_agent(
    conn: asyncpg.Connection,
    ctx: Context,
    agent_id: str,
    *,
    name: str,
    capacity: int,
    available: bool,
    queues: list[str],
    correlation_id: str | None,
) -> AgentRow:
    """Create or replace an agent (their queues must exist); what waits in their queues is
    handed out now if they have room."""
    before = await rows.agent(conn, agent_id)
    wanted = sorted(set(queues))
    known = await rows.lock_queues(conn, sorted({*wanted, *(before.queues if before else ())}))
    unknown = [q for q in wanted if q not in known]
    if unknown:
        raise InvalidInput(
            "No queue with this name: " + ", ".join(unknown) + ".",
            reason="queue-not-found",
            extensions={"queues": unknown},
        )
    await rows.save_agent(
        conn, agent_id, name=name, capacity=capacity, available=available, queues=wanted
    )
    await _assign_queues(conn, ctx, wanted, correlation_id)
    return await get_agent(conn, agent_id)


async def update_agent(
    conn: asyncpg.Connection,
    ctx: Context,
    agent_id: str,
    *,
    capacity: int | None,
    available: bool | None,
    correlation_id: str | None,
) -> AgentRow:
    """Change an agent's capacity or availability; room they gain is filled now."""
    before = await get_agent(conn, agent_id)
    await rows.lock_queues(conn, sorted(before.queues))
    await rows.update_agent(conn, agent_id, capacity=capacity, available=available)
    await _assign_queues(conn, ctx, before.queues, correlation_id)
    return await get_agent(conn, agent_id)


async def _assign_queues(
    conn: asyncpg.Connection, ctx: Context, queues: list[str], correlation_id: str | None
) -> None:
    if not queues:
        return
    work = await Casework.load(conn, ctx, Publisher(ctx, correlation_id))
    await assign_waiting(conn, work, queues=queues)
    await work.flush(conn)
