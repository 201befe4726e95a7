"""Contact and privacy events, through the kit's subject protocol (crm_kit.subjects).

A merge folds the merged contacts into the survivor: their views into its view, their
enrolments into its own (one already in a campaign the survivor is in exits, `merged`; the
send ledger is per enrolment, so nothing is sent twice), their sends count against its caps.
An unmerge gives the restored contact its enrolments back. An erasure removes what campaigns
holds of the person (the view: traits, consent, behaviour; memberships; events not yet
sent), exits its enrolments (`erased`) and keeps the counts, which hold no personal data;
a request is answered with `privacy.erasure_completed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crm_campaigns import projection
from crm_campaigns.handlers.context import Context, Publisher
from crm_campaigns.handlers.journeys import Journeys
from crm_campaigns.repository import attribution as attribution_rows
from crm_campaigns.repository import enrolments as enrolment_rows
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository import sends as send_rows
from crm_campaigns.repository import views as view_rows
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cp
from crm_contracts import contacts as ct
from crm_contracts import privacy as pv
from crm_kit import outbox, subjects

SERVICE = "campaigns"
CONTACT_TYPES = (ct.CONTACT_MERGED, ct.CONTACT_UNMERGED, ct.CONTACT_ERASED)


async def record_contact_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Merges, unmerges and erasures, in order."""
    for event in events:
        if event.type == ct.CONTACT_MERGED:
            merged = event.data_as(ct.ContactMerged)
            await _merge(conn, ctx, event, list(merged.merged_ids), merged.survivor_id)
        elif event.type == ct.CONTACT_UNMERGED:
            unmerged = event.data_as(ct.ContactUnmerged)
            await _unmerge(conn, ctx, unmerged.contact_id, unmerged.survivor_id)
        elif event.type == ct.CONTACT_ERASED:
            await _erase(conn, ctx, event, event.data_as(ct.ContactErased).contact_id)


async def record_privacy_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """An erasure request: erase, then answer it."""
    out = Publisher(ctx)
    for event in events:
        if event.type != pv.PRIVACY_ERASURE_REQUESTED:
            continue
        request = event.data_as(pv.ErasureRequested)
        erased = await _erase(conn, ctx, event, request.contact_id)
        out.add(
            subjects.erasure_completed(
                event,
                request,
                service=SERVICE,
                source=ctx.settings.source,
                topic=ctx.settings.privacy_topic,
                records_erased=erased,
            )
        )
    await out.flush(conn)


async def _merge(
    conn: asyncpg.Connection,
    ctx: Context,
    event: CloudEvent,
    merged_ids: list[str],
    survivor_id: str,
) -> None:
    out = Publisher(ctx)
    work = await Journeys.load(conn, ctx, out, [survivor_id, *merged_ids])
    survivor = work.view(survivor_id)
    for merged_id in merged_ids:
        view = work.known(merged_id)
        if view is not None:
            projection.fold(survivor, view)
        for enrolment in work.enrolments_of(merged_id):
            taken = [
                e for e in work.active_of(survivor_id) if e.campaign_id == enrolment.campaign_id
            ]
            if enrolment.active and taken:
                work.exit(enrolment, cp.ExitReason.MERGED, at=event.time, cause=event)
                enrolment = work.enrolments[enrolment.id]
            work.change(enrolment, contact_id=survivor_id)
    work.touch(survivor_id, at=event.time, cause=event)
    work.settle()
    await work.flush(conn)
    await view_rows.delete_views(conn, merged_ids)
    await segment_rows.forget_contacts(conn, merged_ids)
    await send_rows.move_sends(conn, merged_ids, survivor_id)
    await attribution_rows.move_touches(conn, merged_ids, survivor_id)
    await subjects.remember_merge(conn, merged_ids, survivor_id)


async def _unmerge(
    conn: asyncpg.Connection, ctx: Context, restored_id: str, survivor_id: str
) -> None:
    await enrolment_rows.restore_enrolments(conn, restored_id, survivor_id)
    await subjects.forget_merge(conn, restored_id)


async def _erase(conn: asyncpg.Connection, ctx: Context, event: CloudEvent, contact_id: str) -> int:
    ids = [contact_id, *await subjects.merged_into(conn, contact_id)]
    out = Publisher(ctx)
    work = await Journeys.load(conn, ctx, out, ids)
    for id in ids:
        for enrolment in work.active_of(id):
            work.exit(enrolment, cp.ExitReason.ERASED, at=event.time, cause=event)
    await outbox.forget(conn, ids)  # events about them not yet sent (views, traits)
    await work.flush(conn)  # their exits are announced: opaque ids only
    erased = await view_rows.delete_views(conn, ids)
    await segment_rows.forget_contacts(conn, ids)
    await subjects.remember_erased(conn, ids)
    return erased
