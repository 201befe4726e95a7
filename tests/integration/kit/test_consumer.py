"""The consumer runner: commit after the database, dead letters, retries, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from crm_contracts import CloudEvent, KafkaRecord, dead_letter_topic, encode_binary
from crm_kit.consumer import Delivery, PermanentEventError
from crm_kit.deadletters import replay_dead_letters
from crm_kit.settings import ServiceSettings
from tests.conftest import unique
from tests.integration.conftest import effects, record_effects
from tests.support.events import interaction
from tests.support.kafka import eventually, header, produce, read_until

ROOT = Path(__file__).resolve().parents[3]


async def _spawn(settings: ServiceSettings, topic: str, group: str, mode: str):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.kit.consumer_process",
        settings.database_url,
        settings.kafka_bootstrap_servers,
        topic,
        group,
        mode,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_a_consumer_killed_between_db_commit_and_offset_commit_does_not_apply_twice(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("crash", partitions=1)
    group = unique("group")
    events = [interaction() for _ in range(5)]
    await produce(
        settings.kafka_bootstrap_servers, topic, [encode_binary(e, key="c-1") for e in events]
    )
    proc = await _spawn(settings, topic, group, "crash-after-db-commit")
    assert await asyncio.wait_for(proc.wait(), timeout=60) == 137
    applied_before_crash = await effects(pool)
    assert applied_before_crash  # the database commit happened, the offset commit did not

    runner = await start_consumer(topic, group=group)  # same group: the batch is redelivered
    await produce(
        settings.kafka_bootstrap_servers, topic, [encode_binary(interaction("after"), key="c-1")]
    )

    async def caught_up() -> bool:
        return "after" in await effects(pool) and runner.applied >= 6 - len(applied_before_crash)

    await eventually(caught_up, timeout=30)
    assert await effects(pool) == [e.id for e in events] + ["after"]
    assert runner.applied == 5 + 1 - len(applied_before_crash)


async def test_sigterm_stops_the_consumer_cleanly_with_its_offsets_committed(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("sigterm", partitions=1)
    group = unique("group")
    events = [interaction() for _ in range(3)]
    await produce(
        settings.kafka_bootstrap_servers, topic, [encode_binary(e, key="c") for e in events]
    )
    proc = await _spawn(settings, topic, group, "run")
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"started"

    async def all_applied() -> bool:
        return len(await effects(pool)) == 3

    await eventually(all_applied, timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    runner = await start_consumer(topic, group=group)
    await produce(
        settings.kafka_bootstrap_servers, topic, [encode_binary(interaction("next"), key="c")]
    )

    async def next_applied() -> bool:
        return "next" in await effects(pool) and runner.applied > 0

    await eventually(next_applied)
    assert runner.applied == 1  # nothing was redelivered: the offsets were committed


async def test_a_malformed_record_is_dead_lettered_with_its_reason_and_the_partition_moves_on(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("dlt", partitions=1)
    good = interaction()
    garbage = KafkaRecord(
        key=b"c-1", value=b"{not json", headers=[("ce_specversion", b"1.0"), ("x-trace", b"t-1")]
    )
    await produce(
        settings.kafka_bootstrap_servers, topic, [garbage, encode_binary(good, key="c-1")]
    )
    await start_consumer(topic)

    async def good_applied() -> bool:
        return good.id in await effects(pool)

    await eventually(good_applied)
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert dead.value == b"{not json"
    assert dead.key == b"c-1"
    assert header(dead, "x-error-reason")  # e.g. missing_attribute / malformed
    assert header(dead, "x-error-message")
    assert header(dead, "x-error-topic") == topic
    assert header(dead, "x-error-offset") == "0"
    assert header(dead, "x-trace") == "t-1"  # the original headers travel along


async def test_an_event_the_handler_cannot_apply_is_dead_lettered_and_the_rest_are_applied(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("poison", partitions=1)
    events = [interaction() for _ in range(4)]
    poison = events[1].id
    attempts = {"transient": 0}

    async def handler(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.event.id == poison:
                raise PermanentEventError("contact was erased", reason="contact_erased")
            if d.event.id == events[2].id and attempts["transient"] < 2:
                attempts["transient"] += 1
                raise asyncpg.SerializationError("try again")
        await record_effects(conn, deliveries)

    await produce(
        settings.kafka_bootstrap_servers, topic, [encode_binary(e, key="c") for e in events]
    )
    runner = await start_consumer(topic, handler)

    async def rest_applied() -> list[str] | None:
        applied = await effects(pool)
        return applied if len(applied) == 3 else None

    applied = await eventually(rest_applied)
    assert sorted(applied) == sorted([e.id for e in events if e.id != poison])
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert header(dead, "ce_id") == poison
    assert header(dead, "x-error-reason") == "contact_erased"
    assert runner.dead_lettered == 1


async def test_replaying_dead_letters_puts_the_original_records_back(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("replay", partitions=1)
    event = interaction()
    blocked = {"on": True}

    async def handler(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        if blocked["on"]:
            raise PermanentEventError("not yet", reason="not_yet")
        await record_effects(conn, deliveries)

    await produce(settings.kafka_bootstrap_servers, topic, [encode_binary(event, key="c")])
    runner = await start_consumer(topic, handler)

    async def dead_lettered() -> bool:
        return runner.dead_lettered == 1

    await eventually(dead_lettered)
    blocked["on"] = False
    result = await replay_dead_letters(settings, topic, idle_seconds=1.0, group_id=unique("replay"))
    assert result.replayed == 1

    async def applied() -> bool:
        return event.id in await effects(pool)

    await eventually(applied)
    records = await read_until(settings.kafka_bootstrap_servers, topic, lambda rs: len(rs) >= 2)
    assert [header(r, "ce_id") for r in records] == [event.id, event.id]
    assert all(header(r, "x-error-reason") is None for r in records)


async def test_a_replayed_event_that_fails_again_is_dead_lettered_once_more_and_the_replay_ends(
    settings: ServiceSettings, new_topic, start_consumer
) -> None:
    topic = await new_topic("replay-again", partitions=3)
    event = interaction()

    async def still_broken(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        raise PermanentEventError("still broken", reason="still_broken")

    await produce(settings.kafka_bootstrap_servers, topic, [encode_binary(event, key="c")])
    runner = await start_consumer(topic, still_broken)

    async def dead_lettered(n: int) -> bool:
        return runner.dead_lettered == n

    await eventually(lambda: dead_lettered(1))
    result = await asyncio.wait_for(
        replay_dead_letters(settings, topic, idle_seconds=1.0, group_id=unique("replay")),
        timeout=60,
    )
    assert result.replayed == 1
    await eventually(lambda: dead_lettered(2))
    dead = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 2
    )
    assert len(dead) == 2  # the first dead letter and one copy, nothing more
    assert all(header(d, "ce_id") == event.id for d in dead)
    assert sorted(header(d, "x-error-attempts") or "" for d in dead) == ["1", "2"]


def _dead_letter(event: CloudEvent, *, reason: str, attempts: int) -> KafkaRecord:
    record = encode_binary(event, key="c")
    errors = [
        ("x-error-reason", reason.encode()),
        ("x-error-partition", b"0"),
        ("x-error-attempts", str(attempts).encode()),
    ]
    return KafkaRecord(record.key, record.value, [*record.headers, *errors])


async def test_a_dry_run_publishes_nothing_and_a_replay_holds_back_what_failed_too_often(
    settings: ServiceSettings, new_topic
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    topic = await new_topic("replay-limit", partitions=1)
    tired, fresh, invalid, huge = interaction(), interaction(), interaction(), interaction()
    headless = _dead_letter(huge, reason="invalid_data", attempts=1)
    too_large = KafkaRecord(headless.key, None, [*headless.headers, ("x-error-dropped", b"value")])
    await produce(
        bootstrap,
        dead_letter_topic(topic),
        [
            _dead_letter(tired, reason="handler_failed", attempts=3),
            _dead_letter(fresh, reason="handler_failed", attempts=1),
            _dead_letter(invalid, reason="invalid_data", attempts=2),
            too_large,  # dead-lettered without its value: nothing to put back
        ],
    )
    group = unique("replay")

    dry = await replay_dead_letters(
        settings, topic, max_attempts=3, dry_run=True, idle_seconds=1.0, group_id=group
    )
    assert dict(dry.by_reason) == {"handler_failed": 1, "invalid_data": 1}
    assert dry.samples == {"handler_failed": [fresh.id], "invalid_data": [invalid.id]}
    assert (dry.replayed, dry.held_back, dry.incomplete) == (2, 1, 1)
    marker = interaction()
    await produce(bootstrap, topic, [encode_binary(marker, key="m")])
    first = await read_until(bootstrap, topic, lambda rs: len(rs) >= 1)
    assert [header(r, "ce_id") for r in first] == [marker.id]  # one partition: nothing before

    result = await replay_dead_letters(
        settings, topic, max_attempts=3, idle_seconds=1.0, group_id=group
    )
    assert (result.replayed, result.held_back, result.incomplete) == (2, 1, 1)
    records = await read_until(bootstrap, topic, lambda rs: len(rs) >= 3)
    replayed = {header(r, "ce_id"): header(r, "x-error-attempts") for r in records[1:]}
    assert replayed == {fresh.id: "1", invalid.id: "2"}
    assert all(header(r, "x-error-reason") is None for r in records)


async def test_a_record_too_large_to_dead_letter_whole_goes_as_its_headers_and_a_digest(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    # The broker takes it; the kit's producer (2 MiB per request) cannot send it on whole.
    topic = await new_topic("oversized", partitions=1)
    huge = encode_binary(interaction(), key="c-1")
    value = b'{"channel": "web", "blob": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    huge_headers = [*huge.headers, ("x-trace", b"t-huge")]
    after = [interaction() for _ in range(3)]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=b"c-1", headers=huge_headers)
        for event in after:
            record = encode_binary(event, key="c-1")
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()
    await start_consumer(topic)

    async def rest_applied() -> list[str] | None:
        applied = await effects(pool)
        return applied if len(applied) == len(after) else None

    assert await eventually(rest_applied, timeout=30) == [e.id for e in after]
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert not dead.value  # dropped: what is left says what it was
    assert dead.key == b"c-1"
    assert header(dead, "x-error-reason") == "invalid_data"
    assert header(dead, "x-error-dropped") == "value"
    assert header(dead, "x-error-value-size") == str(len(value))
    assert header(dead, "x-error-value-sha256") == hashlib.sha256(value).hexdigest()
    assert header(dead, "x-error-offset") == "0"
    assert header(dead, "x-trace") == "t-huge"
    assert header(dead, "ce_id") == header_of(huge_headers, "ce_id")


def header_of(headers: Sequence[tuple[str, bytes]], name: str) -> str:
    """A header's value as text, from a list of headers."""
    return next(value.decode() for key, value in headers if key == name)


