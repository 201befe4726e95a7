"""Analytics for support managers: how the cases opened in a time range were handled."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from crm_cases.api.dependencies import Ctx, Reader
from crm_cases.handlers import analytics as handlers
from crm_cases.sla import Metric
from crm_kit.runtime import SnapshotDep

router = APIRouter()

Percent = Annotated[
    float | None,
    Field(ge=0, le=100, description="0 to 100, to 0.01; null when there is nothing to measure."),
]


class OpenByPriority(BaseModel):
    """Cases of the range that are open now (new, open, pending, on hold), by current priority."""

    urgent: int
    high: int
    normal: int
    low: int


class AttainmentOut(BaseModel):
    """One metric's SLA clocks of the range's cases (every cycle: a case can have several
    next-response clocks and, reopened, several resolution ones)."""

    on_time: int = Field(description="Clocks met without breaching.")
    breached: int = Field(description="Clocks breached (met late, or still running past due).")
    running: int = Field(description="Clocks neither met nor breached yet: not measured.")
    attainment_percent: Percent = Field(
        description="on_time / (on_time + breached) in percent, 0 to 100, to 0.01; null when "
        "no clock was met or breached."
    )


class SlaAttainment(BaseModel):
    """SLA attainment per metric."""

    first_response: AttainmentOut
    next_response: AttainmentOut
    resolution: AttainmentOut


class TimesOut(BaseModel):
    """Business seconds (business hours of the policy's calendar, paused time left out),
    to 0.001; percentiles interpolate. Null when no case was measured."""

    count: int = Field(description="Cases measured.")
    median_seconds: float | None
    p90_seconds: float | None = Field(description="90th percentile.")


class FcrOut(BaseModel):
    """First-contact resolution: resolved after one answer, with no further customer message
    and no reopen."""

    resolved: int = Field(description="Resolved cases of the range.")
    first_contact: int = Field(description="Of those, resolved at the first contact.")
    rate_percent: Percent


class CsatOut(BaseModel):
    """Customer satisfaction (1 worst to 5 best; a case's latest rating counts)."""

    rated: int = Field(description="Cases rated.")
    average: float | None = Field(
        ge=1, le=5, description="Mean rating to 0.01; null when none was rated."
    )


class QueueBreachesOut(BaseModel):
    """SLA breaches of the range's cases in one queue (the queue the case was in when it
    breached)."""

    queue: str
    breaches: int
    first_response: int
    next_response: int
    resolution: int


class AnalyticsOut(BaseModel):
    """How the cases opened in [from, to) were handled. Every figure is over that one cohort
    of cases, so the figures add up; a recent range's figures still move while its cases are
    worked."""

    from_: datetime = Field(alias="from", description="Start of the range (inclusive), in UTC.")
    to: datetime = Field(description="End of the range (exclusive), in UTC.")
    as_of: datetime = Field(description="When the figures were taken: open counts are as of then.")
    opened: int = Field(description="Cases opened in the range.")
    resolved: int = Field(description="Of those, resolved now (resolved, or closed after that).")
    open_by_priority: OpenByPriority
    sla_attainment: SlaAttainment
    first_response: TimesOut = Field(
        description="Time to the first agent response, of cases answered."
    )
    resolution: TimesOut = Field(
        description="Time to resolution, of resolved cases; a reopened case adds every cycle."
    )
    fcr: FcrOut
    csat: CsatOut
    breaches_by_queue: list[QueueBreachesOut] = Field(description="Most breaches first.")

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, a: handlers.Analytics) -> AnalyticsOut:
        def attainment(metric: str) -> AttainmentOut:
            found = a.attainment[Metric(metric)]
            return AttainmentOut(
                on_time=found.on_time,
                breached=found.breached,
                running=found.running,
                attainment_percent=found.percent,
            )

        def times(t: handlers.Times) -> TimesOut:
            return TimesOut(count=t.count, median_seconds=t.median, p90_seconds=t.p90)

        return cls(
            from_=a.start,
            to=a.end,
            as_of=a.as_of,
            opened=a.opened,
            resolved=a.resolved,
            open_by_priority=OpenByPriority(**{p.value: n for p, n in a.open_by_priority.items()}),
            sla_attainment=SlaAttainment(
                first_response=attainment("first_response"),
                next_response=attainment("next_response"),
                resolution=attainment("resolution"),
            ),
            first_response=times(a.first_response),
            resolution=times(a.resolution),
            fcr=FcrOut(
                resolved=a.resolved,
                first_contact=a.resolved_first_contact,
                rate_percent=a.fcr_percent,
            ),
            csat=CsatOut(rated=a.rated, average=a.csat_average),
            breaches_by_queue=[
                QueueBreachesOut(
                    queue=q.queue,
                    breaches=q.breaches,
                    first_response=q.first_response,
                    next_response=q.next_response,
                    resolution=q.resolution,
                )
                for q in a.breaches_by_queue
            ],
        )


@router.get("/analytics", response_model=AnalyticsOut, response_model_by_alias=True)
async def get_analytics(
    principal: Reader,
    conn: SnapshotDep,
    ctx: Ctx,
    from_: Annotated[
        datetime,
        Query(alias="from", description="Start (inclusive), ISO 8601 with offset."),
    ],
    to: Annotated[datetime, Query(description="End (exclusive), ISO 8601 with offset.")],
) -> AnalyticsOut:
    """How the cases opened in [from, to) were handled: open now by priority, SLA attainment
    per metric, median and p90 first-response and resolution times in business seconds, FCR
    rate, CSAT average, breaches by queue. The range is the cohort of cases opened in it (not
    the cases resolved in it), so the figures are of one set of cases and add up. At most 366
    days; 422 when from is not before to."""
    # One snapshot (SnapshotDep), so that the four statements agree with one another.
    return AnalyticsOut.of(await handlers.case_analytics(conn, ctx, start=from_, end=to))
