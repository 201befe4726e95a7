"""Raw interactions resolved a batch at a time: a handful of statements per batch, not per event.

`crm_contacts.batching` plans which contact each interaction goes to. For each run it plans:
one lookup of every identifier, one lock of the stored contacts they point at (id order, as
every locker does), one read each of the lifecycle counts, of the accounts company traits
name and of the events already on a timeline; then the run is applied in memory in batch
order, queueing exactly the events the per-event path would (same order, same `time`, the
cause's), and written with one multi-row statement per table. An interaction the planner
leaves out goes through the per-event path (`one_by_one`) in its place in the batch, and
planning resumes after it with fresh lookups, so per-key order holds.

Two consumers creating the same person still collide on the identifiers' primary key: the
batch fails with a UniqueViolationError, the kit retries it and the retry finds the links.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from crm_contacts import batching, domain
from crm_contacts import repository as repo
from crm_contacts.batching import Assigned, Dropped, Existing, Interaction, Owner, RunPlan
from crm_contacts.domain import TimelineEntry
from crm_contacts.handlers.contacts import identity_linked, profile_model, profile_of
from crm_contacts.handlers.context import Context, Publisher, new_id
from crm_contacts.handlers.lifecycle import lifecycle_changed
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_kit import metrics
from crm_kit.logs import log_context

log = logging.getLogger(__name__)

RESOLUTIONS = metrics.counter(
    "crm_contacts_resolutions_total",
    "Raw interactions by resolution outcome: created, matched, merged, dropped_erased, "
    "dropped_deleted.",
    ["outcome"],
)

# A concurrent merge can move what a run found between its read and its lock.
_ATTEMPTS = 5

OneByOne = Callable[[CloudEvent], Awaitable[None]]


def interaction(ctx: Context, event: CloudEvent) -> Interaction:
    """A raw interaction decoded and normalised, with its identifiers' tombstone digests."""
    data = event.data_as(it.InteractionRecorded)
    identity = domain.normalise_identity(data.identity, region=ctx.settings.default_phone_region)
    digests = tuple(domain.identifier_digest(ctx.erasure_key, i) for i in identity.identifiers)
    return Interaction(event, data, identity, digests)


def interaction_resolved(
    event: CloudEvent,
    data: it.InteractionRecorded,
    contact_id: str,
    stage: ct.LifecycleStage,
    previous: ct.LifecycleStage | None,
) -> it.InteractionResolved:
    """The interaction restated, resolved to its contact, with the stage it left it in.

    Built without validating again (a third of its cost per interaction): every field is
    the validated raw interaction's, the event's own id and source, a contact id of ours or
    a stage, and `stage_changed` agrees with the stages by construction. The published
    bytes are the same (tests/unit/contacts/test_resolved_event.py).
    """
    return it.InteractionResolved.model_construct(
        interaction_id=event.id,
        interaction_source=event.source,
        contact_id=contact_id,
        channel=data.channel,
        kind=data.kind,
        value=data.value,
        csat=data.csat,
        nps=data.nps,
        consent=data.consent,
        campaign_id=data.campaign_id,
        campaign_step_id=data.campaign_step_id,
        case_id=data.case_id,
        agent_id=data.agent_id,
        properties=data.properties,
        stage=stage,
        previous_stage=previous,
        stage_changed=stage != previous,
    )


def queue_outcome(
    out: Publisher,
    ctx: Context,
    item: Interaction,
    contact_id: str,
    stage: ct.LifecycleStage,
    previous: ct.LifecycleStage | None,
    *,
    created_profile: dict[str, Any] | None,
    start: int,
) -> None:
    """Queue what an interaction's outcome publishes, on both paths: its lifecycle change,
    the resolved interaction and, for a new contact (`created_profile`), its creation."""
    event, data = item.event, item.data
    if stage != previous:
        lifecycle_changed(out, contact_id, previous, stage, event, data.kind)
    out.publish(
        ctx.settings.interactions_topic,
        it.INTERACTION_RESOLVED,
        interaction_resolved(event, data, contact_id, stage, previous),
        key=contact_id,
        cause=event,
    )
    if created_profile is not None:
        # First on the new contact's key, with the stage the interaction left it in.
        out.contact_event(
            ct.CONTACT_CREATED,
            ct.ContactCreated(
                contact_id=contact_id,
                stage=stage,
                profile=profile_model(created_profile),
                cause_event_id=event.id,
            ),
            key=contact_id,
            cause=event,
            at=start,
        )


