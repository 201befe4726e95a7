"""Queues and agents: read by agents, changed by administrators. A queue hands its waiting
cases to its agents who are available and have room, round robin or least busy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from crm_cases.api.dependencies import Admin, Ctx, Reader
from crm_cases.assignment import Strategy
from crm_cases.handlers import assignment as handlers
from crm_cases.handlers.assignment import QueueView
from crm_cases.repository.assignment import AgentRow
from crm_contracts.base import Code
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()

QueueName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AgentId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
]
Capacity = Annotated[int, Field(ge=0, le=1000, description="Cases new, open or on hold at once.")]


class QueueIn(Input):
    """How a queue assigns its cases."""

    strategy: Strategy = Field(
        Strategy.ROUND_ROBIN,
        description="round_robin: the next agent with room in turn; least_busy: the agent "
        "with the fewest cases new, open or on hold.",
    )
    auto_assign: bool = Field(True, description="Assign cases as they arrive and as slots free.")


class QueueOut(BaseModel):
    """A queue and the cases waiting in it."""

    name: str
    strategy: Strategy
    auto_assign: bool
    last_agent_id: str | None = Field(description="Round robin: who got its last case.")
    waiting: int = Field(description="Unassigned cases new, open or on hold.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: QueueView) -> QueueOut:
        q = view.queue
        return cls(
            name=q.name,
            strategy=Strategy(q.strategy),
            auto_assign=q.auto_assign,
            last_agent_id=q.last_agent_id,
            waiting=view.waiting,
            created_at=q.created_at,
            updated_at=q.updated_at,
        )


class AgentIn(Input):
    """An agent who takes cases of some queues."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    capacity: Capacity
    available: bool = True
    queues: Annotated[list[Code], Field(max_length=50)] = Field(default_factory=list)


class AgentPatch(Input):
    """Change an agent's availability or capacity (a field left out stays)."""

    available: bool | None = None
    capacity: Capacity | None = None


class AgentOut(BaseModel):
    """An agent and their current load."""

    id: str
    name: str
    capacity: int
    available: bool
    queues: list[str]
    load: int = Field(description="Their cases new, open or on hold (pending ones not counted).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: AgentRow) -> AgentOut:
        return cls(
            id=row.id,
            name=row.name,
            capacity=row.capacity,
            available=row.available,
            queues=row.queues,
            load=row.load,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@router.get("/queues", response_model=list[QueueOut])
async def list_queues(principal: Reader, conn: SnapshotDep) -> list[QueueOut]:
    """Every queue, by name."""
    return [QueueOut.of(v) for v in await handlers.list_queues(conn)]


@router.get("/queues/{name}", response_model=QueueOut, responses=problem_responses(404))
async def get_queue(name: str, principal: Reader, conn: SnapshotDep) -> QueueOut:
    """One queue."""
    return QueueOut.of(await handlers.get_queue(conn, name))


@router.put("/queues/{name}", response_model=QueueOut)
async def put_queue(
    name: QueueName,
    body: QueueIn,
    principal: Admin,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> QueueOut:
    """Create or change a queue; one that assigns hands out its waiting cases now."""
    view = await in_transaction(
        conn,
        handlers.put_queue,
        ctx,
        name,
        strategy=body.strategy,
        auto_assign=body.auto_assign,
        correlation_id=correlation_id,
    )
    return QueueOut.of(view)


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(principal: Reader, conn: SnapshotDep) -> list[AgentOut]:
    """Every agent with their load, by id."""
    return [AgentOut.of(a) for a in await handlers.list_agents(conn)]


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=problem_responses(404))
async def get_agent(agent_id: str, principal: Reader, conn: SnapshotDep) -> AgentOut:
    """One agent with their load."""
    return AgentOut.of(await handlers.get_agent(conn, agent_id))


@router.put("/agents/{agent_id}", response_model=AgentOut)
async def put_agent(
    agent_id: AgentId,
    body: AgentIn,
    principal: Admin,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> AgentOut:
    """Create or replace an agent (422 naming queues that do not exist); cases waiting in
    their queues are handed out now if they have room."""
    row = await in_transaction(
        conn,
        handlers.put_agent,
        ctx,
        agent_id,
        name=body.name,
        capacity=body.capacity,
        available=body.available,
        queues=body.queues,
        correlation_id=correlation_id,
    )
    return AgentOut.of(row)


@router.patch("/agents/{agent_id}", response_model=AgentOut, responses=problem_responses(404))
async def update_agent(
    agent_id: str,
    body: AgentPatch,
    principal: Admin,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> AgentOut:
    """Make an agent available or not, or change their capacity; room they gain is filled
    from their queues now."""
    row = await in_transaction(
        conn,
        handlers.update_agent,
        ctx,
        agent_id,
        capacity=body.capacity,
        available=body.available,
        correlation_id=correlation_id,
    )
    return AgentOut.of(row)
