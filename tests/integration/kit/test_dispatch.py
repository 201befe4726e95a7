"""Topic → type dispatch: each event to the handler of its topic and type; a type out of
place is dead-lettered by the kit, and so is an event a use case refuses."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crm_contracts import CloudEvent, KafkaRecord, dead_letter_topic, encode_binary, new_event
from crm_contracts import privacy as pv
from crm_contracts.interactions import INTERACTION_RECORDED
from crm_kit.dispatch import Dispatch, ignored
from crm_kit.errors import Gone
from crm_kit.settings import ServiceSettings
from tests.integration.conftest import effects
from tests.support.events import interaction
from tests.support.kafka import eventually, header, produce, read_until


def _erasure_requested() -> CloudEvent:
    data = pv.ErasureRequested(request_id="er-1", contact_id="c-1", requested_by="agent-7")
    return new_event(pv.PRIVACY_ERASURE_REQUESTED, data, source="urn:test:privacy")


async def _record(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
    await conn.executemany(
        'INSERT INTO effects (source, event_id, partition, "offset") VALUES ($1, $2, 0, 0)',
        [(e.source, e.id) for e in events],
    )


async def test_an_event_of_a_type_its_topic_does_not_carry_is_dead_lettered_as_unexpected(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("dispatch", partitions=1)
    before, stray, after = interaction(), _erasure_requested(), interaction()
    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [encode_binary(e, key="c-1") for e in (before, stray, after)],
    )
    runner = await start_consumer(topic, Dispatch({topic: {INTERACTION_RECORDED: _record}}))

    async def both_applied() -> list[str] | None:
        applied = await effects(pool)
        return applied if len(applied) == 2 else None

    assert await eventually(both_applied) == [before.id, after.id]
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert header(dead, "ce_id") == stray.id
    assert header(dead, "x-error-reason") == "unexpected_type"
    assert runner.dead_lettered == 1


async def test_each_handler_gets_its_events_once_per_batch_in_the_order_of_the_table(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("dispatch-order", partitions=1)
    calls: list[tuple[str, list[str]]] = []

    def handler(name: str):
        async def handle(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
            calls.append((name, [e.id for e in events]))
            await _record(conn, events)

        return handle

    first, second = handler("interactions"), handler("privacy")
    request, touches = _erasure_requested(), [interaction(), interaction()]
    # Both on the partition before the consumer starts: its first fetch holds all three.
    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [encode_binary(e, key="c-1") for e in (touches[0], request, touches[1])],
    )
    dispatch = Dispatch({topic: {INTERACTION_RECORDED: first, **dict.fromkeys(pv.EVENTS, second)}})
    await start_consumer(topic, dispatch)

    async def all_applied() -> list[str] | None:
        done = await effects(pool)
        return done if len(done) == 3 else None

    await eventually(all_applied)
    assert calls == [
        ("interactions", [touches[0].id, touches[1].id]),
        ("privacy", [request.id]),
    ]


async def test_an_event_a_use_case_refuses_is_dead_lettered_with_the_refusals_reason(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("refused", partitions=1)
    good, refused = interaction(), interaction()

    async def apply(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
        if any(e.id == refused.id for e in events):
            raise Gone("The contact was erased.", reason="contact-erased")
        await _record(conn, events)

    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [encode_binary(e, key="c-1") for e in (refused, good)],
    )
    runner = await start_consumer(topic, Dispatch({topic: {INTERACTION_RECORDED: apply}}))

    async def good_applied() -> bool:
        return good.id in await effects(pool)

    await eventually(good_applied)
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert header(dead, "ce_id") == refused.id
    assert header(dead, "x-error-reason") == "contact_erased"
    assert header(dead, "x-error-message") == "Gone: The contact was erased."
    assert runner.dead_lettered == 1
    assert await effects(pool) == [good.id]


async def test_an_ignored_type_is_committed_past_undecoded_and_never_claimed(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("dispatch-ignored", partitions=1)
    touch, passed_over, last = interaction(), _erasure_requested(), interaction()
    # A record of the ignored type whose value is not even JSON: it is never decoded.
    undecodable = encode_binary(_erasure_requested(), key="c-1")
    undecodable = KafkaRecord(key=undecodable.key, value=b"{not json", headers=undecodable.headers)
    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [
            encode_binary(touch, key="c-1"),
            encode_binary(passed_over, key="c-1"),
            undecodable,
            encode_binary(last, key="c-1"),
        ],
    )
    dispatch = Dispatch(
        {topic: {INTERACTION_RECORDED: _record, pv.PRIVACY_ERASURE_REQUESTED: ignored}}
    )
    assert dispatch.ignores(topic, pv.PRIVACY_ERASURE_REQUESTED)
    runner = await start_consumer(topic, dispatch)

    async def both_applied() -> list[str] | None:
        applied = await effects(pool)
        return applied if len(applied) == 2 else None

    assert await eventually(both_applied) == [touch.id, last.id]
    claimed = await pool.fetch("SELECT event_id FROM kit_inbox")
    assert {r["event_id"] for r in claimed} == {touch.id, last.id}
    assert runner.pipeline.ignored == 2
    assert runner.dead_lettered == 0
