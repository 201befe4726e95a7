"""What every use case shares: the Context (settings, clock) and the Publisher of campaign
events, from the campaigns source, written to the outbox in the use case's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from crm_campaigns import segments
from crm_campaigns.domain import Campaign, CampaignStatus
from crm_campaigns.parsed import Parsed
from crm_campaigns.settings import CampaignsSettings
from crm_contracts import CloudEvent
from crm_kit import publisher as kit_publisher

# Ids derived from what they name (a send of one step to one enrolment) are the same however
# often, and on whichever replica, they are computed.
NAMESPACE = uuid.UUID("6f1c9b0e-5a57-4c1e-9a8e-0c6a3e2f7d41")


def wall_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass
class Definitions:
    """The segment rules and campaigns this process has parsed, by version (`parsed`)."""

    rules: Parsed[tuple[int, datetime], Any, segments.Rule] = field(default_factory=Parsed)
    campaigns: Parsed[tuple[datetime, CampaignStatus], Any, Campaign] = field(
        default_factory=Parsed
    )


@dataclass(frozen=True)
class Context:
    """What the use cases need besides a connection: settings and the clock.

    `clock` is what the step timer compares due times with, and the time of a marketer's
    request; tests pass a clock they control. What an event leads to is timed by that event
    (DESIGN.md, pattern 7)."""

    settings: CampaignsSettings
    clock: Callable[[], datetime] = field(default=wall_clock)
    definitions: Definitions = field(default_factory=Definitions, compare=False)

    def consent_default(self, purpose: str) -> bool:
        """Whether a contact who said nothing on this purpose may be sent to for it."""
        return self.settings.consent_defaults.get(purpose, False)


class Publisher(kit_publisher.Publisher):
    """The campaign events of one use case, written to the outbox together."""

    def __init__(self, ctx: Context, correlation_id: str | None = None) -> None:
        super().__init__(ctx.settings.source, correlation_id)
        self.ctx = ctx

    def campaign_event(
        self,
        type: str,
        data: BaseModel,
        *,
        key: str,
        time: datetime,
        cause: CloudEvent | None = None,
        id: str | None = None,
    ) -> CloudEvent:
        """Queue an event on the campaigns topic, keyed by contact (campaign-level events by
        campaign); `time` is the moment it is about."""
        return self.publish(
            self.ctx.settings.campaigns_topic,
            type,
            data,
            key=key,
            cause=cause,
            time=time,
            id=id,
        )


def new_id(prefix: str) -> str:
    """An opaque id: prefix and 32 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id that is a function of what it names."""
    return f"{prefix}-{uuid.uuid5(NAMESPACE, '/'.join(parts)).hex}"
