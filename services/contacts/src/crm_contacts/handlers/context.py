"""What every use case shares: the Context (settings and parsed rules), the Publisher that
writes the events of one transaction to the outbox (the kit's, from the contacts source),
and new ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from crm_contacts.domain import LifecycleRules, MergeRules
from crm_contacts.settings import ContactsSettings
from crm_contracts import CloudEvent
from crm_kit import publisher as kit_publisher


@dataclass(frozen=True)
class Context:
    """What the use cases need besides a connection: settings and the parsed rules."""

    settings: ContactsSettings
    lifecycle: LifecycleRules
    merge_rules: MergeRules

    @classmethod
    def from_settings(cls, settings: ContactsSettings, lifecycle: LifecycleRules) -> Context:
        return cls(settings, lifecycle, MergeRules.from_settings(settings.auto_merge))

    @property
    def erasure_key(self) -> bytes:
        return self.settings.erasure_hmac_key.get_secret_value().encode()


class Publisher(kit_publisher.Publisher):
    """The events of one use case, from the contacts source, written to the outbox together.

    Their `time` (DESIGN.md, pattern 7): everything an interaction leads to carries the
    interaction's time, which is the default when `cause` is given. `interaction.resolved`
    restates it; `contact.created`, `identity_linked`, `updated` (its traits),
    `consent_changed` (its statement), `lifecycle_changed` and `merged` are what it said or
    proved, as of when it happened, so that scores, SLAs, attribution and segments
    downstream see a purchase imported from two years ago as two years old. A late
    interaction's events carry its earlier time; per key they are still published in the
    order they were decided. Without a cause (an agent's request through the API) `time` is
    the moment of the request. An erasure passes `time` itself: it takes effect when carried
    out, even when another service's request caused it.
    """

    def __init__(self, ctx: Context, correlation_id: str | None = None) -> None:
        super().__init__(ctx.settings.source, correlation_id)
        self.ctx = ctx

    def contact_event(
        self,
        type: str,
        data: BaseModel,
        *,
        key: str,
        cause: CloudEvent | None = None,
        at: int | None = None,
        time: datetime | None = None,
    ) -> CloudEvent:
        """Queue an event on the contacts topic."""
        return self.publish(
            self.ctx.settings.contacts_topic, type, data, key=key, cause=cause, at=at, time=time
        )


def new_id(prefix: str) -> str:
    """An opaque id: prefix and 32 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex}"
