"""The SLA timer: breaches clocks whose deadline has passed, once.

Each round takes the cases with a clock due by now (the context's clock), locked with SKIP
LOCKED so that two replicas never hold the same case, and breaches what is overdue in one
transaction: the breach record (primary key: case, metric, cycle) and the event with its
deterministic id are written together, so a restart, a redelivery or a second replica can
never announce a breach twice. A round that found a full batch is followed at once by
another (crm_kit.jobs)."""

from __future__ import annotations

import asyncpg

from crm_cases.handlers.casework import Casework
from crm_cases.handlers.context import Context, Publisher
from crm_cases.repository import sla as sla_rows

BATCH = 200


async def breach_due(pool: asyncpg.Pool, ctx: Context) -> int:
    """One round: breach what is due. Non-zero when the batch was full (more may be due)."""
    async with pool.acquire() as conn, conn.transaction():
        now = ctx.clock()
        case_ids = await sla_rows.due_case_ids(conn, now, limit=BATCH)
        if not case_ids:
            return 0
        work = await Casework.load(conn, ctx, Publisher(ctx), case_ids=case_ids)
        for case in work.cases.values():
            work.breach_due(case, now)
        await work.flush(conn)
    return len(case_ids) if len(case_ids) == BATCH else 0
