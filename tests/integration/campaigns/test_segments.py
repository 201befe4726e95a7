"""Segments through HTTP and Kafka: membership changes are announced with their cause, time
alone makes and unmakes members, a new segment is evaluated over the contacts known before
it, re-entry follows the campaign's rules, and bad input gets a problem that says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx

from crm_contracts import campaigns as cp
from crm_kit.db import connect
from tests.integration.campaigns.conftest import (
    Campaigns,
    campaign_body,
    consent,
    contact,
    published,
    resolved,
    score_changed,
)
from tests.support.harness import T0, of_type
from tests.support.kafka import eventually

HIGH_CHURN = {"type": "churn_band", "bands": ["high"]}
LONG_JOURNEY: list[dict[str, Any]] = [
    {"id": "s1", "channel": "email", "template_ref": "offer"},
    {"id": "s2", "channel": "email", "template_ref": "reminder", "wait_seconds": 30 * 86400},
]


def iso(at: Any) -> str:
    return str(at.isoformat().replace("+00:00", "Z"))


def memberships(events: list[Any], who: str) -> list[tuple[str, str | None]]:
    """(entered|left, cause_event_id) of the contact, in order."""
    found: list[tuple[str, str | None]] = []
    for e in events:
        if e.type == cp.CAMPAIGN_SEGMENT_ENTERED:
            entered = e.data_as(cp.SegmentEntered)
            if entered.contact_id == who:
                found.append(("entered", entered.cause_event_id))
        elif e.type == cp.CAMPAIGN_SEGMENT_LEFT:
            left = e.data_as(cp.SegmentLeft)
            if left.contact_id == who:
                found.append(("left", left.cause_event_id))
    return found


async def member_count(service: Campaigns, segment_id: str) -> int:
    found: int = (await service.ok(f"/v1/segments/{segment_id}"))["member_count"]
    return found


async def wait_member_count(service: Campaigns, segment_id: str, count: int) -> None:
    async def reached() -> bool:
        return await member_count(service, segment_id) == count

    await eventually(reached, timeout=30)


def assert_problem(response: httpx.Response, status: int, reason: str | None = None) -> Any:
    """A problem body (RFC 7807) with this status, of this type when given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    if reason is not None:
        assert body["type"].endswith(f"/{reason}"), body
    return body


# ---- membership events