async def test_a_dead_letter_names_the_postgres_error_but_not_the_key_value_it_detailed(
    settings: ServiceSettings, pool: asyncpg.Pool, new_topic, start_consumer
) -> None:
    topic = await new_topic("detail", partitions=1)
    await pool.execute("CREATE TABLE people (email text UNIQUE)")
    await pool.execute("INSERT INTO people VALUES ('grace@example.com')")
    clash, fine = interaction(), interaction()

    async def handler(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.event.id == clash.id:  # Postgres: DETAIL: Key (email)=(grace@...) exists.
                await conn.execute("INSERT INTO people VALUES ('grace@example.com')")
        await record_effects(conn, deliveries)

    await produce(
        settings.kafka_bootstrap_servers,
        topic,
        [encode_binary(clash, key="c"), encode_binary(fine, key="c")],
    )
    await start_consumer(topic, handler)

    async def fine_applied() -> bool:
        return fine.id in await effects(pool)

    await eventually(fine_applied)
    [dead] = await read_until(
        settings.kafka_bootstrap_servers, dead_letter_topic(topic), lambda rs: len(rs) >= 1
    )
    assert header(dead, "ce_id") == clash.id
    assert header(dead, "x-error-reason") == "retries_exhausted"
    message = header(dead, "x-error-message") or ""
    assert message.startswith("UniqueViolationError: ")
    assert "grace" not in message
