"""Redelivery, replay, merges, erasure and dead letters, through the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer

from crm_contracts import decode_record
from crm_contracts.base import Channel
from crm_contracts.scores import ScoreChanged
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import (
    erased,
    for_contact,
    interaction,
    merged,
    publish,
    read_changes,
)
from tests.support.kafka import eventually, produce, read_until


def _contact() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def _on_the_partition_of(contact: str, partitions: int) -> str:
    """A new contact whose events land on `contact`'s partition (murmur2 of the key, as our
    producers), so that its score change comes after everything published before it there."""
    want = (murmur2(contact.encode()) & 0x7FFFFFFF) % partitions
    while True:
        other = _contact()
        if (murmur2(other.encode()) & 0x7FFFFFFF) % partitions == want:
            return other


async def _count(dsn: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def score_then_merge(settings: ScoringSettings, survivor: str, other: str) -> None:
    """Score a page view for `survivor` and a 500 EUR purchase for `other`, then merge them."""
    await publish(
        settings,
        interaction(survivor, "page_view"),
        interaction(other, "purchase", channel=Channel.STORE, amount="500"),
    )
    await read_changes(
        settings, lambda cs: bool(for_contact(cs, survivor)) and bool(for_contact(cs, other))
    )
    await publish(settings, merged(survivor, other))
    await read_changes(settings, lambda cs: len(for_contact(cs, survivor)) >= 2)


async def test_a_redelivered_or_replayed_event_changes_nothing(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    marker = _on_the_partition_of(contact, scoring_settings.topic_partitions)
    purchase = interaction(contact, "purchase", channel=Channel.STORE, amount="120")
    # The contacts service republishing the same interaction under a new event id.
    replayed = interaction(
        contact,
        "purchase",
        channel=Channel.STORE,
        amount="120",
        interaction_id=purchase.data.interaction_id,  # type: ignore[attr-defined]
        time=purchase.time,
    )
    async with start_scoring() as service:
        await publish(scoring_settings, purchase)
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1)
        before = await service.scores(contact)
        await publish(scoring_settings, purchase, purchase, replayed, interaction(marker))
        changes = await read_changes(scoring_settings, lambda cs: len(for_contact(cs, marker)) >= 1)
        after = await service.scores(contact)
        worker = service.app.state.worker

    assert len(for_contact(changes, contact)) == 1
    assert before is not None and after is not None
    assert after["scores"] == before["scores"]
    assert worker.duplicates == 2  # the same CloudEvent twice; the replay is a known fact
    facts = await _count(
        scoring_settings.database_url,
        "SELECT count(*) FROM scoring_facts WHERE contact_id = $1",
        contact,
    )
    assert facts == 1


async def test_a_merge_folds_the_merged_contacts_state_into_the_survivor(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    survivor, other = _contact(), _contact()
    async with start_scoring() as service:
        await publish(
            scoring_settings,
            interaction(survivor, "purchase", channel=Channel.STORE, amount="100"),
            interaction(other, "purchase", channel=Channel.WEB, amount="300"),
        )
        await read_changes(
            scoring_settings,
            lambda cs: bool(for_contact(cs, survivor)) and bool(for_contact(cs, other)),
        )
        alone = await service.scores(survivor)
        await publish(scoring_settings, merged(survivor, other))
        changes = await read_changes(
            scoring_settings, lambda cs: len(for_contact(cs, survivor)) >= 2
        )
        # A late event for the merged contact counts for the survivor.
        await publish(scoring_settings, interaction(other, "purchase", amount="50"))
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, survivor)) >= 3)
        folded = await service.scores(survivor)
        via_merged_id = await service.scores(other)
        current = await read_until(
            scoring_settings.kafka_bootstrap_servers,
            scoring_settings.scores_current_topic,
            lambda rs: any(r.key == other.encode() and r.value is None for r in rs),
        )

    change = for_contact(changes, survivor)[1]
    assert change.new.clv.amount > change.old.clv.amount  # type: ignore[union-attr]
    assert any(r.text.startswith(f"merged contact {other}: +") for r in change.reasons)
    assert alone is not None and folded is not None
    assert folded["scores"]["frequency"] == 3  # three purchases in the window: 100, 300, 50
    assert folded["merged_ids"] == [other]
    assert via_merged_id is not None and via_merged_id["contact_id"] == survivor
    assert any(r.key == other.encode() and r.value is None for r in current)


async def test_an_erasure_deletes_the_state_and_tombstones_the_current_scores(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact, marker = _contact(), _contact()
    async with start_scoring() as service:
        await publish(scoring_settings, interaction(contact, "purchase", amount="42"))
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1)
        await publish(scoring_settings, erased(contact))
        current = await read_until(
            scoring_settings.kafka_bootstrap_servers,
            scoring_settings.scores_current_topic,
            lambda rs: any(r.key == contact.encode() and r.value is None for r in rs),
        )
        # A late event for the erased contact is dropped.
        await publish(scoring_settings, interaction(contact, "page_view"), interaction(marker))
        changes = await read_changes(scoring_settings, lambda cs: bool(for_contact(cs, marker)))
        gone = await service.scores(contact)

    tombstone = [r for r in current if r.key == contact.encode()][-1]
    assert tombstone.value is None
    assert gone is None
    assert len(for_contact(changes, contact)) == 1
    for table in ("scoring_facts", "scoring_contacts", "scoring_history"):
        left = await _count(
            scoring_settings.database_url,
            f"SELECT count(*) FROM {table} WHERE contact_id = $1",
            contact,
        )
        assert left == 0, table


async def test_an_undecodable_event_goes_to_the_dead_letter_topic(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    from crm_contracts import KafkaRecord

    marker = _contact()
    async with start_scoring():
        await produce(
            scoring_settings.kafka_bootstrap_servers,
            scoring_settings.interactions_topic,
            [KafkaRecord(key=b"c-x", value=b"not json", headers=[])],
        )
        await publish(scoring_settings, interaction(marker))
        await read_changes(scoring_settings, lambda cs: bool(for_contact(cs, marker)))
        dead = await read_until(
            scoring_settings.kafka_bootstrap_servers,
            scoring_settings.interactions_topic + ".dlt",
            lambda rs: len(rs) >= 1,
        )
    headers = dict(dead[0].headers)
    assert dead[0].value == b"not json"
    assert headers["x-error-reason"] == b"malformed"


async def test_a_downstream_consumer_with_another_client_reads_score_changes(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    purchase = interaction(contact, "purchase", channel=Channel.STORE, amount="120")
    async with start_scoring():
        await publish(scoring_settings, purchase)

        def consume() -> list[ScoreChanged]:
            # What a BI or sales-app team would write with librdkafka (confluent-kafka).
            consumer = Consumer(
                {
                    "bootstrap.servers": scoring_settings.kafka_bootstrap_servers,
                    "group.id": f"downstream-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 1000,
                    "fetch.wait.max.ms": 20,
                }
            )
            consumer.subscribe([scoring_settings.scores_topic])
            found: list[ScoreChanged] = []
            try:
                for _ in range(300):
                    message = consumer.poll(0.1)
                    if message is None or message.error():
                        continue
                    event = decode_record(message.value(), message.headers() or [])
                    assert event.type == "crm.score.changed"
                    found.append(event.data_as(ScoreChanged))
                    # A reader without our contracts: plain JSON and ce_* headers.
                    plain = json.loads(message.value())
                    assert plain["contact_id"] == message.key().decode()
                    consumer.commit(message)
                    if found:
                        break
            finally:
                consumer.close()
            return found

        found = await asyncio.to_thread(consume)
    assert found and found[0].contact_id == contact
    assert found[0].cause_event_id == purchase.id
    assert found[0].new.value_tier == "silver"


async def test_the_worker_consumer_fetch_wait_is_our_setting(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    # What the hop costs is measured by `make bench` (bench.scoring_latency), not here:
    # faust's own 1,500 ms fetch wait made it about 750 ms per hop on the embedded broker.
    async with start_scoring() as service:
        worker = service.app.state.worker
        thread = worker.app.consumer._thread
        assert thread._consumer._fetch_max_wait_ms == scoring_settings.kafka_fetch_max_wait_ms
        assert thread._consumer._fetcher._fetch_max_wait_ms == 20


async def test_an_unmerge_gives_the_restored_contact_its_facts_back(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    from crm_contracts import contacts as ct
    from crm_contracts import new_event

    survivor, other = _contact(), _contact()
    async with start_scoring() as service:
        await score_then_merge(scoring_settings, survivor, other)
        unmerged = new_event(
            ct.CONTACT_UNMERGED,
            ct.ContactUnmerged(contact_id=other, survivor_id=survivor, reason="two people"),
            source="urn:crm:contacts",
        )
        await publish(scoring_settings, unmerged)
        changes = await read_changes(
            scoring_settings,
            lambda cs: len(for_contact(cs, survivor)) >= 3 and len(for_contact(cs, other)) >= 2,
        )
        restored = await service.scores(other)
        back = await service.scores(survivor)

    assert restored is not None and restored["contact_id"] == other
    assert restored["scores"]["monetary"] == 4  # the 500 EUR purchase is its own again
    assert back is not None and back["scores"]["clv"]["amount"] == "0.00"
    assert any(
        r.text.startswith(f"unmerged contact {other}: -")
        for r in for_contact(changes, survivor)[-1].reasons
    )


async def test_an_erasure_request_is_answered_with_erasure_completed(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    from crm_contracts import decode_record, new_event
    from crm_contracts import privacy as pv

    contact = _contact()
    request = new_event(
        pv.PRIVACY_ERASURE_REQUESTED,
        pv.ErasureRequested(request_id="pr-1", contact_id=contact, requested_by="dpo-1"),
        source="urn:crm:privacy",
    )
    async with start_scoring() as service:
        await publish(scoring_settings, interaction(contact, "purchase", amount="42"))
        await read_changes(scoring_settings, lambda cs: bool(for_contact(cs, contact)))
        await publish(scoring_settings, request)

        def completed(rs: list[Any]) -> bool:
            return any(
                decode_record(r.value, list(r.headers)).type == pv.PRIVACY_ERASURE_COMPLETED
                for r in rs
            )

        records = await read_until(
            scoring_settings.kafka_bootstrap_servers, scoring_settings.privacy_topic, completed
        )
        gone = await service.scores(contact)
    decoded = [decode_record(r.value, list(r.headers)) for r in records]
    done = next(e for e in decoded if e.type == pv.PRIVACY_ERASURE_COMPLETED)
    data = done.data_as(pv.ErasureCompleted)
    assert (data.service, data.contact_id, data.request_id) == ("scoring", contact, "pr-1")
    assert data.records_erased and data.records_erased >= 3  # a fact, the scores, a change
    assert done.causationid == request.id
    assert gone is None


async def test_erasing_a_merged_contact_takes_its_events_out_of_the_survivor(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    survivor, other = _contact(), _contact()
    async with start_scoring() as service:
        await score_then_merge(scoring_settings, survivor, other)
        await publish(scoring_settings, erased(other))
        changes = await read_changes(
            scoring_settings, lambda cs: len(for_contact(cs, survivor)) >= 3
        )
        left = await service.scores(survivor)

    assert left is not None and left["scores"]["clv"]["amount"] == "0.00"
    assert (
        for_contact(changes, survivor)[-1]
        .reasons[0]
        .text.startswith("events of an erased contact removed: -")
    )


async def test_readyz_names_the_worker_while_it_holds_a_batch_without_moving(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    settings = scoring_settings.model_copy(update={"consumer_stall_seconds": 1.0})
    contact = _contact()
    blocker = await asyncpg.connect(settings.database_url)
    try:
        async with start_scoring(settings) as service:
            check = f"consumer:{settings.faust_app_id}:advancing"

            async def not_ready() -> list[str] | None:
                response = await service.http.get("/readyz")
                failing = response.json().get("failing", [])
                return failing if check in failing else None

            # Another transaction holds the facts table: the worker's batch waits on it while
            # the database itself answers.
            lock = blocker.transaction()
            await lock.start()
            try:
                await blocker.execute("LOCK TABLE scoring_facts IN ACCESS EXCLUSIVE MODE")
                await publish(settings, interaction(contact, "purchase", amount="10"))
                failing = await eventually(not_ready, timeout=30)
            finally:
                await lock.rollback()  # before the service stops: it would wait on the lock
            await read_changes(settings, lambda cs: bool(for_contact(cs, contact)))
            await service.ready()
    finally:
        await blocker.close()
    assert "worker" not in failing  # in its group all along, just not moving
