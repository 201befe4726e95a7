"""Identity resolution of raw interactions, and merges: automatic, by hand, and undone."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.batching import Interaction
from crm_contacts.domain import KnownContact, Match
from crm_contacts.handlers.accounts import account_for_company
from crm_contacts.handlers.batch import (
    RESOLUTIONS,
    interaction,
    queue_outcome,
    resolve_batch,
)
from crm_contacts.handlers.consent import record_consent
from crm_contacts.handlers.contacts import identity_linked, profile_model, profile_of
from crm_contacts.handlers.context import Context, Publisher, new_id
from crm_contacts.handlers.lifecycle import lifecycle_changed
from crm_contacts.handlers.lookups import (
    ContactDetails,
    active_contact,
    contact_details,
    contact_or_fail,
)
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_kit import metrics
from crm_kit.consumer import PermanentEventError
from crm_kit.problems import ProblemError

log = logging.getLogger(__name__)

MERGES = metrics.counter(
    "crm_contacts_merges_total", "Contacts merged into another, by how.", ["how"]
)

# A concurrent merge can move what a resolution found between its read and its lock.
_RESOLUTION_ATTEMPTS = 5


# -- raw interactions -----------------------------------------------------------------------


async def resolve_interactions(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Resolve a batch of raw interactions to contacts, in order; one outbox write.

    Most of a batch is resolved set-based (`handlers.batch`); an interaction that names its
    contact or proves a merge goes through `record_interaction`, in its turn.
    """
    out = Publisher(ctx)

    async def one_by_one(event: CloudEvent) -> None:
        await record_interaction(conn, event, ctx, out)

    await resolve_batch(conn, events, ctx, out, one_by_one)
    await out.flush(conn)


async def record_interaction(
    conn: asyncpg.Connection, event: CloudEvent, ctx: Context, out: Publisher
) -> None:
    """Find or create the contact of one interaction, merge what it proves, record it."""
    item = interaction(ctx, event)
    admitted, explicit = await _admitted(conn, item)
    if not admitted:
        return
    start = len(out.messages)
    matches, locked = await _lock_matches(conn, item.identity, explicit)
    exclusions = await repo.exclusions_among(conn, sorted(locked))
    resolution = domain.resolve(item.identity.identifiers, matches, ctx.merge_rules, exclusions)
    if resolution.target_id is None:
        contact = await _create_from_interaction(conn, ctx, event, item.data)
        target = _Target(str(contact["id"]), str(contact["id"]), contact, None, created=True)
    else:
        target = await _matched_target(conn, ctx, out, event, resolution, locked)
    if resolution.left_apart:
        log.info(
            "identifiers of other contacts left where they are",
            extra={"contact_id": target.id, "left_apart": list(resolution.left_apart)},
        )
    await _record(conn, ctx, out, item, target, resolution.link)
    await _publish_outcome(conn, ctx, out, item, target, start)


@dataclass
class _Target:
    """The contact one interaction goes to, as the per-event path found (or made) it."""

    id: str
    origin_id: str
    contact: dict[str, Any]
    previous_stage: ct.LifecycleStage | None
    created: bool = False


async def _admitted(
    conn: asyncpg.Connection, item: Interaction
) -> tuple[bool, dict[str, Any] | None]:
    """Whether the interaction is recorded at all, and the active contact it names."""
    event, identity = item.event, item.identity
    if domain.is_erased_replay(event.time, await repo.erased_at(conn, list(item.digests))):
        RESOLUTIONS.labels("dropped_erased").inc()
        log.info("interaction of an erased identity dropped", extra={"reason": "erased_identity"})
        return False, None
    explicit: dict[str, Any] | None = None
    if identity.contact_id is not None:
        explicit = await repo.survivor_of(conn, identity.contact_id)
        if explicit is not None and explicit["status"] == "erased":
            RESOLUTIONS.labels("dropped_erased").inc()
            log.info("interaction of an erased contact dropped", extra={"reason": "erased"})
            return False, None
        if explicit is not None and explicit["status"] == "deleted":
            explicit = None
            if not identity.identifiers:
                RESOLUTIONS.labels("dropped_deleted").inc()
                log.info("interaction of a deleted contact dropped")
                return False, None
        if explicit is None and not identity.identifiers:
            raise PermanentEventError(
                "the contact_id is unknown and there is no other identifier",
                reason="unknown_contact",
            )
    if explicit is None and not identity.identifiers:
        raise PermanentEventError(
            "no usable identifier (invalid email or phone number)", reason="invalid_identity"
        )
    return True, explicit


