"""Privacy: erasure (asked here or by another system), completions, and the export of
everything held about a person."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.domain import Identifier
from crm_contacts.handlers.context import Context, Publisher, new_id
from crm_contacts.handlers.lookups import ContactDetails, contact_details
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct
from crm_contracts import privacy as pv
from crm_kit import metrics, subjects
from crm_kit.errors import NotFound

log = logging.getLogger(__name__)

ERASURES = metrics.counter("crm_contacts_erasures_total", "Contacts erased.")

SERVICE = "contacts"
EXPORT_TIMELINE_LIMIT = 100_000


async def record_privacy_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Completions feed the erasure status; requests from elsewhere erase here too."""
    out = Publisher(ctx)
    for event in events:
        if isinstance(event.data, pv.ErasureCompleted):
            await repo.record_erasure_completion(
                conn,
                request_id=event.data.request_id,
                service=event.data.service,
                contact_id=event.data.contact_id,
                records_erased=event.data.records_erased,
                completed_at=event.time,
            )
        elif isinstance(event.data, pv.ErasureRequested) and event.source != ctx.settings.source:
            contact = await repo.survivor_of(conn, event.data.contact_id)
            if contact is None or contact["status"] == "erased":
                continue
            await _erase(
                conn,
                ctx,
                out,
                contact_id=str(contact["id"]),
                request_id=event.data.request_id,
                requested_by=event.data.requested_by,
                reason=event.data.reason,
                cause=event,
            )
    await out.flush(conn)


@dataclass(frozen=True)
class Erasure:
    """An erasure request with the services that reported it done; `created` is False when
    the person had been erased already."""

    status: dict[str, Any]
    created: bool


async def erase_contact(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    requested_by: str,
    reason: str | None,
    correlation_id: str,
) -> Erasure:
    """Erase a person here and ask every other service to do the same (idempotent)."""
    contact = await repo.survivor_of(conn, contact_id)
    if contact is None:
        raise NotFound("No contact with this id.")
    target = str(contact["id"])
    if contact["status"] == "erased":
        done = await repo.erasure_of_contact(conn, target)
        assert done is not None
        return Erasure(await erasure_status(conn, done["request_id"]), created=False)
    request_id = new_id("er")
    out = Publisher(ctx, correlation_id=correlation_id)
    await _erase(
        conn,
        ctx,
        out,
        contact_id=target,
        request_id=request_id,
        requested_by=requested_by,
        reason=reason,
        cause=None,
    )
    await out.flush(conn)
    return Erasure(await erasure_status(conn, request_id), created=True)


async def _erase(
    conn: asyncpg.Connection,
    ctx: Context,
    out: Publisher,
    *,
    contact_id: str,
    request_id: str,
    requested_by: str,
    reason: str | None,
    cause: CloudEvent | None,
) -> None:
    await repo.lock_contacts(conn, [contact_id])
    contact_ids = [contact_id, *await repo.merged_into(conn, contact_id)]
    identifiers = [
        Identifier(ct.IdentityType(row["kind"]), row["value"])
        for row in await repo.identifiers_of(conn, contact_id)
    ]
    now = datetime.now(UTC)
    records = await repo.erase_contacts(
        conn,
        contact_id=contact_id,
        contact_ids=contact_ids,
        digests=[domain.identifier_digest(ctx.erasure_key, i) for i in identifiers],
        request_id=request_id,
        requested_by=requested_by,
        erased_at=now,
    )
    await repo.record_erasure_completion(
        conn,
        request_id=request_id,
        service=SERVICE,
        contact_id=contact_id,
        records_erased=records,
        completed_at=now,
    )
    privacy = ctx.settings.privacy_topic
    # The moment of the erasure, not the request's: later replays are compared with it.
    out.contact_event(
        ct.CONTACT_ERASED,
        ct.ContactErased(contact_id=contact_id, request_id=request_id),
        key=contact_id,
        cause=cause,
        time=now,
    )
    # The request for the contact it ended at (a request from elsewhere may name a merged id).
    request = pv.ErasureRequested(
        request_id=request_id, contact_id=contact_id, requested_by=requested_by, reason=reason
    )
    if cause is None:
        out.publish(privacy, pv.PRIVACY_ERASURE_REQUESTED, request, key=contact_id, time=now)
    out.add(
        subjects.erasure_completed(
            cause,
            request,
            service=SERVICE,
            source=out.source,
            topic=privacy,
            records_erased=records,
            time=now,
            correlation_id=out.correlation_id,
        )
    )
    ERASURES.inc()
    log.info("contact erased", extra={"contact_id": contact_id, "request_id": request_id})


async def erasure_status(conn: asyncpg.Connection, request_id: str) -> dict[str, Any]:
    """An erasure request and which services reported it done."""
    request = await repo.get_erasure(conn, request_id)
    if request is None:
        raise NotFound("No erasure request with this id.")
    return {**request, "completed_by": await repo.erasure_completions(conn, request_id)}


@dataclass(frozen=True)
class Export:
    """Everything held about a person (subject access request)."""

    contact: ContactDetails
    account: dict[str, Any] | None
    consent_history: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    scores: dict[str, Any] | None
    merges: list[dict[str, Any]]


async def export_contact(conn: asyncpg.Connection, contact_id: str) -> Export:
    """Everything held about the person, erased contacts included; call it in one snapshot."""
    row = await repo.survivor_of(conn, contact_id)
    if row is None:
        raise NotFound("No contact with this id.")
    target = str(row["id"])
    ids = [target, *await repo.merged_into(conn, target)]
    account = None
    if row["account_id"] is not None:
        account = await repo.get_account(conn, str(row["account_id"]))
    scores = await repo.current_scores(conn, target)
    timeline = await repo.timeline_page(
        conn,
        target,
        repo.TimelineFilter(),
        after=None,
        limit=EXPORT_TIMELINE_LIMIT,
        ascending=True,
    )
    return Export(
        contact=await contact_details(conn, row, asked=contact_id),
        account=account,
        consent_history=await repo.consent_history(conn, target),
        timeline=timeline,
        cases=await repo.cases_of(conn, target),
        campaigns=await repo.enrolments_of(conn, target, active_only=False),
        scores=scores,
        merges=await repo.merges_of(conn, ids),
    )
