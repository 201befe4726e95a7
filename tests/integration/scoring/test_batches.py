"""A batch is applied in a handful of statements, and scores as one event at a time does."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest_asyncio

from crm_contracts import CloudEvent, new_event
from crm_contracts import contacts as ct
from crm_contracts.base import Channel
from crm_kit.db import create_pool
from crm_kit.migrations import migrate
from crm_scoring import repository as repo
from crm_scoring.app import MIGRATIONS
from crm_scoring.domain import score
from crm_scoring.handlers import Context, apply_events, reevaluate
from crm_scoring.model import load_model
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import interaction
from tests.support.statements import statements_on

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KINDS = ["page_view", "email_clicked", "purchase", "complaint", "chat", "refund", "feedback"]


def ticking(step: timedelta) -> Callable[[], datetime]:
    """A clock that moves `step` forward every time it is read."""
    ticks = itertools.count()
    return lambda: START + step * next(ticks)


@pytest_asyncio.fixture
async def pool(scoring_settings: ScoringSettings) -> AsyncIterator[asyncpg.Pool]:
    await migrate(scoring_settings.database_url, "scoring", MIGRATIONS)
    opened = await create_pool(scoring_settings.database_url, min_size=1, max_size=2)
    yield opened
    await opened.close()


def history(contacts: Sequence[str], per_contact: int, seed: int) -> list[CloudEvent]:
    """Interactions for these contacts over the three years before START, shuffled."""
    rng = random.Random(seed)
    events = []
    for contact in contacts:
        for _ in range(per_contact):
            kind = rng.choice(KINDS)
            amount = str(rng.randrange(5, 900)) if kind in ("purchase", "refund") else None
            when = START - timedelta(seconds=rng.randrange(3 * 365 * 86_400))
            channel = rng.choice([Channel.WEB, Channel.EMAIL, Channel.STORE])
            events.append(interaction(contact, kind, channel=channel, amount=amount, time=when))
    rng.shuffle(events)
    return events


async def apply_counting(pool: asyncpg.Pool, events: Sequence[CloudEvent], ctx: Context) -> int:
    """Apply events in one transaction; the number of statements it took."""
    async with pool.acquire() as conn, statements_on(conn) as statements, conn.transaction():
        await apply_events(conn, events, ctx)
    return len(statements)


async def test_a_batch_of_many_contacts_takes_no_more_statements_than_a_small_one(
    scoring_settings: ScoringSettings, pool: asyncpg.Pool
) -> None:
    ctx = Context(load_model(), scoring_settings, clock=ticking(timedelta(minutes=5)))
    small = [f"c-small-{i}" for i in range(2)]
    large = [f"c-large-{i}" for i in range(40)]
    for contacts, seed in ((small, 1), (large, 2)):  # known contacts, with aggregates
        await apply_counting(pool, history(contacts, 3, seed), ctx)

    # Both batches publish changes (a big purchase moves the value scores of everyone).
    big = [interaction(c, "purchase", amount="5000", time=START) for c in small]
    few = await apply_counting(pool, big, ctx)  # 2 events
    many = await apply_counting(pool, history(large, 10, 4), ctx)  # 400 events

    assert many == few
    # BEGIN, inbox, subjects, locks, subjects (survivors and erased ids in one), facts,
    # scores, crossed facts, scores, history, outbox, COMMIT
    assert many == 12


def created(contact_id: str) -> CloudEvent:
    """contacts' news of a new contact: nothing scoring acts on."""
    return new_event(
        ct.CONTACT_CREATED,
        ct.ContactCreated(contact_id=contact_id, stage=ct.LifecycleStage.PROSPECT),
        source="urn:crm:contacts",
    )


async def test_contact_events_between_interactions_add_no_statements_to_a_batch(
    scoring_settings: ScoringSettings, pool: asyncpg.Pool
) -> None:
    # contacts publishes about two contact events per interaction (created, updated,
    # lifecycle): they share scoring's input, and must not cut a batch into small runs.
    ctx = Context(load_model(), scoring_settings, clock=ticking(timedelta(minutes=5)))
    run = uuid.uuid4().hex[:6]
    people = [f"c-{run}-mixed-{i}" for i in range(30)]
    await apply_counting(pool, history(people, 2, seed=8), ctx)
    mixed: list[CloudEvent] = []
    for event in history(people, 4, seed=9):
        mixed += [event, created(f"c-{run}-new-{uuid.uuid4().hex[:6]}")]
    assert await apply_counting(pool, mixed, ctx) == 12  # as many as interactions alone


async def test_a_batch_scores_as_its_events_one_at_a_time_and_as_the_full_recompute(
    scoring_settings: ScoringSettings, pool: asyncpg.Pool
) -> None:
    ctx = Context(load_model(), scoring_settings, clock=ticking(timedelta(hours=3)))
    run = uuid.uuid4().hex[:6]
    batched = [f"c-{run}-batch-{i}" for i in range(6)]
    single = [f"c-{run}-single-{i}" for i in range(6)]
    events = history(batched, 40, seed=5)
    # The same history for twin contacts, other interaction ids (facts are global).
    twins = history(single, 40, seed=5)
    for start in range(0, len(events), 60):
        async with pool.acquire() as conn, conn.transaction():
            await apply_events(conn, events[start : start + 60], ctx)
    for event in twins:
        async with pool.acquire() as conn, conn.transaction():
            await apply_events(conn, [event], ctx)
    later = START + timedelta(days=200)  # every window edge moves
    await reevaluate(pool, ctx, as_of=later)

    async with pool.acquire() as conn:
        stored = await repo.contacts(conn, batched + single)
        facts = await repo.facts_of(conn, batched + single)
    for mine, twin in zip(batched, single, strict=True):
        assert stored[mine].card == stored[twin].card
        assert stored[mine].as_of == later
        assert stored[mine].card == score(facts[mine], later, ctx.model)