async def _matched_target(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    event: CloudEvent,
    resolution: domain.Resolution,
    locked: dict[str, dict[str, Any]],
) -> _Target:
    """The matched contact, after folding in the contacts the interaction proves it to be."""
    assert resolution.target_id is not None
    target_id = resolution.target_id
    contact = locked[target_id]
    previous = ct.LifecycleStage(contact["stage"])
    if resolution.survivor_id is None:
        RESOLUTIONS.labels("matched").inc()
    else:
        survivor = locked[resolution.survivor_id]
        before, after = await merge_contacts(
            conn,
            ctx,
            out,
            survivor=survivor,
            merged=[locked[m] for m in resolution.merged_ids],
            matched_on=resolution.matched_on,
            cause=event,
            actor=None,
        )
        RESOLUTIONS.labels("merged").inc()
        if resolution.survivor_id == target_id:
            contact = {**survivor, "stage": after.value}
        elif before != after:
            lifecycle_changed(out, resolution.survivor_id, before, after, event, "merge")
    return _Target(target_id, resolution.origin_id or target_id, contact, previous)


async def _record(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    item: Interaction,
    target: _Target,
    link: Sequence[domain.Identifier],
) -> None:
    """Link the new identifiers, put the interaction on the timeline, apply traits, consent."""
    event, data = item.event, item.data
    await repo.insert_identifiers(
        conn,
        contact_id=target.id,
        origin_id=target.origin_id,
        identifiers=link,
        cause_event_id=event.id,
    )
    for identifier in link:
        out.contact_event(
            ct.CONTACT_IDENTITY_LINKED,
            identity_linked(target.id, identifier, event.id),
            key=target.id,
            cause=event,
        )
    await repo.insert_timeline(
        conn, [domain.timeline_entry(event, contact_id=target.id, origin_id=target.origin_id)]
    )
    if not target.created and data.traits is not None:
        await _apply_traits(conn, ctx, out, target.contact, data.traits, event)
    if data.consent is not None:
        granted = (
            data.consent.granted
            if data.consent.granted is not None
            else data.kind == it.InteractionKind.CONSENT_GIVEN
        )
        await record_consent(
            conn,
            out,
            contact_id=target.id,
            origin_id=target.origin_id,
            channel=data.consent.channel,
            purpose=data.consent.purpose,
            granted=granted,
            source=event.source,
            actor=None,
            note=None,
            time=event.time,
            cause=event,
        )


async def _publish_outcome(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    item: Interaction,
    target: _Target,
    start: int,
) -> None:
    """Move the stage the interaction moves; queue its lifecycle, resolved and created events."""
    data = item.data
    current = ct.LifecycleStage(target.contact["stage"])
    agent = domain.by_agent(data)
    counted = () if agent else ctx.lifecycle.counted_kinds(data.kind)
    counts = await repo.count_kinds(conn, target.id, sorted(counted))  # none asked: no query
    stage = domain.stage_after(ctx.lifecycle, current, data.kind, counts, agent=agent)
    if stage != current:
        await repo.update_stage(conn, target.id, stage.value)
    if target.created:
        RESOLUTIONS.labels("created").inc()
    profile = profile_of(target.contact) if target.created else None
    queue_outcome(
        out,
        ctx,
        item,
        target.id,
        stage,
        target.previous_stage,
        created_profile=profile,
        start=start,
    )


