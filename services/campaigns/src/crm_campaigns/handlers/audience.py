"""Segment answers that change by time alone, and segments evaluated for the first time.

    reevaluate_due   the contacts whose answer for some segment changes by now (the moment
                     is stored with each membership: `changes_at`), evaluated as of now;
                     nobody else is looked at.
    backfill         a new or changed segment, evaluated once over every known contact, a
                     page per round (its members enter it like any other entry).

Both run as jobs; each round is one transaction whose rows other replicas skip.
"""

from __future__ import annotations

import asyncpg

from crm_campaigns import segments
from crm_campaigns.handlers.context import Context, Publisher
from crm_campaigns.handlers.journeys import Journeys, Segment
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository import views as view_rows

PAGE = 500


async def reevaluate_due(pool: asyncpg.Pool, *, ctx: Context) -> int:
    """One round of the segment timer; how many contacts were evaluated."""
    async with pool.acquire() as conn, conn.transaction():
        now = ctx.clock()
        due = await segment_rows.due_contacts(conn, now=now, limit=PAGE)
        if not due:
            return 0
        work = await Journeys.load(conn, ctx, Publisher(ctx), due)
        for contact_id in due:
            work.evaluate(contact_id, as_of=now, cause=None)
        await work.flush(conn)
        return len(due)


async def backfill(pool: asyncpg.Pool, *, ctx: Context) -> int:
    """One page of one segment's first evaluation; how many contacts it covered."""
    async with pool.acquire() as conn, conn.transaction():
        row = await segment_rows.backfilling(conn)
        if row is None:
            return 0
        page = await view_rows.page_of_views(conn, after=row.backfill_after, limit=PAGE)
        if page:
            segment = Segment(row.id, segments.parse_rule(row.rule), backfilling=True)
            work = await Journeys.load(
                conn, ctx, Publisher(ctx), [v.contact_id for v in page], segments=[segment]
            )
            now = ctx.clock()
            for view in page:
                work.evaluate(view.contact_id, as_of=now, cause=None)
            await work.flush(conn)
        done = len(page) < PAGE
        await segment_rows.advance_backfill(conn, row.id, None if done else page[-1].contact_id)
        return max(len(page), 1)
