"""Score changes: the local projection of each contact's value tier and churn band, and the
re-prioritisation of open cases whose contact's standing changed.

A batch takes four statements whatever its size (who is merged or erased, the projection of
its contacts, one upsert; the open cases of the contacts whose standing changed), plus the
writes of the cases it re-prioritises. The latest score by event time wins: a late, older
score change does not override a newer one.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crm_cases.handlers.casework import Casework
from crm_cases.handlers.context import Context, Publisher
from crm_cases.repository import scores as score_rows
from crm_cases.repository.scores import Standing
from crm_contracts import CloudEvent
from crm_contracts import scores as sc
from crm_kit import subjects


async def record_score_changes(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Project a batch of score changes; re-prioritise what they change."""
    changes = [(event, event.data_as(sc.ScoreChanged)) for event in events]
    if not changes:
        return
    now = await subjects.current(conn, {data.contact_id for _, data in changes})
    latest: dict[str, tuple[CloudEvent, Standing]] = {}
    for event, data in changes:
        contact_id = now.survivor_of(data.contact_id)
        if now.is_erased(data.contact_id):
            continue
        standing = Standing(
            contact_id, data.new.value_tier.value, data.new.churn_band.value, event.time, event.id
        )
        held = latest.get(contact_id)
        if held is None or standing.score_time >= held[1].score_time:
            latest[contact_id] = (event, standing)
    if not latest:
        return
    before = await score_rows.standings(conn, list(latest))
    fresh = {
        contact_id: pair
        for contact_id, pair in latest.items()
        if contact_id not in before or pair[1].score_time >= before[contact_id].score_time
    }
    await score_rows.save_standings(conn, [standing for _, standing in fresh.values()])
    moved = [
        contact_id
        for contact_id, (_, standing) in fresh.items()
        if contact_id not in before
        or (before[contact_id].value_tier, before[contact_id].churn_band)
        != (standing.value_tier, standing.churn_band)
    ]
    if moved:
        await _reprioritise(conn, ctx, {c: fresh[c] for c in moved})


async def _reprioritise(
    conn: asyncpg.Connection, ctx: Context, changed: dict[str, tuple[CloudEvent, Standing]]
) -> None:
    """Open cases whose priority follows value take the priority the new standing asks for,
    naming the score change as the cause."""
    out = Publisher(ctx)
    work = await Casework.load(conn, ctx, out, contact_ids=sorted(changed))
    for case in list(work.cases.values()):
        if not case.is_open or case.priority_set_by != "value":
            continue
        event, standing = changed[case.contact_id]
        priority = ctx.priority_for(standing)
        if priority != case.priority:
            work.reprioritise(
                case,
                priority,
                event.time,
                set_by="value",
                cause=event,
                reason=f"value tier {standing.value_tier}, churn band {standing.churn_band}",
            )
    await work.flush(conn)