async def _lock_matches(
    conn: asyncpg.Connection,
    identity: domain.NormalisedIdentity,
    explicit: dict[str, Any] | None,
) -> tuple[list[Match], dict[str, dict[str, Any]]]:
    """Read the identifiers' contacts and lock them; again if a merge moved them meanwhile."""
    for _ in range(_RESOLUTION_ATTEMPTS):
        links = await repo.find_identifiers(conn, identity.identifiers)
        released = [link.identifier for link in links if link.contact_status == "deleted"]
        if released:
            # Identifiers of a deleted contact are free for whoever comes next.
            await repo.release_identifiers(conn, released)
        if any(link.contact_status not in ("active", "deleted") for link in links):
            continue  # a merge or an erasure committed between two reads: read again
        matches = [
            Match(link.identifier, link.contact, link.origin_id)
            for link in links
            if link.contact_status == "active"
        ]
        if explicit is not None:
            assert identity.contact_id is not None
            matches.append(
                Match(
                    None,
                    KnownContact(str(explicit["id"]), explicit["created_at"]),
                    identity.contact_id,
                )
            )
        wanted = {m.contact.id for m in matches}
        rows = await repo.lock_contacts(conn, sorted(wanted))
        locked = {str(r["id"]): r for r in rows}
        if set(locked) == wanted and all(r["status"] == "active" for r in rows):
            return matches, locked
        if explicit is not None:
            explicit = await repo.survivor_of(conn, str(explicit["id"]))
            if explicit is not None and explicit["status"] != "active":
                explicit = None
    raise asyncpg.SerializationError("contacts kept moving while resolving an interaction")


async def _create_from_interaction(
    conn: asyncpg.Connection, ctx: Context, event: CloudEvent, data: it.InteractionRecorded
) -> dict[str, Any]:
    traits = data.traits.model_dump(exclude_none=True) if data.traits else {}
    profile, _ = domain.apply_traits({"custom": {}}, traits)
    account = await account_for_company(conn, profile.get("company"))
    return await repo.insert_contact(
        conn,
        contact_id=new_id("c"),
        stage=ctx.lifecycle.initial_stage.value,
        profile=profile,
        traits_time=event.time if traits else None,
        account_id=None if account is None else str(account["id"]),
    )


async def _apply_traits(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    contact: dict[str, Any],
    traits: it.Traits,
    event: CloudEvent,
) -> None:
    traits_time = contact.get("traits_time")
    if traits_time is not None and event.time < traits_time:
        return  # a late event does not overwrite what a newer one said
    contact_id = str(contact["id"])
    profile, changed = domain.apply_traits(
        profile_of(contact), traits.model_dump(exclude_none=True)
    )
    if contact.get("account_id") is None:
        account = await account_for_company(conn, profile.get("company"))
        if account is not None:
            await repo.set_account(conn, contact_id, str(account["id"]))
            changed.append("account_id")
    await repo.update_profile(conn, contact_id, profile, traits_time=event.time)
    if changed:
        out.contact_event(
            ct.CONTACT_UPDATED,
            ct.ContactUpdated(
                contact_id=contact_id, profile=profile_model(profile), changed_fields=changed
            ),
            key=contact_id,
            cause=event,
        )


# -- merges --------------------------------------------------------------------------------


async def merge_contacts(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    *,
    survivor: dict[str, Any],
    merged: Sequence[dict[str, Any]],
    matched_on: ct.IdentityType | None,
    cause: CloudEvent | None,
    actor: str | None,
) -> tuple[ct.LifecycleStage, ct.LifecycleStage]:
    """Fold locked contacts into a locked survivor; returns its stage before and after."""
    survivor_id = str(survivor["id"])
    merged_ids = [str(m["id"]) for m in merged]
    profile = profile_of(survivor)
    changed: list[str] = []
    for other in sorted(merged, key=lambda m: (m["created_at"], m["id"])):
        profile, filled = domain.fill_gaps(profile, profile_of(other))
        changed += [f for f in filled if f not in changed]
    account_id = survivor.get("account_id") or next(
        (m["account_id"] for m in merged if m.get("account_id")), None
    )
    before = ct.LifecycleStage(survivor["stage"])
    after = domain.furthest(before, *(ct.LifecycleStage(m["stage"]) for m in merged)) or before
    await repo.merge_contacts(
        conn,
        survivor_id=survivor_id,
        merged_ids=merged_ids,
        matched_on=None if matched_on is None else matched_on.value,
        cause_event_id=None if cause is None else cause.id,
        actor=actor,
    )
    if changed:
        await repo.update_profile(conn, survivor_id, profile)
    if account_id != survivor.get("account_id"):
        await repo.set_account(conn, survivor_id, account_id)
        changed.append("account_id")
    if after != before:
        await repo.update_stage(conn, survivor_id, after.value)
    survivor.update(profile)
    survivor["account_id"] = account_id
    MERGES.labels("auto" if actor is None else "manual").inc(len(merged_ids))
    log.info(
        "contacts merged",
        extra={"survivor_id": survivor_id, "merged_ids": merged_ids},
    )
    out.contact_event(
        ct.CONTACT_MERGED,
        ct.ContactMerged(
            survivor_id=survivor_id,
            merged_ids=merged_ids,
            matched_on=matched_on,
            cause_event_id=None if cause is None else cause.id,
        ),
        key=survivor_id,
        cause=cause,
    )
    if changed:
        out.contact_event(
            ct.CONTACT_UPDATED,
            ct.ContactUpdated(
                contact_id=survivor_id, profile=profile_model(profile), changed_fields=changed
            ),
            key=survivor_id,
            cause=cause,
        )
    return before, after


