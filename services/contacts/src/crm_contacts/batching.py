"""Planning a batch of raw interactions at once: which contact each goes to (pure; no I/O).

The planner gets the batch and what one lookup found for all of it (the erased identifiers'
tombstones, the stored link of every identifier) and decides, event by event in batch order:

- dropped: an event about an erased identity, from before the erasure (as one by one);
- an existing contact: every identifier that is linked points at that one contact;
- new person #k: no identifier is linked; later events of the batch that share an identifier
  with it go to the same new person, so that several events of one newcomer make one contact;
- one by one: anything else (an explicit contact_id, no usable identifier, identifiers of
  two contacts, a contact caught in the middle of a merge). The
  plan ends before such an event: the caller applies the run planned so far, sends that
  event through the per-event path, and plans again after it with fresh lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_contacts.domain import PRECEDENCE, Identifier, NormalisedIdentity, is_erased_replay
from crm_contracts import CloudEvent
from crm_contracts.interactions import InteractionRecorded


@dataclass(frozen=True)
class Interaction:
    """A raw interaction of the batch, decoded and normalised once."""

    event: CloudEvent
    data: InteractionRecorded
    identity: NormalisedIdentity
    digests: tuple[str, ...]  # tombstone digests of its identifiers


@dataclass(frozen=True)
class StoredLink:
    """Where a stored identifier points, and the status of that contact."""

    contact_id: str
    origin_id: str
    status: str  # active, deleted, merged or erased


@dataclass(frozen=True)
class Existing:
    """A contact already stored."""

    contact_id: str


@dataclass(frozen=True)
class Newcomer:
    """The k-th new person of a run (a contact to create)."""

    index: int


Owner = Existing | Newcomer


@dataclass(frozen=True)
class Dropped:
    """The interaction of an erased identity, from before its erasure: not recorded."""


@dataclass(frozen=True)
class Assigned:
    """The interaction goes to `owner`, through `origin`, and links the identifiers in `link`."""

    owner: Owner
    origin: Owner
    link: tuple[Identifier, ...]
    creates: bool = False  # the first interaction of a new person creates its contact


Step = Dropped | Assigned


@dataclass(frozen=True)
class RunPlan:
    """Steps for the first interactions of what was planned, up to one that goes one by one."""

    steps: tuple[Step, ...]
    newcomers: int
    released: tuple[Identifier, ...]  # stored links of deleted contacts the run takes over

    @property
    def existing_ids(self) -> list[str]:
        """The stored contacts the run writes to (to lock), in id order."""
        return sorted(
            {
                s.owner.contact_id
                for s in self.steps
                if isinstance(s, Assigned) and isinstance(s.owner, Existing)
            }
        )


def goes_one_by_one(item: Interaction) -> bool:
    """What the planner never takes, whatever the lookups say."""
    return item.identity.contact_id is not None or not item.identity.identifiers


def erased_replay(item: Interaction, erased: Mapping[str, datetime]) -> bool:
    """The interaction is about an erased identifier and older than its erasure."""
    times = [erased[d] for d in item.digests if d in erased]
    return is_erased_replay(item.event.time, max(times) if times else None)


def plan_run(
    items: Sequence[Interaction],
    erased: Mapping[str, datetime],
    links: Mapping[Identifier, StoredLink],
) -> RunPlan:
    """Plan `items` in order until the first that must go one by one (not included)."""
    linked: dict[Identifier, tuple[Owner, Owner]] = {
        identifier: (Existing(link.contact_id), Existing(link.origin_id))
        for identifier, link in links.items()
        if link.status == "active"
    }
    steps: list[Step] = []
    released: list[Identifier] = []
    newcomers = 0
    for item in items:
        if goes_one_by_one(item):
            break
        if erased_replay(item, erased):
            steps.append(Dropped())
            continue
        identifiers = item.identity.identifiers
        unlinked = [i for i in identifiers if i not in linked]
        if any(links[i].status != "deleted" for i in unlinked if i in links):
            break  # a merge or an erasure is moving this contact: one by one, which waits
        matches = [i for i in identifiers if i in linked]
        owners = {linked[i][0] for i in matches}
        if len(owners) > 1:
            break  # proves a merge, or meets contacts kept apart: one by one
        if owners:
            best = min(matches, key=lambda i: PRECEDENCE.index(i.kind))
            owner, origin = linked[best]
            step = Assigned(owner, origin, tuple(unlinked))
        else:
            owner = origin = Newcomer(newcomers)
            newcomers += 1
            step = Assigned(owner, origin, tuple(unlinked), creates=True)
        released += [i for i in unlinked if i in links]
        for identifier in unlinked:
            linked[identifier] = (owner, origin)
        steps.append(step)
    return RunPlan(tuple(steps), newcomers, tuple(released))
