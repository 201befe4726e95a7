"""Figures, not assertions: how fast raw interactions are resolved, a batch of 500 at a time,
set-based and one by one, on the test Postgres. Skipped unless CRM_BATCH_FIGURES=1:

    CRM_BATCH_FIGURES=1 .venv/bin/pytest tests/integration/contacts/test_batch_figures.py -s
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import asyncpg
import pytest

from crm_contacts import handlers
from crm_contacts.app import MIGRATIONS, load_lifecycle_rules
from crm_contacts.handlers.context import Publisher
from crm_contacts.handlers.resolution import record_interaction
from crm_contacts.settings import ContactsSettings
from crm_contracts import CloudEvent, decode_json
from crm_kit.db import create_pool
from crm_kit.migrations import migrate
from crm_stack.simulate.journeys import SimConfig, TrafficGenerator
from tests.integration.contacts.conftest import T0, purchase, raw_event

pytestmark = pytest.mark.skipif(
    os.environ.get("CRM_BATCH_FIGURES") != "1", reason="figures only on demand"
)
BATCH = 500
ROUNDS = 4


def simple_batches() -> list[list[CloudEvent]]:
    """Half returning people, half new ones with two events each; a quarter with traits."""
    batches = []
    for round_ in range(ROUNDS):
        events = []
        for n in range(BATCH):
            person = f"known{n}" if n % 2 == 0 else f"new{round_}-{n // 4}"
            identity = {"email": f"{person}@example.com", "anonymous_id": f"ck-{person}"}
            at = T0 + timedelta(seconds=n, days=round_)
            if n % 4 == 2:
                events.append(purchase(identity=identity, time=at))
            else:
                traits = {"traits": {"first_name": "P"}} if n % 4 == 0 else {}
                events.append(raw_event("page_view", identity=identity, time=at, **traits))
        batches.append(events)
    return batches


def simulated_batches() -> list[list[CloudEvent]]:
    """The simulator's traffic (merges, consent, late events...), duplicates left out as the
    inbox would."""
    traffic = TrafficGenerator(SimConfig(seed=7, contacts=1500))
    events = (decode_json(e.event) for e in traffic if not e.duplicate)
    return [list(itertools.islice(events, BATCH)) for _ in range(ROUNDS)]


async def _one_by_one(conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx) -> None:
    out = Publisher(ctx)
    for event in events:
        await record_interaction(conn, event, ctx, out)
    await out.flush(conn)


@pytest.mark.parametrize("workload", [simple_batches, simulated_batches])
@pytest.mark.parametrize("path", ["set_based", "one_by_one"])
async def test_figures(
    make_settings: Callable[..., ContactsSettings],
    workload: Callable[[], list[list[CloudEvent]]],
    path: str,
) -> None:
    settings = make_settings()
    await migrate(settings.database_url, "contacts", MIGRATIONS)
    ctx = handlers.Context.from_settings(
        settings, load_lifecycle_rules(settings.lifecycle_rules_path)
    )
    resolve = handlers.resolve_interactions if path == "set_based" else _one_by_one
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            statements: list[str] = []
            conn.add_query_logger(lambda record: statements.append(record.query))
            for n, batch in enumerate(workload()):
                statements.clear()
                started = time.perf_counter()
                async with conn.transaction():
                    await resolve(conn, batch, ctx)
                took = time.perf_counter() - started
                print(
                    f"\n{workload.__name__} {path} batch {n}: {len(batch)} events in "
                    f"{took:.3f} s = {len(batch) / took:.0f} events/s, {len(statements)} "
                    "statements"
                )
    finally:
        await pool.close()
