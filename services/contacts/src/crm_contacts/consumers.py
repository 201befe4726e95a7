"""Kafka consumers of the contacts service: check the event type, hand over to a handler.

The kit's ConsumerRunner opens the transaction, claims the events in the inbox and commits
offsets after the database; these functions only dispatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crm_contacts import handlers
from crm_contacts.handlers import Context
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.consumer import BatchHandler, Delivery, PermanentEventError

RAW_TYPES = frozenset({it.INTERACTION_RECORDED})
RELATED_TYPES = frozenset({*cs.EVENTS, *cm.EVENTS, sc.SCORE_CHANGED})
PRIVACY_TYPES = frozenset(pv.EVENTS)


def _accepted_types(ctx: Context) -> dict[str, frozenset[str]]:
    settings = ctx.settings
    return {
        settings.interactions_raw_topic: RAW_TYPES,
        settings.cases_topic: frozenset(cs.EVENTS),
        settings.campaigns_topic: frozenset(cm.EVENTS),
        settings.scores_topic: frozenset({sc.SCORE_CHANGED}),
        settings.privacy_topic: PRIVACY_TYPES,
    }


def _events_of(
    deliveries: Sequence[Delivery], accepted: dict[str, frozenset[str]]
) -> list[CloudEvent]:
    for delivery in deliveries:
        if delivery.event.type not in accepted.get(delivery.topic, frozenset()):
            raise PermanentEventError(
                f"{delivery.event.type} does not belong on {delivery.topic}",
                reason="unexpected_type",
            )
    return [delivery.event for delivery in deliveries]


def events_consumer(ctx: Context) -> BatchHandler:
    """Every input topic in one group: raw interactions to identity resolution; case,
    campaign and score events to the timeline and the 360; privacy events to erasure."""

    accepted = _accepted_types(ctx)

    async def handle(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        events = _events_of(deliveries, accepted)
        raw = [e for e in events if e.type in RAW_TYPES]
        related = [e for e in events if e.type in RELATED_TYPES]
        privacy = [e for e in events if e.type in PRIVACY_TYPES]
        if raw:
            await handlers.resolve_interactions(conn, raw, ctx)
        if related:
            await handlers.record_related_events(conn, related, ctx)
        if privacy:
            await handlers.record_privacy_events(conn, privacy, ctx)

    return handle
