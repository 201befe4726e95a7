"""Segments: defined by a rule tree, evaluated on every event, previewed on demand.

A new segment, or a new rule for one, is evaluated once over every known contact by the
backfill job (crm_campaigns.handlers.audience); from then on, only the contacts an event
touches are, and those whose answer changes by time alone, when it does. A preview
evaluates a rule now over the known contacts without storing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from crm_campaigns import segments
from crm_campaigns.handlers.context import Context, new_id
from crm_campaigns.repository import campaigns as campaign_rows
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository import views as view_rows
from crm_campaigns.repository.segments import SegmentRow
from crm_kit.errors import Conflict, InvalidInput, NotFound

PREVIEW_PAGE = 2000


@dataclass(frozen=True, slots=True)
class Preview:
    """How many known contacts a rule selects now, and some of them."""

    count: int
    evaluated: int
    sample: list[str]


def checked_rule(document: dict[str, Any]) -> segments.Rule:
    """A rule tree from its JSON; InvalidInput (422) saying what is wrong."""
    try:
        return segments.parse_rule(document)
    except ValueError as error:
        raise InvalidInput(str(error), reason="invalid-rule") from None


async def get_segment(conn: asyncpg.Connection, segment_id: str) -> SegmentRow:
    found = await segment_rows.segment(conn, segment_id)
    if found is None:
        raise NotFound("No segment with this id.", reason="segment-not-found")
    return found


async def create_segment(
    conn: asyncpg.Connection,
    *,
    name: str,
    description: str | None,
    rule: segments.Rule,
    segment_id: str | None = None,
) -> SegmentRow:
    """A new segment; the backfill evaluates it over every known contact."""
    segment_id = segment_id or new_id("seg")
    if await segment_rows.segment(conn, segment_id) is not None:
        raise Conflict("A segment with this id exists.", reason="segment-exists")
    return await segment_rows.insert_segment(
        conn, id=segment_id, name=name, description=description, rule=segments.rule_json(rule)
    )


async def update_segment(
    conn: asyncpg.Connection,
    segment_id: str,
    *,
    name: str,
    description: str | None,
    rule: segments.Rule,
) -> SegmentRow:
    """A new rule (a new version), evaluated again over every known contact."""
    if await segment_rows.segment(conn, segment_id, lock=True) is None:
        raise NotFound("No segment with this id.", reason="segment-not-found")
    return await segment_rows.update_segment(
        conn, id=segment_id, name=name, description=description, rule=segments.rule_json(rule)
    )


async def delete_segment(conn: asyncpg.Connection, segment_id: str) -> None:
    """Remove a segment no campaign targets."""
    await get_segment(conn, segment_id)
    users = [row.id for row in await campaign_rows.campaigns(conn) if row.segment_id == segment_id]
    if users:
        raise Conflict(
            "Campaigns target this segment.",
            reason="segment-in-use",
            extensions={"campaign_ids": users},
        )
    await segment_rows.delete_segment(conn, segment_id)


async def preview(
    conn: asyncpg.Connection, ctx: Context, rule: segments.Rule, *, sample: int
) -> Preview:
    """Evaluate a rule now over every known contact (nothing is stored)."""
    now = ctx.clock()
    count = evaluated = 0
    chosen: list[str] = []
    after = ""
    while page := await view_rows.page_of_views(conn, after=after, limit=PREVIEW_PAGE):
        for view in page:
            if segments.evaluate(rule, view, now).member:
                count += 1
                if len(chosen) < sample:
                    chosen.append(view.contact_id)
        evaluated += len(page)
        after = page[-1].contact_id
    return Preview(count=count, evaluated=evaluated, sample=chosen)
