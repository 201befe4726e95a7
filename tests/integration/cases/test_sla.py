"""SLA clocks that are right: business hours across a weekend and a daylight-saving change,
priority changes that re-target, and breaches announced exactly once whatever the restarts
and replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crm_contracts import cases as cs
from tests.integration.cases.conftest import Replicas, Service, contact, resolved, score_changed
from tests.support.harness import T0, of_type
from tests.support.kafka import eventually

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "time_zone": "Europe/Berlin",
    "hours": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": [],
}


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def clock_of(case: dict[str, Any], metric: str, cycle: int = 1) -> dict[str, Any]:
    return next(k for k in case["clocks"] if k["metric"] == metric and k["cycle"] == cycle)


async def open_case(service: Service, **body: Any) -> dict[str, Any]:
    response = await service.send(
        "POST", "/v1/cases", {"contact_id": contact(), "subject": "Help", **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def breaches(service: Service, case_id: str, count: int) -> list[Any]:
    """The case's breach events, once `count` of them are on the topic."""

    def of_case(events: list[Any]) -> list[Any]:
        return [
            e
            for e in of_type(events, cs.CASE_SLA_BREACHED)
            if e.data_as(cs.CaseSlaBreached).case_id == case_id
        ]

    events = await service.case_events(lambda es: len(of_case(es)) >= count)
    return of_case(events)


async def test_a_deadline_over_a_weekend_and_a_dst_change_lands_on_the_right_minute(
    service: Service,
) -> None:
    put = await service.send("PUT", "/v1/calendars/berlin-office", OFFICE)
    assert put.status_code == 200, put.text
    policy = await service.send(
        "PUT",
        "/v1/sla-policies/normal",
        {
            "name": "Office hours",
            "calendar_id": "berlin-office",
            "targets": {
                "first_response": {"seconds": 4 * 3600},
                "resolution": {"seconds": 16 * 3600, "pauses_in": ["pending", "on_hold"]},
            },
        },
    )
    assert policy.status_code == 200, policy.text
    # Friday 27 March 2026, 15:00 in Berlin (CET); the clocks go forward on Sunday night.
    service.clock.now = datetime(2026, 3, 27, 15, 0, tzinfo=BERLIN).astimezone(UTC)
    case = await open_case(service, priority="normal")

    first = parse(clock_of(case, "first_response")["due_at"]).astimezone(BERLIN)
    # Two office hours on Friday, two on Monday: 11:00 Monday, now summer time (CEST).
    assert (first.date().isoformat(), first.hour, first.minute) == ("2026-03-30", 11, 0)
    assert first.utcoffset() == timedelta(hours=2)
    resolution = parse(clock_of(case, "resolution")["due_at"]).astimezone(BERLIN)
    # 2 hours Friday, 8 Monday, 6 Tuesday: Tuesday 15:00.
    assert (resolution.date().isoformat(), resolution.hour) == ("2026-03-31", 15)


async def test_a_breach_is_announced_once_when_its_deadline_passes(service: Service) -> None:
    case = await open_case(service, priority="urgent")  # first response within 30 minutes
    service.clock.advance(minutes=29)
    await service.send("POST", f"/v1/cases/{case['id']}/comments", {"body": "looking"})
    assert (await service.case(case["id"]))["breaches"] == []

    service.clock.advance(minutes=2)
    (event,) = await breaches(service, case["id"], 1)
    breach = event.data_as(cs.CaseSlaBreached)
    assert breach.sla_kind == "first_response"
    assert breach.due_at == T0 + timedelta(minutes=30)
    assert event.time == breach.due_at  # it happened at the deadline
    assert breach.priority == "urgent" and breach.cycle == 1

    service.clock.advance(hours=5)  # the resolution target (4 h) passes too
    found = await breaches(service, case["id"], 2)
    assert sorted(e.data_as(cs.CaseSlaBreached).sla_kind for e in found) == [
        "first_response",
        "resolution",
    ]
    detail = await service.case(case["id"])
    assert len(detail["breaches"]) == 2


async def test_a_breach_is_announced_once_across_a_restart_at_its_deadline(
    replicas: Replicas,
) -> None:
    first = await replicas.start()
    case = await open_case(first, priority="urgent")
    await replicas.stop(first)
    replicas.clock.advance(minutes=31)  # the deadline passes while the service is down

    second = await replicas.start()
    await breaches(second, case["id"], 1)
    await replicas.stop(second)
    third = await replicas.start()  # and once more, after the breach was recorded
    # Evidence that the restarted timer ran: a later case's breach comes out.
    later = await open_case(third, priority="urgent")
    replicas.clock.advance(minutes=31)
    await breaches(third, later["id"], 1)
    assert len(await breaches(third, case["id"], 1)) == 1
    rows = await third.fetch("SELECT case_id FROM case_sla_breaches ORDER BY due_at")
    assert [r["case_id"] for r in rows] == [case["id"], later["id"]]


async def test_a_breach_is_announced_once_by_two_replicas(replicas: Replicas) -> None:
    one = await replicas.start()
    two = await replicas.start(consumer_group_suffix=one.settings.consumer_group_suffix)
    cases = [await open_case(one, priority="urgent") for _ in range(5)]
    replicas.clock.advance(minutes=31)

    async def all_breached() -> bool:
        rows = await one.fetch("SELECT count(*) AS n FROM case_sla_breaches")
        return bool(rows[0]["n"] == 5)

    await eventually(all_breached, timeout=30)
    events = await two.case_events(lambda es: len(of_type(es, cs.CASE_SLA_BREACHED)) >= 5)
    ids = [e.id for e in of_type(events, cs.CASE_SLA_BREACHED)]
    assert len(ids) == len(set(ids)) == 5
    assert {
        e.data_as(cs.CaseSlaBreached).case_id for e in of_type(events, cs.CASE_SLA_BREACHED)
    } == {c["id"] for c in cases}


