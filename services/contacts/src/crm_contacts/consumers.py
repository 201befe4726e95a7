"""Kafka consumers of the contacts service: a table from topic and event type to handler.

The kit's ConsumerRunner opens the transaction, claims the events in the inbox and commits
offsets after the database; the kit's Dispatch checks that each event's type belongs on its
topic (else it is dead-lettered, `unexpected_type`) and hands the events over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from crm_contacts import handlers
from crm_contacts.handlers import Context
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.dispatch import Dispatch, EventHandler

ContactsHandler = Callable[[asyncpg.Connection, Sequence[CloudEvent], Context], Awaitable[None]]


def _given(ctx: Context, handler: ContactsHandler) -> EventHandler:
    async def handle(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
        await handler(conn, events, ctx)

    return handle


def events_consumer(ctx: Context) -> Dispatch:
    """Every input topic in one group: raw interactions to identity resolution; case,
    campaign and score events to the timeline and the 360; privacy events to erasure."""
    settings = ctx.settings
    resolve = _given(ctx, handlers.resolve_interactions)
    related = _given(ctx, handlers.record_related_events)
    privacy = _given(ctx, handlers.record_privacy_events)
    return Dispatch(
        {
            settings.interactions_raw_topic: {it.INTERACTION_RECORDED: resolve},
            settings.cases_topic: dict.fromkeys(cs.EVENTS, related),
            settings.campaigns_topic: dict.fromkeys(cm.EVENTS, related),
            settings.scores_topic: {sc.SCORE_CHANGED: related},
            settings.privacy_topic: dict.fromkeys(pv.EVENTS, privacy),
        }
    )
