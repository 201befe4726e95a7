"""Consent: the effective statements and their history; a statement by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from crm_contacts import handlers
from crm_contacts.api.dependencies import Ctx, Reader, Writer
from crm_contacts.api.models import Reason
from crm_contracts.base import Channel
from crm_kit.api import Input, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()


class ConsentIn(Input):
    """Consent recorded by an agent."""

    purpose: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    channel: Channel | None = Field(default=None, description="Absent: every channel.")
    granted: bool
    note: Reason | None = None


class ConsentOut(BaseModel):
    """One consent statement."""

    channel: str | None
    purpose: str
    granted: bool
    source: str
    actor: str | None
    cause_event_id: str | None
    note: str | None
    time: datetime
    recorded_at: datetime


class ConsentView(BaseModel):
    """Effective consent per (channel, purpose), and the history that led to it."""

    contact_id: str
    current: list[ConsentOut]
    history: list[ConsentOut]
    changed: bool | None = None

    @classmethod
    def from_consents(cls, consents: handlers.Consents) -> ConsentView:
        """The consent of a contact."""
        return cls(
            contact_id=consents.contact_id,
            current=[ConsentOut(**c) for c in consents.current],
            history=[ConsentOut(**c) for c in consents.history],
            changed=consents.changed,
        )


@router.put(
    "/contacts/{contact_id}/consent",
    response_model=ConsentView,
    responses=problem_responses(404, 410),
)
async def set_consent(
    contact_id: str,
    body: ConsentIn,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> ConsentView:
    """Record consent for a purpose (and channel); emits contact.consent_changed on change."""
    consents = await in_transaction(
        conn,
        handlers.set_consent,
        ctx,
        contact_id=contact_id,
        channel=None if body.channel is None else body.channel.value,
        purpose=body.purpose,
        granted=body.granted,
        note=body.note,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return ConsentView.from_consents(consents)


@router.get(
    "/contacts/{contact_id}/consent",
    response_model=ConsentView,
    responses=problem_responses(404, 410),
)
async def get_consent(contact_id: str, principal: Reader, conn: SnapshotDep) -> ConsentView:
    """Effective consent and its history (who or what changed it, when)."""
    return ConsentView.from_consents(await handlers.get_consent(conn, contact_id))
