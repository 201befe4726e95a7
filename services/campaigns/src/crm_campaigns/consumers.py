"""Kafka consumers of the campaigns service: a table from topic and event type to handler.

The kit's ConsumerRunner opens the transaction, claims the events in the inbox and commits
offsets after the database; the kit's Dispatch checks that each event's type belongs on its
topic (else it is dead-lettered, `unexpected_type`), passes over the types entered as
`ignored` without decoding them, and hands the rest over, handlers in the table's order: who
is merged first, then everything that changes what campaigns knows of a contact (one
handler, so that a batch evaluates each touched contact's segments once), then erasures.
"""

from __future__ import annotations

from crm_campaigns.handlers import events, subjects
from crm_campaigns.handlers.context import Context
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from crm_kit.dispatch import Dispatch, EventHandler, ignored, with_context


def _table(types: dict[str, EventHandler], every: tuple[str, ...]) -> dict[str, EventHandler]:
    """The handlers named, then every other type of the topic ignored."""
    return {**types, **{t: ignored for t in every if t not in types}}


def events_consumer(ctx: Context) -> Dispatch:
    """Every input topic in one group (one consumer on the shared interactions topic)."""
    settings = ctx.settings
    merges = with_context(subjects.record_contact_events, ctx)
    record = with_context(events.record_events, ctx)
    return Dispatch(
        {
            settings.contacts_topic: _table(
                {
                    **dict.fromkeys(subjects.CONTACT_TYPES, merges),
                    **dict.fromkeys(events.CONTACT_TYPES, record),
                },
                tuple(ct.EVENTS),
            ),
            settings.interactions_topic: {it.INTERACTION_RESOLVED: record},
            settings.scores_topic: {sc.SCORE_CHANGED: record},
            settings.cases_topic: _table(
                dict.fromkeys(events.CASE_TYPES, record), tuple(cs.EVENTS)
            ),
            settings.privacy_topic: {
                pv.PRIVACY_ERASURE_REQUESTED: with_context(subjects.record_privacy_events, ctx),
                pv.PRIVACY_ERASURE_COMPLETED: ignored,
            },
        }
    )
