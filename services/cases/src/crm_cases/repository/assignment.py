"""Queues, agents and their loads, and the cases waiting in queues."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from crm_cases.domain import Case
from crm_cases.repository import cases as case_rows

_QUEUE = "name, strategy, last_agent_id, auto_assign, created_at, updated_at"
# The statuses that take a slot (crm_cases.assignment.LOADED_STATUSES), as SQL.
_LOADED = "('new', 'open', 'on_hold')"
_LOAD = (
    f"(SELECT count(*) FROM cases c WHERE c.assignee = a.id AND c.status IN {_LOADED})::int AS load"
)
_AGENT = "a.id, a.name, a.capacity, a.available, a.queues, a.created_at, a.updated_at"


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue as stored."""

    name: str
    strategy: str
    last_agent_id: str | None
    auto_assign: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AgentRow:
    """An agent as stored, with their load (cases new, open or on hold assigned to them)."""

    id: str
    name: str
    capacity: int
    available: bool
    queues: list[str]
    created_at: datetime
    updated_at: datetime
    load: int = 0


def _queue(row: asyncpg.Record) -> QueueRow:
    return QueueRow(**dict(row))


def _agent(row: asyncpg.Record) -> AgentRow:
    return AgentRow(**{**dict(row), "queues": list(row["queues"])})


async def queues(conn: asyncpg.Connection) -> list[QueueRow]:
    """Every queue, by name."""
    return [_queue(r) for r in await conn.fetch(f"SELECT {_QUEUE} FROM case_queues ORDER BY name")]


async def queue(conn: asyncpg.Connection, name: str) -> QueueRow | None:
    """One queue, or None."""
    row = await conn.fetchrow(f"SELECT {_QUEUE} FROM case_queues WHERE name = $1", name)
    return _queue(row) if row is not None else None


async def save_queue(
    conn: asyncpg.Connection, name: str, *, strategy: str, auto_assign: bool
) -> QueueRow:
    """Create or change a queue (its round-robin pointer stays)."""
    row = await conn.fetchrow(
        "INSERT INTO case_queues (name, strategy, auto_assign) VALUES ($1, $2, $3) "
        "ON CONFLICT (name) DO UPDATE SET strategy = EXCLUDED.strategy, "
        "auto_assign = EXCLUDED.auto_assign, updated_at = clock_timestamp() "
        f"RETURNING {_QUEUE}",
        name,
        strategy,
        auto_assign,
    )
    assert row is not None
    return _queue(row)


async def lock_assigning_queues(conn: asyncpg.Connection, names: Sequence[str]) -> list[QueueRow]:
    """The queues named that assign automatically, locked in name order: one transaction at
    a time hands out a queue's cases and moves its round-robin pointer."""
    rows = await conn.fetch(
        f"SELECT {_QUEUE} FROM case_queues WHERE name = ANY($1::text[]) AND auto_assign "
        "ORDER BY name FOR UPDATE",
        list(names),
    )
    return [_queue(r) for r in rows]


async def lock_queues(conn: asyncpg.Connection, names: Sequence[str]) -> list[str]:
    """Lock the queues named (those that exist), in name order, before an agent's row: the
    order every assignment takes its locks in."""
    rows = await conn.fetch(
        "SELECT name FROM case_queues WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE",
        list(names),
    )
    return [r["name"] for r in rows]


async def move_pointers(conn: asyncpg.Connection, last_agent: dict[str, str]) -> None:
    """Round robin: who got each queue's last case (one statement)."""
    if not last_agent:
        return
    await conn.execute(
        "UPDATE case_queues q SET last_agent_id = p.agent_id, updated_at = clock_timestamp() "
        "FROM unnest($1::text[], $2::text[]) AS p (name, agent_id) WHERE q.name = p.name",
        list(last_agent),
        list(last_agent.values()),
    )


async def agents(conn: asyncpg.Connection) -> list[AgentRow]:
    """Every agent with their load, by id."""
    rows = await conn.fetch(f"SELECT {_AGENT}, {_LOAD} FROM case_agents a ORDER BY a.id")
    return [_agent(r) for r in rows]


async def agent(conn: asyncpg.Connection, agent_id: str) -> AgentRow | None:
    """One agent with their load, or None."""
    row = await conn.fetchrow(
        f"SELECT {_AGENT}, {_LOAD} FROM case_agents a WHERE a.id = $1", agent_id
    )
    return _agent(row) if row is not None else None


