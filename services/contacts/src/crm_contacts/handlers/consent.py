"""Consent per purpose and channel: statements from interactions and from agents."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from crm_contacts import domain
from crm_contacts import repository as repo
from crm_contacts.handlers.context import Context, Publisher
from crm_contacts.handlers.lookups import active_contact, resolve_contact
from crm_contracts import CloudEvent
from crm_contracts import contacts as ct


@dataclass(frozen=True)
class Consents:
    """The effective consent per (channel, purpose) and every statement that led to it;
    `changed` tells whether a statement just recorded changed it."""

    contact_id: str
    current: list[dict[str, Any]]
    history: list[dict[str, Any]]
    changed: bool | None = None


async def record_consent(
    conn: asyncpg.Connection,
    out: Publisher,
    *,
    contact_id: str,
    origin_id: str,
    channel: str | None,
    purpose: str,
    granted: bool,
    source: str,
    actor: str | None,
    note: str | None,
    time: datetime,
    cause: CloudEvent | None,
) -> bool:
    """Record a consent statement; emit consent_changed when the effective consent changes."""
    latest = await repo.latest_consent(conn, contact_id, channel, purpose)
    changes = domain.consent_changes(latest, domain.ConsentStatement(granted, time))
    await repo.insert_consent(
        conn,
        contact_id=contact_id,
        origin_id=origin_id,
        channel=channel,
        purpose=purpose,
        granted=granted,
        source=source,
        actor=actor,
        cause_event_id=None if cause is None else cause.id,
        note=note,
        time=time,
    )
    if changes:
        out.contact_event(
            ct.CONTACT_CONSENT_CHANGED,
            ct.ContactConsentChanged(
                contact_id=contact_id,
                channel=channel,
                purpose=purpose,
                granted=granted,
                source=source,
                cause_event_id=None if cause is None else cause.id,
            ),
            key=contact_id,
            cause=cause,
            time=time,  # the statement's: the effective consent is the latest by this time
        )
    return changes


async def set_consent(
    conn: asyncpg.Connection,
    ctx: Context,
    *,
    contact_id: str,
    channel: str | None,
    purpose: str,
    granted: bool,
    note: str | None,
    actor: str,
    correlation_id: str,
) -> Consents:
    """An agent records consent; a statement equal to the effective one changes nothing."""
    contact = await active_contact(conn, contact_id)
    target = str(contact["id"])
    latest = await repo.latest_consent(conn, target, channel, purpose)
    changed = latest is None or latest.granted != granted
    if changed:
        out = Publisher(ctx, correlation_id=correlation_id)
        await record_consent(
            conn,
            out,
            contact_id=target,
            origin_id=target,
            channel=channel,
            purpose=purpose,
            granted=granted,
            source=f"api:{actor}",
            actor=actor,
            note=note,
            time=datetime.now(UTC),
            cause=None,
        )
        await repo.touch(conn, target)
        await out.flush(conn)
    return replace(await get_consent(conn, contact_id), changed=changed)


async def get_consent(conn: asyncpg.Connection, contact_id: str) -> Consents:
    """The consent of the contact an id names now."""
    row = await resolve_contact(conn, contact_id)
    target = str(row["id"])
    return Consents(
        contact_id=target,
        current=await repo.current_consents(conn, target),
        history=await repo.consent_history(conn, target),
    )
