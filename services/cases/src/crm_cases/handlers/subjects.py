"""Contact and privacy events, through the kit's subject protocol (crm_kit.subjects): a
merge moves the merged contacts' cases to the survivor; an unmerge gives a restored contact
its own cases back; an erasure removes every word of a contact's cases (subject,
description, what was said on them, the answers kept for repeated creates) and keeps their
statistics; a request is answered with `privacy.erasure_completed`."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crm_cases.handlers.context import Context, Publisher
from crm_cases.repository import cases as case_rows
from crm_cases.repository import scores as score_rows
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct
from crm_contracts import privacy as pv
from crm_kit import idempotency, outbox, subjects

SERVICE = "cases"
# The contact events that change what cases holds; the rest are `ignored` by the consumer.
CONTACT_TYPES = (ct.CONTACT_MERGED, ct.CONTACT_UNMERGED, ct.CONTACT_ERASED)


async def record_contact_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Merges, unmerges and erasures, in order; other contact events mean nothing here."""
    for event in events:
        if event.type == ct.CONTACT_MERGED:
            merged = event.data_as(ct.ContactMerged)
            merged_ids = list(merged.merged_ids)
            await case_rows.move_cases(conn, merged_ids, merged.survivor_id)
            await score_rows.forget_standings(conn, merged_ids)
            await subjects.remember_merge(conn, merged_ids, merged.survivor_id)
        elif event.type == ct.CONTACT_UNMERGED:
            unmerged = event.data_as(ct.ContactUnmerged)
            await case_rows.restore_cases(conn, unmerged.contact_id, unmerged.survivor_id)
            await subjects.forget_merge(conn, unmerged.contact_id)
        elif event.type == ct.CONTACT_ERASED:
            await _erase(conn, event.data_as(ct.ContactErased).contact_id)


async def record_privacy_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """An erasure request: erase, then answer it. A completion (ours or another service's)
    means nothing here."""
    out = Publisher(ctx)
    for event in events:
        if event.type != pv.PRIVACY_ERASURE_REQUESTED:
            continue
        request = event.data_as(pv.ErasureRequested)
        erased = await _erase(conn, request.contact_id)
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


async def _erase(conn: asyncpg.Connection, contact_id: str) -> int:
    ids = [contact_id, *await subjects.merged_into(conn, contact_id)]
    erased = await case_rows.erase_cases(conn, ids)
    await score_rows.forget_standings(conn, ids)
    await idempotency.forget(conn, ids)  # the answers kept for repeats hold what was said
    await outbox.forget(conn, ids)  # so do events about them not yet sent
    await subjects.remember_erased(conn, ids)
    return erased
