"""Two workers sharing the partitions, and rebuilding every score from the history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from crm_contracts.base import Channel
from crm_scoring.rebuild import rebuild
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import (
    erased,
    for_contact,
    interaction,
    merged,
    publish,
    read_changes,
    sla_breached,
)
from tests.support.kafka import eventually

SCORE_COLUMNS = (
    "contact_id, engagement, engagement_band, recency, frequency, monetary, value_tier, clv, "
    "churn_risk, churn_band, model_version"
)


async def _fetch(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _facts(dsn: str) -> int:
    return int((await _fetch(dsn, "SELECT count(*) FROM scoring_facts"))[0][0])


async def test_two_workers_share_the_partitions_and_one_leaving_hands_over(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    settings = scoring_settings.model_copy(update={"topic_partitions": 4})
    contacts = [f"c-{uuid.uuid4().hex[:10]}" for _ in range(24)]
    dsn = settings.database_url
    async with start_scoring(settings) as first:
        one = first.app.state.worker
        async with start_scoring(settings) as second:
            two = second.app.state.worker

            async def shared() -> bool:
                a, b = one.app.consumer.assignment(), two.app.consumer.assignment()
                return bool(a) and bool(b) and not (a & b) and len(a | b) == 16

            await eventually(shared, timeout=30)
            await publish(settings, *(interaction(c, "purchase", amount="10") for c in contacts))
            await eventually(lambda: _equals(_facts(dsn), len(contacts)))
            assert one.applied > 0 and two.applied > 0
        # The second worker left: the first one takes its partitions over.
        await eventually(lambda: _assigned_all(one, 16), timeout=30)
        await publish(settings, *(interaction(c, "complaint") for c in contacts))
        await eventually(lambda: _equals(_facts(dsn), 2 * len(contacts)))
        changes = await read_changes(
            settings, lambda cs: all(len(for_contact(cs, c)) >= 2 for c in contacts)
        )
    assert one.applied + two.applied == 2 * len(contacts)  # nothing lost, nothing twice
    for contact in contacts:
        mine = for_contact(changes, contact)
        assert len(mine) == 2
        assert mine[1].new.churn_risk > mine[0].new.churn_risk


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _assigned_all(worker: Any, count: int) -> bool:
    return len(worker.app.consumer.assignment()) == count


async def test_rebuild_from_the_history_gives_the_same_scores(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    moment = datetime.now(UTC) + timedelta(hours=1)  # later than every event below

    def clock() -> datetime:
        return moment

    a, b, c, gone, marker = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(5))
    events = [
        interaction(a, "purchase", channel=Channel.STORE, amount="120"),
        interaction(a, "email_clicked", channel=Channel.EMAIL),
        interaction(b, "purchase", amount="300", time=datetime.now(UTC) - timedelta(days=40)),
        interaction(b, "complaint", channel=Channel.PHONE),
        sla_breached(b),
        interaction(c, "purchase", amount="80"),
        merged(a, c),
        interaction(gone, "purchase", amount="55"),
        erased(gone),
        interaction(marker, "page_view"),
    ]
    dsn = scoring_settings.database_url
    query = f"SELECT {SCORE_COLUMNS} FROM scoring_contacts ORDER BY contact_id"
    async with start_scoring(clock=clock):
        for event in events:  # one by one: the order across topics matters for merges
            await publish(scoring_settings, event)
        await read_changes(scoring_settings, lambda cs: bool(for_contact(cs, marker)))
        live = await _fetch(dsn, query)

    result = await rebuild(scoring_settings, clock=clock, idle_seconds=3)
    rebuilt = await _fetch(dsn, query)

    assert result.events == len(events)
    assert rebuilt == live
    assert {row[0] for row in rebuilt} == {a, b, marker}