async def resolve_batch(
    conn: asyncpg.Connection,
    events: Sequence[CloudEvent],
    ctx: Context,
    out: Publisher,
    one_by_one: OneByOne,
) -> None:
    """Resolve raw interactions in batch order: planned runs set-based, the rest one by one."""
    items = [interaction(ctx, event) for event in events]
    done = 0
    while done < len(items):
        if not batching.goes_one_by_one(items[done]):
            done += await _apply_run(conn, ctx, out, items[done:])
        if done < len(items):
            item = items[done]
            with log_context(event_id=item.event.id, correlation_id=item.event.correlationid):
                await one_by_one(item.event)
            done += 1


# -- one run ---------------------------------------------------------------------------------


@dataclass
class ContactState:
    """A contact as the run has left it so far; written once at the end of the run."""

    id: str
    stage: ct.LifecycleStage
    profile: dict[str, Any]
    traits_time: datetime | None
    account_id: str | None
    new: bool = False
    changed: bool = False

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> ContactState:
        return cls(
            id=str(row["id"]),
            stage=ct.LifecycleStage(row["stage"]),
            profile=profile_of(row),
            traits_time=row["traits_time"],
            account_id=row["account_id"],
        )

    def write(self) -> repo.ContactWrite:
        return repo.ContactWrite(
            self.id, self.stage.value, self.profile, self.traits_time, self.account_id
        )


@dataclass
class Run:
    """What a run read before applying, and what it is to write."""

    contacts: dict[Owner, ContactState]
    counts: dict[tuple[str, str], int]  # (contact id, kind): timeline entries
    recorded: set[tuple[str, str]]  # (source, event id) on a timeline already
    accounts: dict[str, str | None]  # company name: its account
    consents: dict[repo.ConsentKey, domain.ConsentStatement]  # the effective statements
    links: list[repo.NewLink] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    statements: list[repo.NewConsent] = field(default_factory=list)

    def id_of(self, owner: Owner) -> str:
        return owner.contact_id if isinstance(owner, Existing) else self.contacts[owner].id

    def account_for(self, company: Any) -> str | None:
        """The `company` trait links to an existing account of that name (as one by one)."""
        if not isinstance(company, str) or not company.strip():
            return None
        return self.accounts.get(company.strip())

    def record(self, entry: TimelineEntry) -> None:
        """Put an entry on the timeline; an event already there is skipped, as by the insert."""
        key = (entry.source, entry.event_id)
        if key in self.recorded:
            return
        self.recorded.add(key)
        self.timeline.append(entry)
        if entry.by_agent:
            return  # not the customer's activity: no lifecycle rule counts it
        counted = (entry.contact_id, entry.kind)
        self.counts[counted] = self.counts.get(counted, 0) + 1


async def _apply_run(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    items: Sequence[Interaction],
) -> int:
    """Plan, read, apply and write the run at the head of `items`; how many it took."""
    window = list(itertools.takewhile(lambda i: not batching.goes_one_by_one(i), items))
    plan, rows = await _plan_and_lock(conn, window)
    taken = list(zip(window, plan.steps, strict=False))
    run = await _read_run(conn, ctx, taken, rows)
    created = matched = 0
    for item, step in taken:
        with log_context(event_id=item.event.id, correlation_id=item.event.correlationid):
            if isinstance(step, Dropped):
                RESOLUTIONS.labels("dropped_erased").inc()
                log.info(
                    "interaction of an erased identity dropped", extra={"reason": "erased_identity"}
                )
            else:
                _apply(ctx, out, run, item, step)
                created, matched = created + step.creates, matched + (not step.creates)
    # Counted once a run rather than once an interaction (a label lookup each).
    for outcome, n in (("created", created), ("matched", matched)):
        if n:
            RESOLUTIONS.labels(outcome).inc(n)
    await repo.insert_contacts(conn, [c.write() for c in run.contacts.values() if c.new])
    await repo.update_contacts(
        conn, [c.write() for c in run.contacts.values() if c.changed and not c.new]
    )
    await repo.insert_links(conn, run.links)
    await repo.insert_timeline(conn, run.timeline)
    await repo.insert_consents(conn, run.statements)
    return len(plan.steps)