async def test_a_priority_change_mid_case_retargets_and_when_late_breaches_once(
    service: Service,
) -> None:
    case = await open_case(service, priority="normal")  # first response within 4 hours
    service.clock.advance(hours=2)
    changed = await service.send("PATCH", f"/v1/cases/{case['id']}", {"priority": "urgent"})
    assert changed.status_code == 200, changed.text
    # Urgent allows 30 minutes from the original start: two hours in, it is late already.
    body = changed.json()
    assert parse(clock_of(body, "first_response")["due_at"]) == T0 + timedelta(minutes=30)
    assert [b["metric"] for b in body["breaches"]] == ["first_response"]

    lowered = await service.send("PATCH", f"/v1/cases/{case['id']}", {"priority": "low"})
    assert lowered.status_code == 200, lowered.text
    assert [b["metric"] for b in lowered.json()["breaches"]] == ["first_response"]  # it stands
    (event,) = await breaches(service, case["id"], 1)
    assert event.data_as(cs.CaseSlaBreached).priority == "urgent"
    events = await service.case_events(lambda es: len(of_type(es, cs.CASE_PRIORITY_CHANGED)) >= 2)
    assert len(of_type(events, cs.CASE_SLA_BREACHED)) == 1


async def test_a_churn_band_rise_reprioritises_an_open_case(service: Service) -> None:
    person = contact()
    await service.publish(score_changed(person, tier="silver", band="low"))
    request = resolved("support_request", person, time=T0 + timedelta(minutes=1))
    await service.publish(request)
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    assert case["priority"] == "normal"

    rise = score_changed(person, tier="silver", band="high", time=T0 + timedelta(minutes=5))
    await service.publish(rise)
    (case,) = await service.wait_cases(person, lambda cases: cases[0]["priority"] == "high")
    events = await service.case_events(lambda es: len(of_type(es, cs.CASE_PRIORITY_CHANGED)) == 1)
    (changed,) = of_type(events, cs.CASE_PRIORITY_CHANGED)
    data = changed.data_as(cs.CasePriorityChanged)
    assert (data.from_priority, data.to_priority) == ("normal", "high")
    assert data.cause_event_id == rise.id
    assert changed.time == rise.time
    # The high policy's first response (1 hour) counts from the request, not the change.
    assert data.sla is not None
    assert data.sla.first_response_due_at == request.time + timedelta(hours=1)


async def test_a_late_older_score_does_not_override_a_newer_one(service: Service) -> None:
    person = contact()
    newer = score_changed(person, tier="platinum", time=T0 + timedelta(minutes=10))
    older = score_changed(person, tier="bronze", time=T0)
    await service.publish(newer)
    await service.wait_applied(newer.id)
    await service.publish(older)
    await service.wait_applied(older.id)
    await service.publish(resolved("complaint", person, time=T0 + timedelta(minutes=20)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    assert case["priority"] == "urgent"


async def test_a_calendar_edited_mid_case_keeps_the_time_used_and_counts_the_rest_anew(
    service: Service,
) -> None:
    nine_to_five = {**OFFICE, "time_zone": "UTC"}
    assert (await service.send("PUT", "/v1/calendars/desk", nine_to_five)).status_code == 200
    policy = {
        "name": "Desk",
        "calendar_id": "desk",
        "targets": {"resolution": {"seconds": 8 * 3600}},
    }
    assert (await service.send("PUT", "/v1/sla-policies/normal", policy)).status_code == 200
    service.clock.now = T0  # Monday 09:00 UTC
    case = await open_case(service, priority="normal")
    assert parse(clock_of(case, "resolution")["due_at"]) == T0 + timedelta(hours=8)

    service.clock.now = T0 + timedelta(hours=3)  # 12:00: three hours used
    longer = {**nine_to_five, "hours": {"mon": [["09:00", "13:00"]], "tue": [["09:00", "20:00"]]}}
    edited = await service.send("PUT", "/v1/calendars/desk", longer)
    assert edited.status_code == 200, edited.text
    after = clock_of(await service.case(case["id"]), "resolution")
    # Five hours left: one on Monday until 13:00, four on Tuesday from 09:00.
    assert after["used_seconds"] == 3 * 3600
    assert parse(after["due_at"]) == T0 + timedelta(days=1, hours=4)


async def test_a_calendar_without_business_hours_is_refused_and_cases_still_open(
    service: Service,
) -> None:
    # A policy counting on no hours at all could never give a deadline: every case of its
    # priority would fail to open.
    for hours in ({}, {"mon": []}):
        put = await service.send(
            "PUT", "/v1/calendars/always", {"time_zone": "UTC", "hours": hours}
        )
        assert put.status_code == 422, put.text
        assert put.json()["type"].endswith("/invalid-calendar")
    case = await open_case(service)
    assert clock_of(case, "first_response")["due_at"] is not None


async def test_a_breach_goes_out_within_a_second_of_its_deadline(replicas: Replicas) -> None:
    service = await replicas.start(sla_tick_ms=250)  # the default tick, not the tests' 50 ms
    case = await open_case(service, priority="urgent")
    due = parse(clock_of(case, "first_response")["due_at"])
    replicas.clock.run(from_=due - timedelta(milliseconds=500))  # half a second to go

    (event,) = await breaches(service, case["id"], 1)
    breach = event.data_as(cs.CaseSlaBreached)
    assert breach.due_at == due
    assert breach.breached_at is not None
    # Detected on the service's clock, which ran with the wall clock past the deadline.
    assert timedelta(0) <= breach.breached_at - due <= timedelta(seconds=1)
