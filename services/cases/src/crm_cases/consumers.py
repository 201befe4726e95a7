"""Kafka consumers of the cases service: a table from topic and event type to handler.

The kit's ConsumerRunner opens the transaction, claims the events in the inbox and commits
offsets after the database; the kit's Dispatch checks that each event's type belongs on its
topic (else it is dead-lettered, `unexpected_type`), passes over the types entered as
`ignored` without decoding them (most contact events) and hands the rest over, handlers in
the table's order: who is merged or erased first, then the value projection (so a request
in the same batch takes the new priority), then interactions.
"""

from __future__ import annotations

from crm_cases.handlers import interactions, scores, subjects
from crm_cases.handlers.context import Context
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.dispatch import Dispatch, ignored, with_context


def events_consumer(ctx: Context) -> Dispatch:
    """Every input topic in one group (one consumer on the shared interactions topic)."""
    settings = ctx.settings
    contact = with_context(subjects.record_contact_events, ctx)
    return Dispatch(
        {
            # Of the contact events, only who is one person and who is erased matter here.
            settings.contacts_topic: {
                **dict.fromkeys(ct.EVENTS, ignored),
                **dict.fromkeys(subjects.CONTACT_TYPES, contact),
            },
            settings.privacy_topic: {
                pv.PRIVACY_ERASURE_REQUESTED: with_context(subjects.record_privacy_events, ctx),
                pv.PRIVACY_ERASURE_COMPLETED: ignored,
            },
            settings.scores_topic: {
                sc.SCORE_CHANGED: with_context(scores.record_score_changes, ctx)
            },
            settings.interactions_topic: {
                it.INTERACTION_RESOLVED: with_context(interactions.record_interactions, ctx)
            },
        }
    )
