"""Segments: define, read, change, delete, preview."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from crm_campaigns import segments as rules
from crm_campaigns.api.dependencies import Ctx, Reader, ResourceId, Writer
from crm_campaigns.handlers import segments as handlers
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository.segments import SegmentRow
from crm_kit.api import Input, in_transaction
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter(tags=["segments"])


class SegmentIn(Input):
    """A segment: a rule tree (all / any / not over stage, tier, scores, consent, traits,
    open cases and behaviour)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    rule: rules.SegmentRule


class SegmentOut(BaseModel):
    """A segment and how many contacts are in it now."""

    id: str
    name: str
    description: str | None
    rule: dict[str, Any]
    version: int
    backfilling: bool = Field(
        description="True while it is being evaluated over every known contact for the first "
        "time (after a create or a rule change)."
    )
    member_count: int
    created_at: datetime
    updated_at: datetime


class PreviewIn(Input):
    """A rule to evaluate now over every known contact, storing nothing."""

    rule: rules.SegmentRule


class PreviewOut(BaseModel):
    """How many known contacts a rule selects, and some of them."""

    count: int
    evaluated: int = Field(description="Known contacts evaluated.")
    sample: list[str] = Field(description="Contact ids of some members.")


async def _out(conn: ConnectionDep, row: SegmentRow) -> SegmentOut:
    return SegmentOut(
        id=row.id,
        name=row.name,
        description=row.description,
        rule=row.rule,
        version=row.version,
        backfilling=row.backfilling,
        member_count=await segment_rows.member_count(conn, row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/segments", response_model=list[SegmentOut])
async def list_segments(principal: Reader, conn: SnapshotDep) -> list[SegmentOut]:
    """Every segment."""
    return [await _out(conn, row) for row in await segment_rows.all_segments(conn)]


@router.get("/segments/{segment_id}", response_model=SegmentOut, responses=problem_responses(404))
async def get_segment(segment_id: ResourceId, principal: Reader, conn: SnapshotDep) -> SegmentOut:
    """One segment."""
    return await _out(conn, await handlers.get_segment(conn, segment_id))


@router.put(
    "/segments/{segment_id}",
    response_model=SegmentOut,
    responses={201: {"model": SegmentOut}, **problem_responses(404)},
)
async def put_segment(
    segment_id: ResourceId,
    body: SegmentIn,
    principal: Writer,
    conn: ConnectionDep,
    response: Response,
) -> SegmentOut:
    """Create a segment with this id (201), or give it a new rule (a new version); either is
    evaluated over every known contact by the backfill, then on every event."""
    async with conn.transaction():
        exists = await segment_rows.segment(conn, segment_id, lock=True) is not None
        if exists:
            row = await handlers.update_segment(
                conn, segment_id, name=body.name, description=body.description, rule=body.rule.root
            )
        else:
            row = await handlers.create_segment(
                conn,
                name=body.name,
                description=body.description,
                rule=body.rule.root,
                segment_id=segment_id,
            )
    response.status_code = 200 if exists else 201
    return await _out(conn, row)


@router.delete("/segments/{segment_id}", status_code=204, responses=problem_responses(404, 409))
async def delete_segment(segment_id: ResourceId, principal: Writer, conn: ConnectionDep) -> None:
    """Remove a segment no campaign targets."""
    await in_transaction(conn, handlers.delete_segment, segment_id)


@router.post("/segments/preview", response_model=PreviewOut)
async def preview(
    body: PreviewIn,
    principal: Reader,
    conn: ConnectionDep,
    ctx: Ctx,
    sample: Annotated[int, Query(ge=0, le=100)] = 20,
) -> PreviewOut:
    """Who a rule would select now: the count over every known contact and a sample."""
    found = await handlers.preview(conn, ctx, body.rule.root, sample=sample)
    return PreviewOut(count=found.count, evaluated=found.evaluated, sample=found.sample)