async def save_agent(
    conn: asyncpg.Connection,
    agent_id: str,
    *,
    name: str,
    capacity: int,
    available: bool,
    queues: Sequence[str],
) -> None:
    """Create or replace an agent."""
    await conn.execute(
        "INSERT INTO case_agents (id, name, capacity, available, queues) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
        "capacity = EXCLUDED.capacity, available = EXCLUDED.available, "
        "queues = EXCLUDED.queues, updated_at = clock_timestamp()",
        agent_id,
        name,
        capacity,
        available,
        list(queues),
    )


async def update_agent(
    conn: asyncpg.Connection, agent_id: str, *, capacity: int | None, available: bool | None
) -> bool:
    """Change an agent's capacity and/or availability (None: unchanged); False if unknown."""
    status = await conn.execute(
        "UPDATE case_agents SET capacity = COALESCE($2, capacity), "
        "available = COALESCE($3, available), updated_at = clock_timestamp() WHERE id = $1",
        agent_id,
        capacity,
        available,
    )
    return str(status).split()[-1] != "0"


async def lock_agents_of(
    conn: asyncpg.Connection, queues: Sequence[str], *, not_counting: Sequence[str]
) -> list[AgentRow]:
    """The agents of these queues, locked by id, with their loads as stored, leaving out the
    cases `not_counting` (those the caller holds changed in memory counts itself): one
    statement, one GROUP BY over the agents' cases."""
    rows = await conn.fetch(
        f"SELECT {_AGENT}, COALESCE(l.load, 0)::int AS load FROM case_agents a "
        "LEFT JOIN (SELECT c.assignee, count(*) AS load FROM cases c "
        f"WHERE c.status IN {_LOADED} AND NOT (c.id = ANY($2::text[])) AND c.assignee IN "
        "(SELECT id FROM case_agents WHERE queues && $1::text[]) GROUP BY c.assignee) l "
        "ON l.assignee = a.id WHERE a.queues && $1::text[] ORDER BY a.id FOR UPDATE OF a",
        list(queues),
        list(not_counting),
    )
    return [_agent(r) for r in rows]


async def queues_of_agents(conn: asyncpg.Connection, agent_ids: Sequence[str]) -> list[str]:
    """The queues these agents take cases from."""
    rows = await conn.fetch(
        "SELECT DISTINCT unnest(queues) AS queue FROM case_agents WHERE id = ANY($1::text[])",
        list(agent_ids),
    )
    return [r["queue"] for r in rows]


async def lock_waiting_cases(
    conn: asyncpg.Connection, queues: Sequence[str], *, not_in: Sequence[str], limit: int
) -> list[Case]:
    """The oldest unassigned cases of these queues that take a slot (new, open, on hold),
    leaving out `not_in`, locked; cases another transaction holds are skipped (it is
    changing them and assigns what it touched)."""
    columns = ", ".join(case_rows.COLUMNS)
    rows = await conn.fetch(
        f"SELECT {columns} FROM cases WHERE queue = ANY($1::text[]) AND assignee IS NULL "
        f"AND status IN {_LOADED} AND NOT erased AND NOT (id = ANY($2::text[])) "
        "ORDER BY opened_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        list(queues),
        list(not_in),
        limit,
    )
    return [case_rows.case_of(r) for r in rows]


async def waiting_counts(conn: asyncpg.Connection, queues: Sequence[str]) -> dict[str, int]:
    """How many cases wait in each of these queues."""
    rows = await conn.fetch(
        "SELECT queue, count(*)::int AS n FROM cases WHERE queue = ANY($1::text[]) "
        f"AND assignee IS NULL AND status IN {_LOADED} AND NOT erased GROUP BY queue",
        list(queues),
    )
    return {r["queue"]: r["n"] for r in rows}


async def queues_to_assign(conn: asyncpg.Connection) -> list[str]:
    """Queues that assign and have a waiting case and an agent with room (one statement,
    no locks: the sweep's question, cheap while there is nothing to do)."""
    rows = await conn.fetch(
        "SELECT q.name FROM case_queues q WHERE q.auto_assign "
        "AND EXISTS (SELECT 1 FROM cases c WHERE c.queue = q.name AND c.assignee IS NULL "
        f"AND c.status IN {_LOADED} AND NOT c.erased) "
        "AND EXISTS (SELECT 1 FROM case_agents a WHERE a.available AND a.queues @> ARRAY[q.name] "
        f"AND a.capacity > {_LOAD.removesuffix(' AS load')}) ORDER BY q.name"
    )
    return [r["name"] for r in rows]
