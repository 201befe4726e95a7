"""Kafka consumers of the contacts service: a table from topic and event type to handler.

The kit's ConsumerRunner opens the transaction, claims the events in the inbox and commits
offsets after the database; the kit's Dispatch checks that each event's type belongs on its
topic (else it is dead-lettered, `unexpected_type`) and hands the events over.
"""

from __future__ import annotations

from crm_contacts import handlers
from crm_contacts.handlers import Context
from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.dispatch import Dispatch, with_context


def events_consumer(ctx: Context) -> Dispatch:
    """Every input topic in one group: raw interactions to identity resolution; case,
    campaign and score events to the timeline and the 360; privacy events to erasure."""
    settings = ctx.settings
    resolve = with_context(handlers.resolve_interactions, ctx)
    related = with_context(handlers.record_related_events, ctx)
    privacy = with_context(handlers.record_privacy_events, ctx)
    return Dispatch(
        {
            settings.interactions_raw_topic: {it.INTERACTION_RECORDED: resolve},
            settings.cases_topic: dict.fromkeys(cs.EVENTS, related),
            settings.campaigns_topic: dict.fromkeys(cm.EVENTS, related),
            settings.scores_topic: {sc.SCORE_CHANGED: related},
            settings.privacy_topic: dict.fromkeys(pv.EVENTS, privacy),
        }
    )