async def merge_by_hand(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    survivor_id: str,
    merged_ids: Sequence[str],
    actor: str,
    correlation_id: str,
) -> ContactDetails:
    """An agent merges contacts into the one they chose as survivor."""
    survivor = await active_contact(conn, survivor_id)
    if survivor["id"] != survivor_id:
        raise ProblemError(409, detail="The survivor was itself merged.", slug="contact-merged")
    ids = sorted({survivor_id, *merged_ids})
    if len(ids) < 2:
        raise ProblemError(422, detail="Name at least one other contact to merge.")
    rows = {str(r["id"]): r for r in await repo.lock_contacts(conn, ids)}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ProblemError(404, detail=f"Unknown contact(s): {', '.join(missing)}.")
    inactive = [i for i in ids if rows[i]["status"] != "active"]
    if inactive:
        raise ProblemError(
            409,
            detail=f"Not active (merged, deleted or erased): {', '.join(inactive)}.",
            slug="contact-not-active",
        )
    out = Publisher(ctx, correlation_id=correlation_id)
    before, after = await merge_contacts(
        conn,
        ctx,
        out,
        survivor=rows[survivor_id],
        merged=[rows[i] for i in ids if i != survivor_id],
        matched_on=None,
        cause=None,
        actor=actor,
    )
    if before != after:
        lifecycle_changed(out, survivor_id, before, after, None, "merge")
    await out.flush(conn)
    return await contact_details(conn, await contact_or_fail(conn, survivor_id))


async def unmerge(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    survivor_id: str,
    merged_id: str,
    reason: str | None,
    actor: str,
    correlation_id: str,
) -> tuple[ContactDetails, ContactDetails]:
    """Split a wrongly merged contact back off its survivor: its rows go back to it."""
    rows = {str(r["id"]): r for r in await repo.lock_contacts(conn, [survivor_id, merged_id])}
    survivor, merged = rows.get(survivor_id), rows.get(merged_id)
    if survivor is None or survivor["status"] != "active":
        raise ProblemError(404, detail="No active contact with this id.")
    if merged is None or merged["status"] != "merged":
        raise ProblemError(
            409, detail="That contact is not merged into this one.", slug="not-merged"
        )
    end = await repo.survivor_of(conn, merged_id)
    if end is None or end["id"] != survivor_id:
        raise ProblemError(
            409, detail="That contact is not merged into this one.", slug="not-merged"
        )
    await repo.unmerge_contact(conn, survivor_id=survivor_id, merged_id=merged_id, reason=reason)
    out = Publisher(ctx, correlation_id=correlation_id)
    out.contact_event(
        ct.CONTACT_UNMERGED,
        ct.ContactUnmerged(contact_id=merged_id, survivor_id=survivor_id, reason=reason),
        key=merged_id,
    )
    await out.flush(conn)
    MERGES.labels("undone").inc()
    log.info("contact unmerged", extra={"survivor_id": survivor_id, "contact_id": merged_id})
    survivor, restored = (
        await contact_or_fail(conn, survivor_id),
        await contact_or_fail(conn, merged_id),
    )
    return await contact_details(conn, survivor), await contact_details(conn, restored)