async def _plan_and_lock(
    conn: asyncpg.Connection, window: Sequence[Interaction]
) -> tuple[RunPlan, list[dict[str, Any]]]:
    """Plan on one read of every tombstone and identifier, lock the contacts found; again
    if one moved meanwhile (merged, deleted or erased by a concurrent transaction)."""
    identifiers = [i for item in window for i in item.identity.identifiers]
    digests = [d for item in window for d in item.digests]
    for _ in range(_ATTEMPTS):
        erased = await repo.erased_digests(conn, digests)
        plan = batching.plan_run(window, erased, await repo.links_of(conn, identifiers))
        # Identifiers of a deleted contact are free for whoever comes next.
        await repo.release_identifiers(conn, plan.released)
        wanted = plan.existing_ids
        rows = await repo.lock_contacts(conn, wanted) if wanted else []
        if len(rows) == len(wanted) and all(r["status"] == "active" for r in rows):
            return plan, rows
    raise asyncpg.SerializationError("contacts kept moving while resolving interactions")


async def _read_run(
    conn: asyncpg.Connection,
    ctx: Context,
    taken: Sequence[tuple[Interaction, batching.Step]],
    rows: Sequence[dict[str, Any]],
) -> Run:
    """The state the run applies to: locked contacts, lifecycle counts, accounts, timeline."""
    applied = [item for item, step in taken if isinstance(step, Assigned)]
    contacts: dict[Owner, ContactState] = {
        Existing(str(r["id"])): ContactState.of_row(r) for r in rows
    }
    kinds = {
        k
        for item in applied
        if not domain.by_agent(item.data)
        for k in ctx.lifecycle.counted_kinds(item.data.kind)
    }
    counts = await repo.count_kinds_of(conn, [str(r["id"]) for r in rows], sorted(kinds))
    recorded = await repo.recorded_events(conn, [(i.event.source, i.event.id) for i in applied])
    names = _company_names(applied, contacts.values())
    accounts = await repo.accounts_named(conn, names) if names else {}
    asked = [
        _consent_key(step.owner.contact_id, item.data.consent)
        for item, step in taken
        if isinstance(step, Assigned)
        and isinstance(step.owner, Existing)
        and item.data.consent is not None
    ]
    consents = await repo.latest_consents(conn, asked)
    return Run(contacts, counts, recorded, accounts, consents)


def _consent_key(contact_id: str, consent: it.Consent) -> repo.ConsentKey:
    channel = None if consent.channel is None else str(consent.channel)
    return (contact_id, channel, str(consent.purpose))


def _company_names(applied: Iterable[Interaction], contacts: Iterable[ContactState]) -> list[str]:
    """Every company a profile can name during the run: in traits, or on a contact with no
    account yet."""
    companies = [item.data.traits.company for item in applied if item.data.traits is not None] + [
        c.profile.get("company") for c in contacts if c.account_id is None
    ]
    return sorted({c.strip() for c in companies if isinstance(c, str) and c.strip()})


