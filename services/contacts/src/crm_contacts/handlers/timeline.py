"""The timeline and the 360 view: case, campaign and score events projected for the 360 and
recorded on the timeline; pages of the timeline; the 360 itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.domain import TimelineEntry
from crm_contacts.handlers.context import Context
from crm_contacts.handlers.lookups import ContactDetails, contact_details, resolve_contact
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import scores as sc
from crm_kit import metrics
from crm_kit.consumer import PermanentEventError
from crm_kit.pages import RowPage, decode_cursor, page_of

SKIPPED = metrics.counter(
    "crm_contacts_events_skipped_total",
    "Case, campaign and score events not recorded, by reason (erased_contact).",
    ["reason"],
)


def _case_fields(data: BaseModel) -> dict[str, Any]:
    """What a case event changes in the case projection."""
    if isinstance(data, cs.CaseOpened):
        return {
            "title": data.title,
            "queue": data.queue,
            "priority": data.priority.value,
            "status": data.status.value,
            "opened": True,
            # Only a case not seen yet takes it: an assignment that came first stays.
            "assignee": data.assignee,
        }
    if isinstance(data, cs.CaseAssigned):
        return {"queue": data.queue, "assignee": data.assignee, "assignee_set": True}
    if isinstance(data, cs.CaseStatusChanged):
        return {"status": data.to_status.value}
    if isinstance(data, cs.CasePriorityChanged):
        return {"priority": data.to_priority.value}
    if isinstance(data, cs.CaseSlaBreached):
        return {"queue": data.queue, "priority": data.priority.value}
    if isinstance(data, cs.CaseResolved):
        return {"status": cs.CaseStatus.RESOLVED.value}
    if isinstance(data, cs.CaseReopened):
        return {"status": cs.CaseStatus.OPEN.value}
    if isinstance(data, cs.CaseClosed):
        return {"status": cs.CaseStatus.CLOSED.value}
    return {}


async def record_related_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Case, campaign and score events: projections for the 360, entries for the timeline.

    In event order, on one lookup of the contacts they name (nothing in here moves a
    contact); scores and the timeline are written once for the batch, one statement each.
    """
    named = [getattr(event.data, "contact_id", None) for event in events]
    survivors = await repo.survivors_of(conn, [g for g in named if isinstance(g, str)])
    entries: list[TimelineEntry] = []
    scores: list[repo.ScoreWrite] = []
    for event, given in zip(events, named, strict=True):
        data = event.data
        if isinstance(data, cm.CampaignCompleted):
            await repo.end_campaign(conn, data.campaign_id, event.time)
            continue
        if not isinstance(given, str):
            continue  # campaign launched or paused: about no contact
        contact = survivors.get(given)
        if contact is None:
            raise PermanentEventError(f"unknown contact in {event.type}", reason="unknown_contact")
        if contact.status == "erased":
            SKIPPED.labels("erased_contact").inc()
            continue
        if isinstance(data, sc.ScoreChanged):
            scores.append(
                repo.ScoreWrite(
                    origin_id=given,
                    contact_id=contact.id,
                    model_version=data.model_version,
                    scores=data.new.model_dump(mode="json"),
                    time=event.time,
                    event_id=event.id,
                )
            )
        else:
            await _project(conn, event, contact_id=contact.id, given=given)
        entries.append(domain.timeline_entry(event, contact_id=contact.id, origin_id=given))
    await repo.upsert_scores(conn, scores)
    await repo.insert_timeline(conn, entries)


async def _project(
    conn: asyncpg.Connection, event: CloudEvent, *, contact_id: str, given: str
) -> None:
    """A case or enrolment event into its projection for the 360."""
    data = event.data
    if event.type in cs.EVENTS:
        case_id = getattr(data, "case_id", None)
        fields = _case_fields(data)
        if fields and isinstance(case_id, str):
            await repo.upsert_case(
                conn,
                case_id=case_id,
                contact_id=contact_id,
                origin_id=given,
                time=event.time,
                title=fields.get("title"),
                queue=fields.get("queue"),
                priority=fields.get("priority"),
                status=fields.get("status"),
                assignee=fields.get("assignee"),
                assignee_set=bool(fields.get("assignee_set")),
                opened=bool(fields.get("opened")),
            )
    elif isinstance(data, cm.CampaignContactEnrolled | cm.CampaignConverted | cm.CampaignExited):
        await repo.upsert_enrolment(
            conn,
            enrolment_id=data.enrolment_id,
            campaign_id=data.campaign_id,
            contact_id=contact_id,
            origin_id=given,
            enrolled_at=event.time if isinstance(data, cm.CampaignContactEnrolled) else None,
            converted_at=event.time if isinstance(data, cm.CampaignConverted) else None,
            exited_at=event.time if isinstance(data, cm.CampaignExited) else None,
            exit_reason=data.reason.value if isinstance(data, cm.CampaignExited) else None,
        )


async def get_timeline(
    conn: asyncpg.Connection,
    contact_id: str,
    *,
    kinds: Sequence[str],
    channels: Sequence[str],
    sources: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    ascending: bool,
    cursor: str | None,
    limit: int,
) -> RowPage:
    """A page of what happened with the contact an id names now, by event time."""
    row = await resolve_contact(conn, contact_id)
    after = decode_cursor(cursor, datetime, int) if cursor else None
    rows = await repo.timeline_page(
        conn,
        str(row["id"]),
        repo.TimelineFilter(
            kinds=kinds, channels=channels, sources=sources, since=since, until=until
        ),
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
        ascending=ascending,
    )
    return page_of(rows, limit, "time", "id")


@dataclass(frozen=True)
class Contact360:
    """Everything about a contact, from this service's own database."""

    contact: ContactDetails
    consent: list[dict[str, Any]]
    account: dict[str, Any] | None
    scores: dict[str, Any] | None
    open_cases: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    timeline: list[dict[str, Any]]


async def get_360(conn: asyncpg.Connection, ctx: Context, contact_id: str) -> Contact360:
    """The 360 of the contact an id names now; call it in one (repeatable read) snapshot."""
    row = await resolve_contact(conn, contact_id)
    target = str(row["id"])
    account = None
    if row["account_id"] is not None:
        account = await repo.get_account(conn, str(row["account_id"]))
    scores = await repo.current_scores(conn, target)
    return Contact360(
        contact=await contact_details(conn, row, asked=contact_id),
        consent=await repo.current_consents(conn, target),
        account=account,
        scores=scores,
        open_cases=await repo.open_cases(conn, target),
        campaigns=await repo.enrolments_of(conn, target, active_only=True),
        timeline=await repo.timeline_page(
            conn,
            target,
            repo.TimelineFilter(),
            after=None,
            limit=ctx.settings.timeline_in_360,
        ),
    )