async def test_segment_entries_and_exits_are_announced_with_the_event_that_caused_them(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    who = contact()
    high = score_changed(who, band="high")
    await service.publish(high)
    still_high = score_changed(who, band="high", time=T0 + timedelta(hours=1))
    low = score_changed(who, band="low", time=T0 + timedelta(hours=2))
    await service.publish(still_high, low)

    events = await published(service)
    assert memberships(events, who) == [("entered", high.id), ("left", low.id)]
    [entered] = of_type(events, cp.CAMPAIGN_SEGMENT_ENTERED)
    assert entered.data_as(cp.SegmentEntered).segment_id == segment_id
    assert entered.time == T0
    assert await member_count(service, segment_id) == 0


# ---- time alone


async def test_not_purchasing_for_30_days_makes_a_member_exactly_30_days_after_the_purchase(
    service: Campaigns,
) -> None:
    segment_id = await service.segment({"type": "did_not", "kind": "purchase", "for_days": 30})
    campaign_id = await service.launch(segment_id)
    who, earlier = contact(), contact()
    await service.publish(
        resolved("purchase", who, value="10.00"),
        resolved("purchase", earlier, value="10.00", time=T0 - timedelta(seconds=1)),
    )
    await service.publish(consent(who, granted=True), consent(earlier, granted=True))
    assert await member_count(service, segment_id) == 0

    # One second early: the contact who bought a second earlier is in, this one not yet.
    service.clock.set(T0 + timedelta(days=30, seconds=-1))
    await wait_member_count(service, segment_id, 1)
    assert await service.enrolments(who) == []

    service.clock.set(T0 + timedelta(days=30))
    await wait_member_count(service, segment_id, 2)
    [enrolment] = await service.wait_enrolments(who, lambda es: len(es) == 1)
    assert enrolment["campaign_id"] == campaign_id
    assert enrolment["entered_at"] == iso(T0 + timedelta(days=30))
    events = await service.campaign_events(lambda es: ("entered", None) in memberships(es, who))
    [entered] = [
        e
        for e in of_type(events, cp.CAMPAIGN_SEGMENT_ENTERED)
        if e.data_as(cp.SegmentEntered).contact_id == who
    ]
    assert entered.time == T0 + timedelta(days=30)


async def test_two_purchases_within_7_days_stop_counting_when_the_older_ages_out(
    service: Campaigns,
) -> None:
    rule = {"type": "did", "kind": "purchase", "at_least": 2, "within_days": 7}
    segment_id = await service.segment(rule)
    who = contact()
    await service.publish(resolved("purchase", who, value="10.00"))
    assert await member_count(service, segment_id) == 0
    second = resolved("purchase", who, value="10.00", time=T0 + timedelta(days=2))
    await service.publish(second)
    assert await member_count(service, segment_id) == 1

    service.clock.set(T0 + timedelta(days=7))
    await wait_member_count(service, segment_id, 0)
    events = await service.campaign_events(lambda es: len(memberships(es, who)) == 2)
    assert memberships(events, who) == [("entered", second.id), ("left", None)]
    [left] = of_type(events, cp.CAMPAIGN_SEGMENT_LEFT)
    assert left.time == T0 + timedelta(days=7)


# ---- backfill and preview


@asynccontextmanager
async def backfill_stalled(service: Campaigns) -> AsyncIterator[None]:
    """The backfill job cannot read the contacts it evaluates until the block ends."""
    conn = await connect(service.settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE contact_views IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def backfill_waiting(service: Campaigns) -> bool:
    """Whether a backfill round is waiting for the contacts `backfill_stalled` holds."""
    rows = await service.fetch(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE '%FROM contact_views%'"
    )
    return bool(rows[0]["n"] > 0)


async def test_contacts_known_before_a_segment_are_its_members_and_its_audience_at_launch(
    service: Campaigns,
) -> None:
    high = [contact() for _ in range(3)]
    low = [contact() for _ in range(2)]
    await service.publish(
        *(score_changed(who, band="high") for who in high),
        *(score_changed(who, band="low") for who in low),
    )

    segment_id = "seg-high-churn"
    campaign_id = "cmp-audience"
    async with backfill_stalled(service):
        await service.put(f"/v1/segments/{segment_id}", {"name": "High", "rule": HIGH_CHURN})
        assert (await service.ok(f"/v1/segments/{segment_id}"))["backfilling"] is True
        # The backfill's round has begun and waits: saving a campaign on its segment must not.
        await eventually(lambda: backfill_waiting(service), timeout=30)
        body = campaign_body(segment_id, entry_mode="audience_once")
        await service.put(f"/v1/campaigns/{campaign_id}", body)
        refused = await service.send("POST", f"/v1/campaigns/{campaign_id}/launch")
        assert_problem(refused, 409, "segment-backfilling")

    async def evaluated() -> dict[str, Any] | None:
        found: dict[str, Any] = await service.ok(f"/v1/segments/{segment_id}")
        return None if found["backfilling"] else found

    found = await eventually(evaluated, timeout=30)
    assert found["member_count"] == 3
    launched = await service.send("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 200, launched.text
    for who in high:
        [enrolment] = await service.enrolments(who)
        assert enrolment["campaign_id"] == campaign_id
    for who in low:
        assert await service.enrolments(who) == []

    later = contact()
    await service.publish(score_changed(later, band="high", time=T0 + timedelta(hours=1)))
    assert await member_count(service, segment_id) == 4
    assert await service.enrolments(later) == []


async def test_a_preview_counts_the_known_contacts_a_rule_selects_and_names_some(
    service: Campaigns,
) -> None:
    high = [contact() for _ in range(3)]
    low = [contact() for _ in range(2)]
    await service.publish(
        *(score_changed(who, band="high") for who in high),
        *(score_changed(who, band="low") for who in low),
    )

    response = await service.http.post(
        "/v1/segments/preview",
        params={"sample": 2},
        json={"rule": HIGH_CHURN},
        headers=service.headers(),
    )
    assert response.status_code == 200, response.text
    found = response.json()
    assert (found["count"], found["evaluated"]) == (3, 5)
    assert len(found["sample"]) == 2 and set(found["sample"]) <= set(high)
    assert (await service.ok("/v1/segments")) == []


# ---- re-entry


async def churn(service: Campaigns, who: str, band: str, **at: float) -> None:
    await service.publish(score_changed(who, band=band, time=T0 + timedelta(**at)))


async def test_a_contact_enters_a_campaign_once_by_default(service: Campaigns) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    campaign_id = await service.launch(segment_id)
    who = contact()
    await service.publish(consent(who, granted=True))
    await churn(service, who, "high")
    await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")

    await churn(service, who, "low", days=10)
    await churn(service, who, "high", days=20)
    events = await published(service)
    assert [m for m, _ in memberships(events, who)] == ["entered", "left", "entered"]
    [enrolment] = await service.enrolments(who)
    assert (enrolment["campaign_id"], enrolment["entry"]) == (campaign_id, 1)


async def test_a_fresh_entry_after_reentry_days_enrols_again_but_never_while_enrolled(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    short = await service.launch(segment_id, reentry_days=2)
    long = await service.launch(segment_id, reentry_days=2, steps=LONG_JOURNEY)
    who = contact()
    await service.publish(consent(who, granted=True))
    await churn(service, who, "high")
    await service.wait_enrolments(who, lambda es: len(es) == 2)
    await service.steps_due(who)

    # Back within two days of the entry: not again.
    await churn(service, who, "low", days=1)
    await churn(service, who, "high", days=1, hours=1)
    assert len(await service.enrolments(who)) == 2

    await churn(service, who, "low", days=2)
    await churn(service, who, "high", days=2, hours=1)
    found = await service.enrolments(who)
    by_campaign = {c: [e for e in found if e["campaign_id"] == c] for c in (short, long)}
    assert [e["entry"] for e in by_campaign[short]] == [1, 2]
    assert by_campaign[short][1]["entered_at"] == iso(T0 + timedelta(days=2, hours=1))
    [still] = by_campaign[long]
    assert still["status"] == "active"


async def test_leaving_the_segment_exits_a_campaign_that_says_so(service: Campaigns) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    await service.launch(segment_id, exit_on_segment_leave=True, steps=LONG_JOURNEY)
    who = contact()
    await service.publish(consent(who, granted=True))
    await churn(service, who, "high")
    await service.wait_enrolments(who, lambda es: len(es) == 1)

    await churn(service, who, "low", hours=1)
    [enrolment] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    assert enrolment["exit_reason"] == "left_segment"
    assert enrolment["exited_at"] == iso(T0 + timedelta(hours=1))


async def test_leaving_the_segment_by_time_alone_exits_at_that_moment(
    service: Campaigns,
) -> None:
    segment_id = await service.segment({"type": "did", "kind": "purchase", "within_days": 7})
    await service.launch(segment_id, exit_on_segment_leave=True, steps=LONG_JOURNEY)
    who = contact()
    await service.publish(consent(who, granted=True, time=T0 - timedelta(hours=1)))
    await service.publish(resolved("purchase", who, value="5.00"))
    await service.wait_enrolments(who, lambda es: len(es) == 1)

    service.clock.set(T0 + timedelta(days=7))
    [enrolment] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    assert enrolment["exit_reason"] == "left_segment"
    assert enrolment["exited_at"] == iso(T0 + timedelta(days=7))


# ---- bad input


async def test_an_unknown_rule_type_or_a_rule_too_deep_is_refused(service: Campaigns) -> None:
    unknown = await service.send(
        "PUT", "/v1/segments/seg-bad", {"name": "Bad", "rule": {"type": "zodiac"}}
    )
    body = assert_problem(unknown, 422)
    assert body["errors"] and all(e["path"].startswith("body.rule") for e in body["errors"])

    deep: dict[str, Any] = HIGH_CHURN
    for _ in range(6):
        deep = {"type": "not", "rule": deep}
    too_deep = await service.send("PUT", "/v1/segments/seg-bad", {"name": "Bad", "rule": deep})
    body = assert_problem(too_deep, 422)
    assert any("7 levels deep" in e["message"] for e in body["errors"]), body
    assert (await service.send("GET", "/v1/segments/seg-bad")).status_code == 404


async def test_a_campaign_that_branches_to_an_unknown_step_or_names_no_segment_is_refused(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    steps = [
        {**LONG_JOURNEY[0], "branch_kind": "email_clicked", "branch_to": "nowhere"},
        LONG_JOURNEY[1],
    ]
    branching = await service.send(
        "PUT", "/v1/campaigns/cmp-bad", campaign_body(segment_id, steps=steps)
    )
    body = assert_problem(branching, 422)
    assert any("unknown step nowhere" in e["message"] for e in body["errors"]), body

    orphan = await service.send("PUT", "/v1/campaigns/cmp-bad", campaign_body("seg-missing"))
    body = assert_problem(orphan, 422, "segment-not-found")
    assert body["segment_id"] == "seg-missing"
    assert (await service.send("GET", "/v1/campaigns/cmp-bad")).status_code == 404


async def test_an_active_campaign_cannot_be_changed_nor_a_completed_one_launched(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    campaign_id = await service.launch(segment_id)

    changed = await service.send(
        "PUT", f"/v1/campaigns/{campaign_id}", campaign_body(segment_id, name="Renamed")
    )
    body = assert_problem(changed, 409, "invalid-transition")
    assert body["campaign_status"] == "active"

    completed = await service.send("POST", f"/v1/campaigns/{campaign_id}/complete")
    assert completed.status_code == 200, completed.text
    relaunched = await service.send("POST", f"/v1/campaigns/{campaign_id}/launch")
    body = assert_problem(relaunched, 409, "invalid-transition")
    assert body["campaign_status"] == "completed"


async def test_a_segment_a_campaign_targets_cannot_be_deleted(service: Campaigns) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    campaign_id = await service.launch(segment_id)

    refused = await service.send("DELETE", f"/v1/segments/{segment_id}")
    body = assert_problem(refused, 409, "segment-in-use")
    assert body["campaign_ids"] == [campaign_id]
    assert (await service.send("GET", f"/v1/segments/{segment_id}")).status_code == 200
