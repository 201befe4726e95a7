"""Who gets a case, pure: a queue hands its waiting cases, oldest first, to its agents who
are available and below their capacity, by the queue's strategy. No I/O; the handlers load
queues, agents with their loads and the waiting cases, ask `plan` and write what it decides.

- round robin: the next agent with room after the one who got the queue's last case (by
  id, wrapping around);
- least busy: the agent with the fewest cases that count, ties to the lower id.

An agent's load is their cases that are new, open or on hold: a pending case waits on the
customer and takes no slot, a resolved or closed one is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from crm_contracts.cases import CaseStatus

# The statuses that take one of an agent's slots; an unassigned case in one of them waits.
LOADED_STATUSES = frozenset({CaseStatus.NEW, CaseStatus.OPEN, CaseStatus.ON_HOLD})


class Strategy(StrEnum):
    """How a queue chooses among its agents with room."""

    ROUND_ROBIN = "round_robin"
    LEAST_BUSY = "least_busy"


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as assignment sees them: room is capacity less load, while available."""

    id: str
    available: bool
    capacity: int
    load: int
    queues: frozenset[str] = frozenset()

    @property
    def has_room(self) -> bool:
        return self.available and self.load < self.capacity


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue that assigns: its strategy and, for round robin, who got its last case."""

    name: str
    strategy: Strategy
    last_agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """An unassigned case that counts: its queue and when it was opened (oldest first)."""

    case_id: str
    queue: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write: each case's agent, in order, and each round-robin queue's new pointer."""

    assignments: list[tuple[str, str]] = field(default_factory=list)
    last_agent: dict[str, str] = field(default_factory=dict)


def counts(status: CaseStatus) -> bool:
    """Whether a case in this status takes a slot of its assignee (and waits unassigned)."""
    return status in LOADED_STATUSES


def choose_agent(
    strategy: Strategy, agents: Iterable[Agent], *, last_agent_id: str | None = None
) -> Agent | None:
    """The agent who gets a queue's next case, or None when nobody has room."""
    eligible = sorted((a for a in agents if a.has_room), key=lambda a: a.id)
    if not eligible:
        return None
    if strategy == Strategy.LEAST_BUSY:
        return min(eligible, key=lambda a: (a.load, a.id))
    if last_agent_id is not None:
        for agent in eligible:
            if agent.id > last_agent_id:
                return agent
    return eligible[0]


def plan(queues: Mapping[str, Queue], agents: Sequence[Agent], waiting: Iterable[Waiting]) -> Plan:
    """Hand waiting cases, oldest first across the queues, to the agents of their queue with
    room; each assignment takes a slot before the next is chosen. A case of a queue that
    does not assign, or with nobody who has room, keeps waiting."""
    by_id = {a.id: a for a in agents}
    pointers = {name: q.last_agent_id for name, q in queues.items()}
    out = Plan()
    for case in sorted(waiting, key=lambda w: (w.opened_at, w.case_id)):
        queue = queues.get(case.queue)
        if queue is None:
            continue
        members = [a for a in by_id.values() if case.queue in a.queues]
        chosen = choose_agent(queue.strategy, members, last_agent_id=pointers[queue.name])
        if chosen is None:
            continue
        by_id[chosen.id] = replace(chosen, load=chosen.load + 1)
        pointers[queue.name] = chosen.id
        out.assignments.append((case.case_id, chosen.id))
        if queue.strategy == Strategy.ROUND_ROBIN:
            out.last_agent[queue.name] = chosen.id
    return out
