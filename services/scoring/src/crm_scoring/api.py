"""Read API: a contact's scores with reasons, their history, top-N and distributions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from crm_contracts.scores import ScoreChanged, ScoreReason, Scores
from crm_kit import subjects
from crm_kit.api import context_of
from crm_kit.auth import Principal, require_scopes
from crm_kit.errors import NotFound
from crm_kit.inputs import Instant, RowId
from crm_kit.problems import problem_responses
from crm_kit.runtime import PoolDep, SnapshotDep
from crm_scoring import repository as repo
from crm_scoring.domain import score
from crm_scoring.handlers import Context, reevaluate, to_scores

router = APIRouter(prefix="/v1", tags=["scores"])

ScoresReader = Annotated[Principal, Depends(require_scopes("scores:read"))]
ScoresWriter = Annotated[Principal, Depends(require_scopes("scores:write"))]
ContactIdPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
]
ScoreField = Literal["engagement", "clv", "churn_risk", "recency", "frequency", "monetary"]


Ctx = Annotated[Context, Depends(context_of(Context))]


class ContactScoresOut(BaseModel):
    """A contact's current scores and why they are what they are."""

    contact_id: str = Field(description="The contact (the survivor when the id asked was merged).")
    model_version: str
    as_of: datetime = Field(description="The moment the scores are computed for.")
    evaluated_at: datetime | None = Field(None, description="When they were computed.")
    scores: Scores
    engagement_band: str
    reasons: list[ScoreReason] = Field(description="Reasons of the latest change, biggest first.")
    cause_event_id: str | None = None
    merged_ids: list[str] = Field(default_factory=list, description="Contacts merged into it.")


class HistoryItemOut(BaseModel):
    """One published score change."""

    id: int
    event_id: str
    as_of: datetime
    recorded_at: datetime
    change: ScoreChanged


class HistoryOut(BaseModel):
    """Published score changes of a contact, newest first."""

    contact_id: str
    items: list[HistoryItemOut]
    next_before: int | None = Field(None, description="Pass as `before` for the next page.")


class TopItemOut(BaseModel):
    """A contact in a top-N list."""

    contact_id: str
    value: float
    value_tier: str
    churn_band: str
    engagement_band: str


class TopOut(BaseModel):
    """Contacts ranked by one score."""

    score: ScoreField
    order: Literal["desc", "asc"]
    items: list[TopItemOut]


class BucketOut(BaseModel):
    """Contacts whose score is in [lower, upper) (the last bucket includes its upper bound)."""

    lower: float
    upper: float
    count: int


class DistributionOut(BaseModel):
    """How contacts spread over one score, and the counts per tier and band."""

    score: ScoreField
    contacts: int
    buckets: list[BucketOut]
    value_tiers: dict[str, int]
    churn_bands: dict[str, int]
    engagement_bands: dict[str, int]


class ReevaluationOut(BaseModel):
    """What a re-evaluation did."""

    as_of: datetime
    evaluated: int
    published: int


async def _survivor(conn: asyncpg.Connection, contact_id: str) -> str:
    return (await subjects.current(conn, [contact_id])).survivor_of(contact_id)


@router.get(
    "/contacts/{contact_id}/scores",
    response_model=ContactScoresOut,
    responses=problem_responses(401, 403, 404),
)
async def get_scores(
    contact_id: ContactIdPath,
    principal: ScoresReader,
    ctx: Ctx,
    conn: SnapshotDep,
    as_of: Annotated[
        Instant | None,
        Query(description="Compute the scores for this moment from the stored facts instead."),
    ] = None,
) -> ContactScoresOut:
    """Current scores of a contact with the reasons of their latest change."""
    target = await _survivor(conn, contact_id)
    stored = await repo.contact(conn, target)
    if stored is None:
        raise NotFound(f"No scores for contact {contact_id}.")
    merged = await subjects.merged_into(conn, target)
    if as_of is not None:
        facts = (await repo.facts_of(conn, [target]))[target]
    if as_of is not None:
        card = score(facts, as_of, ctx.model)
        return ContactScoresOut(
            contact_id=target,
            model_version=ctx.model.version,
            as_of=as_of,
            scores=to_scores(card, ctx.model.currency),
            engagement_band=card.engagement_band,
            reasons=[],
            merged_ids=merged,
        )
    return ContactScoresOut(
        contact_id=target,
        model_version=stored.model_version,
        as_of=stored.as_of,
        evaluated_at=stored.evaluated_at,
        scores=to_scores(stored.card, stored.currency),
        engagement_band=stored.card.engagement_band,
        reasons=[ScoreReason.model_validate(r) for r in stored.reasons],
        cause_event_id=stored.cause_event_id,
        merged_ids=merged,
    )