def _apply(ctx: Context, out: Publisher, run: Run, item: Interaction, step: Assigned) -> None:
    """One interaction in memory: what `record_interaction` does, without a merge."""
    event, data = item.event, item.data
    start = len(out.messages)
    if step.creates:
        contact = run.contacts[step.owner] = _new_contact(ctx, run, item)
        previous: ct.LifecycleStage | None = None
    else:
        contact = run.contacts[step.owner]
        previous = contact.stage
    origin_id = run.id_of(step.origin)
    for identifier in step.link:
        run.links.append(repo.NewLink(identifier, contact.id, origin_id, event.id))
        out.contact_event(
            ct.CONTACT_IDENTITY_LINKED,
            identity_linked(contact.id, identifier, event.id),
            key=contact.id,
            cause=event,
        )
    run.record(domain.timeline_entry(event, contact_id=contact.id, origin_id=origin_id))
    if not step.creates and data.traits is not None:
        _apply_traits(out, run, contact, data.traits, event)
    if data.consent is not None:
        _record_consent(out, run, contact.id, origin_id, item)
    stage = _stage_after(ctx, run, contact, data)
    profile = contact.profile if step.creates else None
    queue_outcome(out, ctx, item, contact.id, stage, previous, created_profile=profile, start=start)


def _new_contact(ctx: Context, run: Run, item: Interaction) -> ContactState:
    traits = item.data.traits.model_dump(exclude_none=True) if item.data.traits else {}
    profile, _ = domain.apply_traits({"custom": {}}, traits)
    return ContactState(
        id=new_id("c"),
        stage=ctx.lifecycle.initial_stage,
        profile=profile_of(profile),
        traits_time=item.event.time if traits else None,
        account_id=run.account_for(profile.get("company")),
        new=True,
    )


def _apply_traits(
    out: Publisher, run: Run, contact: ContactState, traits: it.Traits, event: CloudEvent
) -> None:
    if contact.traits_time is not None and event.time < contact.traits_time:
        return  # a late event does not overwrite what a newer one said
    profile, changed = domain.apply_traits(contact.profile, traits.model_dump(exclude_none=True))
    if contact.account_id is None:
        account = run.account_for(profile.get("company"))
        if account is not None:
            contact.account_id = account
            changed.append("account_id")
    contact.profile, contact.traits_time, contact.changed = profile, event.time, True
    if changed:
        out.contact_event(
            ct.CONTACT_UPDATED,
            ct.ContactUpdated(
                contact_id=contact.id, profile=profile_model(profile), changed_fields=changed
            ),
            key=contact.id,
            cause=event,
        )


def _record_consent(
    out: Publisher, run: Run, contact_id: str, origin_id: str, item: Interaction
) -> None:
    """What `record_consent` does for an interaction's statement, in memory."""
    event, data = item.event, item.data
    assert data.consent is not None
    granted = (
        data.consent.granted
        if data.consent.granted is not None
        else data.kind == it.InteractionKind.CONSENT_GIVEN
    )
    key = _consent_key(contact_id, data.consent)
    statement = domain.ConsentStatement(granted, event.time)
    latest = run.consents.get(key)
    run.statements.append(
        repo.NewConsent(
            contact_id, origin_id, key[1], key[2], granted, event.source, event.id, event.time
        )
    )
    if latest is None or event.time >= latest.time:
        run.consents[key] = statement  # the latest by time; a tie goes to the newer row
    if domain.consent_changes(latest, statement):
        out.contact_event(
            ct.CONTACT_CONSENT_CHANGED,
            ct.ContactConsentChanged(
                contact_id=contact_id,
                channel=data.consent.channel,
                purpose=data.consent.purpose,
                granted=granted,
                source=event.source,
                cause_event_id=event.id,
            ),
            key=contact_id,
            cause=event,
            time=event.time,  # the statement's: the effective consent is the latest by this time
        )


def _stage_after(
    ctx: Context, run: Run, contact: ContactState, data: it.InteractionRecorded
) -> ct.LifecycleStage:
    agent = domain.by_agent(data)
    counted = () if agent else ctx.lifecycle.counted_kinds(data.kind)
    counts = {k: run.counts.get((contact.id, k), 0) for k in counted}
    stage = domain.stage_after(ctx.lifecycle, contact.stage, data.kind, counts, agent=agent)
    if stage != contact.stage:
        contact.stage, contact.changed = stage, True
    return stage
