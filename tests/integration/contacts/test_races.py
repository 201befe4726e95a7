"""Two events for the same new person at the same moment end as one contact."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from crm_contacts import handlers
from crm_contacts.app import MIGRATIONS, load_lifecycle_rules
from crm_kit.consumer import TRANSIENT_ERRORS
from crm_kit.db import create_pool
from crm_kit.migrations import migrate
from tests.integration.contacts.conftest import Service, raw_event
from tests.support.kafka import eventually


async def test_two_transactions_creating_the_same_person_at_once_leave_one_contact(
    make_settings,
) -> None:
    settings = make_settings()
    await migrate(settings.database_url, "contacts", MIGRATIONS)
    ctx = handlers.Context.from_settings(
        settings, load_lifecycle_rules(settings.lifecycle_rules_path)
    )
    first = raw_event("signup", identity={"email": "twin@example.com"})
    second = raw_event(identity={"email": "TWIN@example.com", "phone": "020 7946 0000"})
    pool = await create_pool(settings.database_url, min_size=3, max_size=3)
    try:
        async with pool.acquire() as a, pool.acquire() as b:
            tx = a.transaction()
            await tx.start()
            await handlers.resolve_interactions(a, [first], ctx)

            async def second_consumer() -> None:
                async with b.transaction():
                    await handlers.resolve_interactions(b, [second], ctx)

            racing = asyncio.create_task(second_consumer())

            async def waits_for_the_first() -> bool:
                state = await pool.fetchval(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                    b.get_server_pid(),
                )
                return state == "Lock"

            await eventually(waits_for_the_first)
            await tx.commit()
            with pytest.raises(asyncpg.UniqueViolationError):
                await racing

            # The kit's consumer runner retries this error; the retry finds the first's row.
            assert asyncpg.UniqueViolationError in TRANSIENT_ERRORS
            await second_consumer()

        contacts = await pool.fetch("SELECT id FROM contacts")
        timeline = await pool.fetch("SELECT DISTINCT contact_id FROM timeline")
        identifiers = await pool.fetch("SELECT kind FROM identifiers ORDER BY kind")
    finally:
        await pool.close()

    assert len(contacts) == 1
    assert [r["contact_id"] for r in timeline] == [contacts[0]["id"]]
    assert [r["kind"] for r in identifiers] == ["email", "phone"]


async def test_two_consumer_instances_sharing_the_partitions_make_one_contact_per_person(
    start_service,
) -> None:
    one: Service = await start_service()
    await start_service()  # same group: the partitions are shared between the two
    people = [f"person{n}@example.com" for n in range(12)]
    events = [
        raw_event(kind, identity={"email": email if kind == "signup" else email.upper()})
        for email in people
        for kind in ("signup", "page_view")
    ]
    # Keyed apart, so that the two events of one person usually land on different
    # partitions, consumed by different instances at the same moment.
    await one.publish(*events)
    await one.wait_applied(*(e.id for e in events), timeout=40)

    rows = await one.fetch(
        "SELECT i.value, count(DISTINCT t.id) AS entries FROM identifiers i "
        "JOIN contacts c ON c.id = i.contact_id JOIN timeline t ON t.contact_id = c.id "
        "WHERE c.status = 'active' GROUP BY i.value"
    )
    contacts = await one.fetch("SELECT id FROM contacts")

    assert len(contacts) == len(people)
    assert {r["value"]: r["entries"] for r in rows} == {email: 2 for email in people}