@router.get(
    "/contacts/{contact_id}/scores/history",
    response_model=HistoryOut,
    responses=problem_responses(401, 403),
)
async def get_history(
    contact_id: ContactIdPath,
    principal: ScoresReader,
    conn: SnapshotDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[RowId | None, Query(description="Only changes older than this id.")] = None,
) -> HistoryOut:
    """Published score changes of a contact, newest first, a page at a time."""
    target = await _survivor(conn, contact_id)
    rows = await repo.history(conn, target, limit=limit, before_id=before)
    items = [
        HistoryItemOut(
            id=row["id"],
            event_id=row["event_id"],
            as_of=row["as_of"],
            recorded_at=row["recorded_at"],
            change=ScoreChanged.model_validate(row["change"]),
        )
        for row in rows
    ]
    next_before = items[-1].id if len(items) == limit else None
    return HistoryOut(contact_id=target, items=items, next_before=next_before)


@router.get("/scores/top", response_model=TopOut, responses=problem_responses(401, 403))
async def get_top(
    principal: ScoresReader,
    conn: SnapshotDep,
    score_name: Annotated[ScoreField, Query(alias="score")] = "clv",
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> TopOut:
    """The contacts with the highest (or lowest) value of a score."""
    rows = await repo.top(conn, score=score_name, descending=order == "desc", limit=limit)
    return TopOut(
        score=score_name,
        order=order,
        items=[
            TopItemOut(
                contact_id=row["contact_id"],
                value=float(row["value"]),
                value_tier=row["value_tier"],
                churn_band=row["churn_band"],
                engagement_band=row["engagement_band"],
            )
            for row in rows
        ],
    )


_RANGES: dict[str, tuple[float, float]] = {
    "engagement": (0.0, 100.0),
    "churn_risk": (0.0, 1.0),
    "recency": (1.0, 5.0),
    "frequency": (1.0, 5.0),
    "monetary": (1.0, 5.0),
}


@router.get(
    "/scores/distribution", response_model=DistributionOut, responses=problem_responses(401, 403)
)
async def get_distribution(
    principal: ScoresReader,
    conn: SnapshotDep,
    score_name: Annotated[ScoreField, Query(alias="score")] = "engagement",
    buckets: Annotated[int, Query(ge=1, le=100)] = 10,
) -> DistributionOut:
    """Contacts per range of a score, and per value tier, churn band and engagement band."""
    if score_name == "clv":
        low, high = 0.0, max(await repo.max_clv(conn), 1.0)
    else:
        low, high = _RANGES[score_name]
    if score_name in ("recency", "frequency", "monetary"):
        buckets, low, high = 5, 0.5, 5.5  # one bucket per quintile
    total, counts = await repo.histogram(
        conn, score=score_name, low=low, high=high, buckets=buckets
    )
    tiers = await repo.count_by(conn, "value_tier")
    bands = await repo.count_by(conn, "churn_band")
    engagement_bands = await repo.count_by(conn, "engagement_band")
    width = (high - low) / buckets
    return DistributionOut(
        score=score_name,
        contacts=total,
        buckets=[
            BucketOut(lower=low + i * width, upper=low + (i + 1) * width, count=count)
            for i, count in enumerate(counts)
        ],
        value_tiers=tiers,
        churn_bands=bands,
        engagement_bands=engagement_bands,
    )


@router.post(
    "/scores/reevaluate", response_model=ReevaluationOut, responses=problem_responses(401, 403)
)
async def post_reevaluate(
    principal: ScoresWriter,
    ctx: Ctx,
    pool: PoolDep,
    as_of: Annotated[
        Instant | None, Query(description="The moment to score for; now when absent.")
    ] = None,
) -> Any:
    """Re-score stale contacts now (what the periodic re-evaluation does) and publish
    the tier and band changes time caused."""
    moment = as_of or ctx.clock()
    evaluated, published = await reevaluate(pool, ctx, as_of=moment)
    return ReevaluationOut(as_of=moment, evaluated=evaluated, published=published)
