"""Lifecycle stages: the event of a change, and a stage set by hand."""

from __future__ import annotations

import asyncpg

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.domain import TimelineEntry
from crm_contacts.handlers.context import Context, Publisher
from crm_contacts.handlers.lookups import (
    ContactDetails,
    active_contact,
    contact_details,
    contact_or_fail,
)
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct


def lifecycle_changed(
    out: Publisher,
    contact_id: str,
    before: ct.LifecycleStage | None,
    after: ct.LifecycleStage,
    cause: CloudEvent | None,
    cause_kind: str,
) -> None:
    """Queue contact.lifecycle_changed (`before` None: a new contact)."""
    out.contact_event(
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.ContactLifecycleChanged(
            contact_id=contact_id,
            from_stage=before,
            to_stage=after,
            cause_event_id=None if cause is None else cause.id,
            cause_kind=cause_kind,
        ),
        key=contact_id,
        cause=cause,
    )


async def set_stage(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    stage: ct.LifecycleStage,
    reason: str | None,
    actor: str,
    correlation_id: str,
) -> ContactDetails:
    """An agent sets the stage (any stage, backwards too); the reason goes on the timeline."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    before = ct.LifecycleStage(contact["stage"])
    if stage == before:
        return await contact_details(conn, contact, asked=contact_id)
    await repo.update_stage(conn, target, stage.value)
    out = Publisher(ctx, correlation_id=correlation_id)
    event = out.contact_event(
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.ContactLifecycleChanged(
            contact_id=target, from_stage=before, to_stage=stage, cause_kind="manual"
        ),
        key=target,
    )
    entry = domain.timeline_entry(event, contact_id=target, origin_id=target)
    entry_data = {**entry.data, "reason": reason, "actor": actor}
    await repo.insert_timeline(
        conn,
        [
            TimelineEntry(
                contact_id=entry.contact_id,
                origin_id=entry.origin_id,
                event_id=entry.event_id,
                source=entry.source,
                type=entry.type,
                kind=entry.kind,
                channel=None,
                time=entry.time,
                data={k: v for k, v in entry_data.items() if v is not None},
            )
        ],
    )
    await out.flush(conn)
    return await contact_details(conn, await contact_or_fail(conn, target), asked=contact_id)
