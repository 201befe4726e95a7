"""Raw interactions a batch at a time: what batching makes possible to get wrong.

Most tests hand a batch straight to the handler, in one transaction, as the consumer runner
does, so that the batch is exactly the one written here; the poison test goes through Kafka.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest.mock import ANY

import asyncpg
import pytest
import pytest_asyncio

from crm_contacts import handlers
from crm_contacts import repository as repo
from crm_contacts.app import MIGRATIONS, load_lifecycle_rules
from crm_contacts.handlers.batch import resolve_batch
from crm_contacts.handlers.context import Publisher
from crm_contacts.handlers.resolution import record_interaction
from crm_contacts.settings import ContactsSettings
from crm_contracts import CloudEvent, decode_record, encode_binary, new_event
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import scores as sc
from crm_contracts.examples import example_data
from crm_kit.consumer import PermanentEventError
from crm_kit.db import create_pool
from crm_kit.migrations import migrate
from crm_kit.outbox import OutboxMessage
from tests.integration.contacts.conftest import T0, of_type, purchase, raw_event
from tests.support.kafka import header, produce
from tests.support.statements import statements_on

ADA = {"email": "ada@example.com"}
ADA_PHONE = {"email": "ada@example.com", "phone": "020 7946 0000"}
BOB = {"email": "bob@example.com"}


@dataclass
class Engine:
    """The contacts handlers on a migrated test database, without consumers."""

    pool: asyncpg.Pool
    ctx: handlers.Context

    async def apply(self, *events: CloudEvent) -> None:
        """One batch, in one transaction, as the consumer runner hands it over."""
        async with self.pool.acquire() as conn, conn.transaction():
            await handlers.resolve_interactions(conn, events, self.ctx)

    async def published(self) -> list[CloudEvent]:
        """Every event written to the outbox, in outbox order."""
        rows = await self.pool.fetch("SELECT value, headers FROM kit_outbox ORDER BY id")
        return [
            decode_record(
                bytes(r["value"]),
                [(name, _b64(value)) for name, value in r["headers"]],
            )
            for r in rows
        ]

    async def contact_of(self, **identifier: str) -> str:
        [(kind, value)] = identifier.items()
        row = await self.pool.fetchrow(
            "SELECT contact_id FROM identifiers WHERE kind = $1 AND value = $2", kind, value
        )
        assert row is not None
        return str(row["contact_id"])

    async def timeline_ids(self, contact_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT event_id FROM timeline WHERE contact_id = $1 ORDER BY time, id", contact_id
        )
        return [r["event_id"] for r in rows]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


@pytest_asyncio.fixture
async def engine(make_settings: Callable[..., ContactsSettings]) -> AsyncIterator[Engine]:
    settings = make_settings()
    await migrate(settings.database_url, "contacts", MIGRATIONS)
    ctx = handlers.Context.from_settings(
        settings, load_lifecycle_rules(settings.lifecycle_rules_path)
    )
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        yield Engine(pool, ctx)
    finally:
        await pool.close()


def resolved_of(events: Sequence[CloudEvent]) -> list[it.InteractionResolved]:
    return [e.data_as(it.InteractionResolved) for e in of_type(events, it.INTERACTION_RESOLVED)]


async def test_two_events_of_one_new_person_in_one_batch_make_one_contact(
    engine: Engine,
) -> None:
    signup = raw_event("signup", identity=ADA, traits={"first_name": "Ada"}, time=T0)
    order = purchase(identity=ADA_PHONE, time=T0 + timedelta(minutes=5))

    await engine.apply(signup, order)

    contacts = await engine.pool.fetch("SELECT id, stage, first_name FROM contacts")
    assert [(r["stage"], r["first_name"]) for r in contacts] == [("first_time_customer", "Ada")]
    contact_id = contacts[0]["id"]
    assert await engine.timeline_ids(contact_id) == [signup.id, order.id]
    assert await engine.contact_of(phone="+442079460000") == contact_id
    events = await engine.published()
    assert [(e.type, e.causationid) for e in events] == [
        (ct.CONTACT_CREATED, signup.id),
        (ct.CONTACT_IDENTITY_LINKED, signup.id),
        (ct.CONTACT_LIFECYCLE_CHANGED, signup.id),
        (it.INTERACTION_RESOLVED, signup.id),
        (ct.CONTACT_IDENTITY_LINKED, order.id),
        (ct.CONTACT_LIFECYCLE_CHANGED, order.id),
        (it.INTERACTION_RESOLVED, order.id),
    ]
    assert {e.subject for e in events} == {contact_id}
    # Each derived event keeps the time of the interaction that caused it.
    assert [e.time for e in events] == [T0] * 4 + [T0 + timedelta(minutes=5)] * 3
    [created] = of_type(events, ct.CONTACT_CREATED)
    assert created.data_as(ct.ContactCreated).stage == ct.LifecycleStage.PROSPECT


async def test_a_merge_proved_inside_a_batch_folds_the_two_new_people_together(
    engine: Engine,
) -> None:
    by_email = raw_event("signup", identity=ADA, time=T0)
    by_phone = purchase(identity={"phone": "+44 20 7946 0000"}, time=T0 + timedelta(minutes=1))
    proof = raw_event(identity=ADA_PHONE, time=T0 + timedelta(minutes=2))
    after = raw_event(identity={"phone": "020 7946 0000"}, time=T0 + timedelta(minutes=3))

    await engine.apply(by_email, by_phone, proof, after)

    rows = await engine.pool.fetch("SELECT id, status, merged_into FROM contacts ORDER BY id")
    [survivor] = [r["id"] for r in rows if r["status"] == "active"]
    [merged] = [r for r in rows if r["status"] == "merged"]
    assert merged["merged_into"] == survivor
    assert await engine.contact_of(email="ada@example.com") == survivor
    assert await engine.contact_of(phone="+442079460000") == survivor
    assert await engine.timeline_ids(survivor) == [by_email.id, by_phone.id, proof.id, after.id]
    events = await engine.published()
    [merge] = of_type(events, ct.CONTACT_MERGED)
    assert merge.causationid == proof.id
    assert merge.data_as(ct.ContactMerged).merged_ids == [merged["id"]]
    assert [r.contact_id for r in resolved_of(events)][2:] == [survivor, survivor]


async def test_a_late_event_of_an_erased_person_in_a_batch_is_dropped_and_the_rest_apply(
    engine: Engine,
) -> None:
    signup = raw_event("signup", identity=ADA_PHONE, time=T0)
    await engine.apply(signup)
    erased_id = await engine.contact_of(email="ada@example.com")
    async with engine.pool.acquire() as conn, conn.transaction():
        await handlers.erase_contact(
            conn,
            engine.ctx,
            contact_id=erased_id,
            requested_by="agent-7",
            reason=None,
            correlation_id="corr-1",
        )
    late = purchase(identity={"phone": "+44 20 7946 0000"}, time=T0 + timedelta(hours=1))
    late_by_id = raw_event(identity={"contact_id": erased_id}, time=T0 + timedelta(hours=2))
    other = raw_event(identity={"email": "bob@example.com"}, time=T0 + timedelta(hours=3))
    back = raw_event(identity=ADA, time=datetime.now(UTC) + timedelta(days=1))

    await engine.apply(late, late_by_id, other, back)

    resolved = resolved_of(await engine.published())
    assert [r.interaction_id for r in resolved][-2:] == [other.id, back.id]
    assert late.id not in {r.interaction_id for r in resolved}
    assert late_by_id.id not in {r.interaction_id for r in resolved}
    assert await engine.timeline_ids(erased_id) == [signup.id]
    returning = await engine.contact_of(email="ada@example.com")
    assert returning != erased_id
    assert await engine.timeline_ids(returning) == [back.id]
    phone = await engine.pool.fetchval("SELECT count(*) FROM identifiers WHERE kind = 'phone'")
    assert phone == 0


async def test_per_key_order_holds_across_batches_and_around_one_by_one_events(
    engine: Engine,
) -> None:
    times = [T0 + timedelta(minutes=n) for n in range(6)]
    first = [
        raw_event("signup", identity=ADA, time=times[0]),
        purchase(identity=ADA, time=times[1]),
    ]
    second = [
        purchase(identity=ADA, time=times[2]),
        raw_event("consent_given", identity=ADA, consent={"purpose": "marketing"}, time=times[3]),
        raw_event(identity=ADA_PHONE, time=times[4]),
        raw_event("review", identity={"phone": "+442079460000"}, time=times[5]),
    ]

    await engine.apply(*first)
    await engine.apply(*second)

    events = await engine.published()
    contact_id = await engine.contact_of(email="ada@example.com")
    assert {e.subject for e in events} == {contact_id}
    resolved = resolved_of(events)
    assert [r.interaction_id for r in resolved] == [e.id for e in first + second]
    assert [r.stage.value for r in resolved] == [
        "prospect",
        "first_time_customer",
        "repeat_customer",
        "repeat_customer",
        "repeat_customer",
        "advocate",
    ]
    stages = [
        e.data_as(ct.ContactLifecycleChanged).to_stage.value
        for e in of_type(events, ct.CONTACT_LIFECYCLE_CHANGED)
    ]
    assert stages == ["prospect", "first_time_customer", "repeat_customer", "advocate"]
    # Everything each interaction caused is published in the order of the interactions.
    position = {e.id: n for n, e in enumerate(first + second)}
    causes = [position[e.causationid] for e in events if e.causationid is not None]
    assert causes == sorted(causes) and len(causes) == len(events)
    assert len(of_type(events, ct.CONTACT_CONSENT_CHANGED)) == 1
    assert await engine.timeline_ids(contact_id) == [e.id for e in first + second]


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_apply(
    make_settings: Callable[..., ContactsSettings], start_service: Callable[..., Any]
) -> None:
    settings = make_settings()
    good = [
        raw_event("signup", identity={"email": "p1@example.com"}, time=T0),
        raw_event(identity={"email": "p2@example.com"}, time=T0),
    ]
    poison = raw_event(identity={"phone": "123"}, time=T0)  # no usable identifier
    more = [
        purchase(identity={"email": "p1@example.com", "phone": "020 7946 0001"}, time=T0),
        raw_event(identity={"email": "p3@example.com"}, time=T0),
    ]
    # Published before the service starts, on one key: its first fetch is one batch.
    await produce(
        settings.kafka_bootstrap_servers,
        settings.interactions_raw_topic,
        [encode_binary(e, key="one-key") for e in [*good, poison, *more]],
    )
    service = await start_service()

    [(reason, letter)] = await service.dead_letters(1)
    await service.wait_applied(*(e.id for e in good + more))

    assert reason == "invalid_identity"
    assert header(letter, "ce_id") == poison.id
    rows = await service.fetch("SELECT count(*) AS n FROM contacts")
    assert rows[0]["n"] == 3
    p1 = await service.wait_contact(email="p1@example.com")
    assert {e["event_id"] for e in await service.timeline(p1["id"])} == {good[0].id, more[0].id}


# -- set-based: statements per batch -----------------------------------------------------------


def simple_batch(size: int, round_: int) -> list[CloudEvent]:
    """Returning people (stored in round 0) and new people with two events each, some with
    traits, some with consent."""
    events = []
    for n in range(size):
        person = f"known{n}" if n % 2 == 0 else f"new{round_}-{n // 4}"
        kind = ("signup", "page_view", "purchase", "email_clicked")[n % 4]
        traits: dict[str, Any] = (
            {"traits": {"company": "Initech", "first_name": "P"}} if n % 4 == 0 else {}
        )
        if n % 8 == 2:
            traits["consent"] = {"purpose": "marketing", "granted": n % 16 == 2}
        make = purchase if kind == "purchase" else partial(raw_event, kind)
        events.append(
            make(
                identity={"email": f"{person}@example.com", "anonymous_id": f"ck-{person}"},
                time=T0 + timedelta(seconds=n, days=round_),
                **traits,
            )
        )
    return events


async def statements_for(engine: Engine, events: Sequence[CloudEvent]) -> int:
    async with (
        engine.pool.acquire() as conn,
        statements_on(conn) as statements,
        conn.transaction(),
    ):
        await handlers.resolve_interactions(conn, events, engine.ctx)
    return len(statements)


async def test_a_batch_of_simple_events_takes_a_few_statements_whatever_its_size(
    engine: Engine,
) -> None:
    async with engine.pool.acquire() as conn:
        await repo.insert_account(
            conn, account_id="acc-1", name="Initech", domain=None, industry=None
        )
    await engine.apply(*simple_batch(200, 0))  # the known people exist from now on

    fifty = await statements_for(engine, simple_batch(50, 1))
    two_hundred = await statements_for(engine, simple_batch(200, 2))

    print(f"\nstatements per batch: 50 events {fifty}, 200 events {two_hundred}")
    assert fifty == two_hundred
    assert two_hundred <= 16
    contacts = await engine.pool.fetchval("SELECT count(*) FROM contacts")
    assert contacts == 100 + 50 + (13 + 50)  # known, new in round 0, 1 and 2: one per person


# -- the same events as one by one -----------------------------------------------------------


_CONTACT_ID = re.compile(r"c-[0-9a-f]{32}")


def comparable(messages: Sequence[OutboxMessage], state: str) -> tuple[list[str], str]:
    """Messages and table rows with contact ids replaced by their order of appearance."""
    labels: dict[str, str] = {}

    def label(match: re.Match[str]) -> str:
        return labels.setdefault(match.group(0), f"contact-{len(labels)}")

    texts = []
    for message in messages:
        event = decode_record(message.record.value, list(message.record.headers))
        text = json.dumps(
            [
                message.topic,
                message.record.key.decode() if message.record.key else None,
                event.type,
                event.time.isoformat(),
                event.subject,
                event.causationid,
                event.correlationid,
                event.data.model_dump(mode="json"),
            ],
            sort_keys=True,
        )
        texts.append(_CONTACT_ID.sub(label, text))
    return texts, _CONTACT_ID.sub(label, state)


async def outcome(engine: Engine, events: Sequence[CloudEvent], *, batched: bool) -> Any:
    """What a batch publishes and leaves in the tables; rolled back afterwards."""
    async with engine.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            out = Publisher(engine.ctx)
            if batched:

                async def one_by_one(event: CloudEvent) -> None:
                    await record_interaction(conn, event, engine.ctx, out)

                await resolve_batch(conn, events, engine.ctx, out, one_by_one)
            else:
                for event in events:
                    await record_interaction(conn, event, engine.ctx, out)
            tables = [
                await conn.fetch(
                    "SELECT id, status, stage, first_name, company, job_title, custom, "
                    "traits_time, account_id, merged_into FROM contacts ORDER BY created_at, id"
                ),
                await conn.fetch(
                    "SELECT kind, value, contact_id, origin_contact_id, cause_event_id "
                    "FROM identifiers ORDER BY kind, value"
                ),
                await conn.fetch(
                    "SELECT event_id, contact_id, origin_contact_id, kind, data FROM timeline "
                    "ORDER BY event_id"
                ),
            ]
            state = json.dumps([[dict(r) for r in rows] for rows in tables], default=str)
            return comparable(out.messages, state)
        finally:
            await tx.rollback()


async def test_a_batch_publishes_and_stores_what_the_events_one_by_one_would(
    engine: Engine,
) -> None:
    async with engine.pool.acquire() as conn:
        for account, name in (("acc-acme", "Acme"), ("acc-initech", "Initech")):
            await repo.insert_account(
                conn, account_id=account, name=name, domain=None, industry=None
            )
    hour = timedelta(hours=1)
    await engine.apply(
        raw_event("signup", identity=ADA, traits={"company": "acme"}, time=T0),
        raw_event(identity={"phone": "+44 20 7946 0000"}, time=T0),
        raw_event("signup", identity={"email": "carol@example.com"}, time=T0),
        raw_event(identity={"email": "dave@example.com"}, time=T0),
        raw_event(
            "consent_given",
            identity={"email": "carol@example.com"},
            consent={"purpose": "marketing", "channel": "email"},
            time=T0 + hour / 2,
        ),
    )
    ada = await engine.contact_of(email="ada@example.com")
    dave = await engine.contact_of(email="dave@example.com")
    async with engine.pool.acquire() as conn:
        await repo.mark_deleted(conn, dave)
    eve = {"email": "eve@example.com"}
    batch = [
        raw_event(identity=ADA, time=T0 + hour),
        raw_event(
            "signup",
            identity=eve,
            traits={"first_name": "Eve", "company": "Initech"},
            time=T0 + 2 * hour,
        ),
        purchase(identity={**eve, "phone": "020 7946 0001"}, time=T0 + 3 * hour),
        purchase(identity=ADA, traits={"job_title": "Engineer"}, time=T0 + 4 * hour),
        purchase(
            identity={"email": "carol@example.com"},
            traits={"company": "Acme", "custom": {"tier": "gold"}},
            time=T0 + 5 * hour,
        ),
        raw_event(identity={"email": "dave@example.com"}, time=T0 + 6 * hour),
        raw_event(
            "consent_given", identity=ADA, consent={"purpose": "marketing"}, time=T0 + 7 * hour
        ),
        raw_event(
            identity={"email": "carol@example.com", "phone": "020 7946 0000"}, time=T0 + 8 * hour
        ),
        raw_event(identity={"phone": "+442079460000"}, time=T0 + 9 * hour),
        raw_event(identity=eve, traits={"first_name": "Late"}, time=T0 + hour),
        raw_event("call", identity={"contact_id": ada}, time=T0 + 10 * hour),
        purchase(identity={"phone": "+442079460001"}, time=T0 + 11 * hour),
        raw_event(  # older than the statement stored: recorded, changes nothing
            "consent_withdrawn",
            identity={"email": "carol@example.com"},
            consent={"purpose": "marketing", "channel": "email"},
            time=T0,
        ),
        withdrawn := raw_event(
            "consent_withdrawn", identity=ADA, consent={"purpose": "marketing"}, time=T0 + 12 * hour
        ),
        raw_event(
            withdrawn.data.kind, identity=ADA, consent={"purpose": "marketing"}, time=withdrawn.time
        ),
        raw_event(
            "signup",
            identity={"email": "gina@example.com"},
            consent={"purpose": "marketing", "granted": True},
            time=T0 + 13 * hour,
        ),
    ]

    one_by_one = await outcome(engine, batch, batched=False)
    batched = await outcome(engine, batch, batched=True)

    assert batched[0] == one_by_one[0]
    assert batched[1] == one_by_one[1]
    assert len(one_by_one[0]) > 25


# -- case, campaign and score events a batch at a time ------------------------------------------


def score_event(contact_id: str, engagement: int, *, time: datetime) -> CloudEvent:
    data = example_data(sc.SCORE_CHANGED)
    new = data.new.model_copy(update={"engagement": engagement})
    changed = data.model_copy(update={"contact_id": contact_id, "new": new})
    return new_event(sc.SCORE_CHANGED, changed, source="urn:crm:scoring", time=time)


async def apply_related(engine: Engine, *events: CloudEvent) -> None:
    async with engine.pool.acquire() as conn, conn.transaction():
        await handlers.record_related_events(conn, events, engine.ctx)


async def stored_scores(engine: Engine) -> list[tuple[str, str, int, str]]:
    rows = await engine.pool.fetch(
        "SELECT origin_contact_id, contact_id, scores, event_id FROM scores "
        "ORDER BY origin_contact_id"
    )
    return [
        (r["origin_contact_id"], r["contact_id"], r["scores"]["engagement"], r["event_id"])
        for r in rows
    ]


async def test_scores_of_one_batch_keep_the_latest_by_event_time_the_last_of_a_tie(
    engine: Engine,
) -> None:
    await engine.apply(purchase(identity=ADA, time=T0))
    ada = await engine.contact_of(email="ada@example.com")
    later, latest, tie = (
        score_event(ada, 10, time=T0 + timedelta(hours=1)),
        score_event(ada, 20, time=T0 + timedelta(hours=2)),
        score_event(ada, 30, time=T0 + timedelta(hours=2)),
    )

    await apply_related(engine, later, latest, tie, score_event(ada, 40, time=T0))

    assert await stored_scores(engine) == [(ada, ada, 30, tie.id)]
    await apply_related(engine, score_event(ada, 50, time=T0 + timedelta(hours=1)))
    assert await stored_scores(engine) == [(ada, ada, 30, tie.id)]
    assert len(await engine.timeline_ids(ada)) == 6


async def test_related_events_of_a_merged_contact_go_to_its_survivor_and_unknown_ones_fail(
    engine: Engine,
) -> None:
    await engine.apply(purchase(identity=ADA, time=T0), purchase(identity=BOB, time=T0))
    ada = await engine.contact_of(email="ada@example.com")
    bob = await engine.contact_of(email="bob@example.com")
    async with engine.pool.acquire() as conn, conn.transaction():
        await handlers.merge_by_hand(
            conn, engine.ctx, survivor_id=ada, merged_ids=[bob], actor="agent", correlation_id="x"
        )

    await apply_related(engine, score_event(bob, 10, time=T0), score_event(ada, 20, time=T0))

    assert await stored_scores(engine) == sorted([(bob, ada, 10, ANY), (ada, ada, 20, ANY)])
    with pytest.raises(PermanentEventError, match="unknown contact"):
        await apply_related(
            engine, score_event(ada, 30, time=T0), score_event("c-nobody", 1, time=T0)
        )
