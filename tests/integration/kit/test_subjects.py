"""The kit remembers merges and erasures of subjects (contact ids) against a real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest_asyncio

from crm_contracts import decode_record, new_event
from crm_contracts import privacy as pv
from crm_kit import subjects
from crm_kit.db import connect
from tests.support.statements import statements_on


@pytest_asyncio.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(database)
    yield conn
    await conn.close()


async def test_a_second_merge_re_points_the_ids_merged_before(conn: asyncpg.Connection) -> None:
    await subjects.remember_merge(conn, ["c-1", "c-2"], "c-3")
    await subjects.remember_merge(conn, ["c-3"], "c-4")

    now = await subjects.current(conn, ["c-1", "c-2", "c-3", "c-4"])

    assert dict(now.survivors) == {"c-1": "c-4", "c-2": "c-4", "c-3": "c-4"}
    assert now.survivor_of("c-4") == "c-4"
    assert await subjects.merged_into(conn, "c-4") == ["c-1", "c-2", "c-3"]
    assert await subjects.merged_into(conn, "c-3") == []


async def test_a_merge_repeated_or_naming_its_survivor_keeps_one_alias_each(
    conn: asyncpg.Connection,
) -> None:
    await subjects.remember_merge(conn, ["c-1", "c-1", "c-2"], "c-2")
    await subjects.remember_merge(conn, ["c-1"], "c-2")

    assert await subjects.merged_into(conn, "c-2") == ["c-1"]
    assert (await subjects.current(conn, ["c-2"])).survivors == {}


async def test_an_unmerged_id_is_its_own_again(conn: asyncpg.Connection) -> None:
    await subjects.remember_merge(conn, ["c-1", "c-2"], "c-3")

    await subjects.forget_merge(conn, "c-1")

    now = await subjects.current(conn, ["c-1", "c-2"])
    assert now.survivor_of("c-1") == "c-1"
    assert now.survivor_of("c-2") == "c-3"
    assert await subjects.merged_into(conn, "c-3") == ["c-2"]


async def test_erased_ids_stay_erased_and_lose_their_merges(conn: asyncpg.Connection) -> None:
    await subjects.remember_merge(conn, ["c-1"], "c-2")
    await subjects.remember_merge(conn, ["c-3"], "c-4")

    await subjects.remember_erased(conn, ["c-2", "c-1", "c-2"])
    await subjects.remember_erased(conn, ["c-1"])  # a replay
    await subjects.forget_merges(conn)  # a rebuild forgets merges, not erasures

    now = await subjects.current(conn, ["c-1", "c-2", "c-3", "c-5"])
    assert now.survivors == {}
    assert now.erased == {"c-1", "c-2"}
    assert (await subjects.current(conn, ["c-1", "c-3", "c-5"])).erased == {"c-1"}


async def test_current_reports_an_id_whose_survivor_was_erased(conn: asyncpg.Connection) -> None:
    await subjects.remember_merge(conn, ["c-1"], "c-2")
    # The survivor erased while the alias stays (another service erased c-2 only).
    await conn.execute("INSERT INTO kit_erased_subjects (subject_id) VALUES ('c-2')")

    now = await subjects.current(conn, ["c-1", "c-3"])

    assert now.survivor_of("c-1") == "c-2"
    assert now.erased == {"c-2"}
    assert now.is_erased("c-1")
    assert now.is_erased("c-2")
    assert not now.is_erased("c-3")


async def test_current_looks_up_a_whole_batch_in_one_statement(conn: asyncpg.Connection) -> None:
    await subjects.remember_merge(conn, [f"m-{i}" for i in range(100)], "s-1")
    await subjects.remember_erased(conn, ["e-1", "s-2"])
    await subjects.remember_merge(conn, ["m-200"], "s-2")
    async with statements_on(conn) as statements:
        now = await subjects.current(
            conn, [*(f"m-{i}" for i in range(100)), "m-200", "e-1", "x-1", "x-1"]
        )

    assert len(statements) == 1
    assert len(now.survivors) == 101
    assert now.survivor_of("m-7") == "s-1"
    assert now.survivor_of("x-1") == "x-1"
    assert now.erased == {"e-1", "s-2"}
    assert now.is_erased("m-200")
    assert not now.is_erased("m-7")


def test_the_erasure_answer_is_caused_by_the_request_and_keyed_by_the_contact() -> None:
    data = pv.ErasureRequested(request_id="er-1", contact_id="c-1", requested_by="agent-1")
    request = new_event(
        pv.PRIVACY_ERASURE_REQUESTED, data, source="urn:crm:contacts", correlationid="corr-1"
    )
    at = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)

    message = subjects.erasure_completed(
        request,
        data,
        service="cases",
        source="urn:crm:cases",
        topic="crm.privacy.v1",
        records_erased=3,
        time=at,
    )

    assert message.topic == "crm.privacy.v1"
    assert message.record.key == b"c-1"
    answer = decode_record(message.record.value, message.record.headers)
    assert answer.type == pv.PRIVACY_ERASURE_COMPLETED
    assert answer.source == "urn:crm:cases"
    assert answer.subject == "c-1"
    assert (answer.causationid, answer.correlationid, answer.time) == (request.id, "corr-1", at)
    assert answer.data == pv.ErasureCompleted(
        request_id="er-1", contact_id="c-1", service="cases", records_erased=3
    )


def test_an_erasure_asked_here_is_answered_with_the_callers_correlation_id() -> None:
    data = pv.ErasureRequested(request_id="er-1", contact_id="c-1", requested_by="agent-1")

    message = subjects.erasure_completed(
        None,
        data,
        service="contacts",
        source="urn:crm:contacts",
        topic="crm.privacy.v1",
        records_erased=None,
        correlation_id="req-9",
    )

    answer = decode_record(message.record.value, message.record.headers)
    assert (answer.causationid, answer.correlationid) == (None, "req-9")
