"""What every use case shares: the Context (settings, clock) and the Publisher of case
events, from the cases source, written to the outbox in the use case's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from crm_cases import domain
from crm_cases.repository.scores import Standing
from crm_cases.settings import CasesSettings
from crm_contracts import CloudEvent
from crm_contracts.cases import CasePriority
from crm_kit import publisher as kit_publisher


def wall_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    """What the use cases need besides a connection: settings and the clock.

    `clock` is what the SLA timer compares deadlines with and the time of an agent's
    request; tests pass a clock they control. Everything an interaction or a score change
    leads to is timed by that event (DESIGN.md, pattern 7), never by this clock."""

    settings: CasesSettings
    clock: Callable[[], datetime] = field(default=wall_clock)

    @property
    def reopen_window(self) -> timedelta:
        return timedelta(days=self.settings.reopen_window_days)

    def priority_for(self, standing: Standing | None) -> CasePriority:
        """The priority a contact's value asks for (normal for one not scored yet)."""
        return domain.priority_from_value(
            standing.value_tier if standing else None,
            standing.churn_band if standing else None,
            by_tier=self.settings.priority_by_tier,
            by_band=self.settings.priority_by_band,
        )


class Publisher(kit_publisher.Publisher):
    """The case events of one use case, written to the outbox together, keyed by contact."""

    def __init__(self, ctx: Context, correlation_id: str | None = None) -> None:
        super().__init__(ctx.settings.source, correlation_id)
        self.ctx = ctx

    def case_event(
        self,
        type: str,
        data: BaseModel,
        *,
        contact_id: str,
        time: datetime,
        cause: CloudEvent | None = None,
        id: str | None = None,
        at: int | None = None,
    ) -> CloudEvent:
        """Queue an event on the cases topic; `time` is when it happened in the world."""
        return self.publish(
            self.ctx.settings.cases_topic,
            type,
            data,
            key=contact_id,
            cause=cause,
            time=time,
            id=id,
            at=at,
        )


def new_id(prefix: str) -> str:
    """An opaque id: prefix and 32 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex}"
