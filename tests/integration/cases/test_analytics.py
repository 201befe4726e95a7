"""Analytics of a week of cases, built through the service's real interfaces: interactions
on Kafka (requests, agents' answers, customers' replies, ratings), agents' transitions over
HTTP, and the SLA timer breaching a clock as the service's clock moves on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crm_cases.api.analytics import AnalyticsOut
from crm_contracts import CloudEvent
from tests.integration.cases.conftest import Service, contact, resolved, score_changed
from tests.support.harness import T0
from tests.support.kafka import eventually

WEEK = {"from": "2026-11-23T09:00:00Z", "to": "2026-11-30T09:00:00Z"}  # from T0, Monday 09:00


def mon(hour: float) -> datetime:
    return T0 + timedelta(hours=hour - 9)


def tue(hour: float) -> datetime:
    return mon(hour + 24)


async def open_case(service: Service, request: CloudEvent) -> str:
    """Publish a customer's request and wait for the case it opens."""
    assert request.subject is not None
    await service.publish(request)
    (case,) = await service.wait_cases(request.subject, lambda cases: len(cases) == 1)
    case_id: str = case["id"]
    return case_id


async def apply(service: Service, *events: CloudEvent) -> None:
    """Publish interactions and wait until the service has applied them."""
    await service.publish(*events)
    await service.wait_applied(*(e.id for e in events))


async def resolve_at(service: Service, case_id: str, at: datetime) -> None:
    """An agent resolves the case over HTTP at `at` (the service's clock)."""
    service.clock.now = at
    done = await service.send("POST", f"/v1/cases/{case_id}/transitions", {"to": "resolved"})
    assert done.status_code == 200, done.text


async def office_hours_for_normal_priority(service: Service) -> None:
    """Normal cases count Monday to Friday, 09:00 to 17:00 UTC; the others around the clock."""
    office = {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}
    office |= {day: [["09:00", "17:00"]] for day in ("wed", "thu", "fri")}
    put = await service.send("PUT", "/v1/calendars/office", {"time_zone": "UTC", "hours": office})
    assert put.status_code == 200, put.text
    policy = {
        "name": "Normal",
        "calendar_id": "office",
        "targets": {
            "first_response": {"seconds": 4 * 3600},
            "next_response": {"seconds": 8 * 3600, "pauses_in": ["on_hold"]},
            "resolution": {"seconds": 16 * 3600, "pauses_in": ["pending", "on_hold"]},
        },
    }
    put = await service.send("PUT", "/v1/sla-policies/normal", policy)
    assert put.status_code == 200, put.text


async def test_a_weeks_analytics_count_business_time_fcr_csat_and_breaches_by_queue(
    service: Service,
) -> None:
    await office_hours_for_normal_priority(service)
    a, b, c, d, e, g, z, y = (contact() for _ in range(8))
    tiers = {a: "gold", c: "platinum", d: "gold", g: "gold", z: "platinum"}
    scores = [score_changed(who, tier=tier, time=mon(-24)) for who, tier in tiers.items()]
    await service.publish(*scores)
    await service.wait_applied(*(s.id for s in scores))

    # Before the range: an urgent billing complaint, breached at once and left open.
    z_case = await open_case(service, resolved("complaint", z, time=mon(-10), queue="billing"))
    # A (high): answered in 20 minutes, resolved within the hour, rated 5.
    a_case = await open_case(service, resolved("complaint", a, time=mon(9), queue="billing"))
    # C (urgent): answered an hour late, resolved an hour past its 4 hours, rated 4.
    c_case = await open_case(service, resolved("complaint", c, time=mon(9.5), queue="billing"))
    await apply(
        service,
        resolved("chat", a, time=mon(9 + 20 / 60), agent_id="agent-1", case_id=a_case),
        resolved("chat", c, time=mon(10.5), agent_id="agent-2", case_id=c_case),
    )
    await resolve_at(service, a_case, mon(10))

    # G (high): answered in 10 minutes, resolved, reopened by the customer, answered and
    # resolved again: one hour of resolution time in each cycle; rated 2.
    g_case = await open_case(service, resolved("support_request", g, time=mon(12)))
    await apply(
        service, resolved("chat", g, time=mon(12 + 10 / 60), agent_id="agent-1", case_id=g_case)
    )
    await resolve_at(service, g_case, mon(13))
    await apply(
        service,
        resolved("chat", g, time=mon(14), case_id=g_case),
        resolved("chat", g, time=mon(14.25), agent_id="agent-1", case_id=g_case),
    )
    await resolve_at(service, c_case, mon(14.5))  # the timer breached its resolution at 13:30
    await resolve_at(service, g_case, mon(15))

    # B (normal, office hours): asks at 16:00 on Monday, answered at 10:00 on Tuesday (two
    # business hours, not eighteen), writes again, answered, resolved at noon; rated 3.
    b_case = await open_case(service, resolved("support_request", b, time=mon(16)))
    await apply(
        service,
        resolved("email", b, time=tue(10), agent_id="agent-3", case_id=b_case),
        resolved("email", b, time=tue(10.5), case_id=b_case),
        resolved("email", b, time=tue(11), agent_id="agent-3", case_id=b_case),
    )
    await resolve_at(service, b_case, tue(12))

    # E (low): opened by an agent, still new. D (high, returns): nobody answers; the timer
    # breaches its first response at 14:00.
    service.clock.now = tue(12.5)
    made = await service.send(
        "POST", "/v1/cases", {"contact_id": e, "subject": "Invoice copy", "priority": "low"}
    )
    assert made.status_code == 201, made.text
    d_case = await open_case(service, resolved("complaint", d, time=tue(13), queue="returns"))
    service.clock.now = tue(14.5)

    async def d_breached() -> bool:
        return bool((await service.case(d_case))["breaches"])

    await eventually(d_breached, timeout=30)

    await apply(
        service,
        *(
            resolved("feedback", who, time=tue(14.5), case_id=case_id, csat=csat)
            for who, case_id, csat in (
                (a, a_case, 5),
                (b, b_case, 3),
                (c, c_case, 4),
                (g, g_case, 2),
            )
        ),
        resolved("feedback", z, time=tue(14.5), case_id=z_case, csat=1),
    )
    # Opened at the end of the range: not in it.
    await open_case(service, resolved("complaint", y, time=mon(9 + 7 * 24)))

    week = AnalyticsOut.model_validate(await service.ok("/v1/analytics", **WEEK))

    assert (week.opened, week.resolved) == (6, 4)  # A B C D E G; not Z (before), not Y (at `to`)
    assert week.open_by_priority.model_dump() == {"urgent": 0, "high": 1, "normal": 0, "low": 1}
    sla = week.sla_attainment
    # First response: A, B and G on time; C late, D breached unanswered; E not yet due.
    assert (sla.first_response.on_time, sla.first_response.breached) == (3, 2)
    assert (sla.first_response.running, sla.first_response.attainment_percent) == (1, 60.0)
    # Next response: B's and G's answers to their replies, both on time.
    assert (sla.next_response.on_time, sla.next_response.breached) == (2, 0)
    assert sla.next_response.attainment_percent == 100.0
    # Resolution: A, B, and both of G's cycles on time; C late; D and E still running.
    assert (sla.resolution.on_time, sla.resolution.breached, sla.resolution.running) == (4, 1, 2)
    assert sla.resolution.attainment_percent == 80.0
    # Business seconds to the first answer: G 600, A 1200, C 3600, B 7200 (office hours).
    assert week.first_response.model_dump() == {
        "count": 4,
        "median_seconds": 2400.0,
        "p90_seconds": 6120.0,  # 3600 + 0.7 * (7200 - 3600)
    }
    # Business seconds to resolution: A 3600, G 3600 + 3600, B 14400 (office hours), C 18000.
    assert week.resolution.model_dump() == {
        "count": 4,
        "median_seconds": 10800.0,
        "p90_seconds": 16920.0,  # 14400 + 0.7 * (18000 - 14400)
    }
    # First-contact resolution: A and C; B wrote again after the answer, G reopened.
    assert week.fcr.model_dump() == {"resolved": 4, "first_contact": 2, "rate_percent": 50.0}
    # CSAT of A, B, C and G; Z's rating is of a case opened before the range.
    assert week.csat.model_dump() == {"rated": 4, "average": 3.5}
    assert [q.model_dump() for q in week.breaches_by_queue] == [
        {
            "queue": "billing",
            "breaches": 2,
            "first_response": 1,
            "next_response": 0,
            "resolution": 1,
        },
        {
            "queue": "returns",
            "breaches": 1,
            "first_response": 1,
            "next_response": 0,
            "resolution": 0,
        },
    ]


async def test_analytics_refuse_a_bad_range_need_read_scope_and_measure_nothing_as_null(
    service: Service,
) -> None:
    async def problem(**params: str) -> dict[str, Any]:
        answer = await service.get("/v1/analytics", **params)
        assert answer.status_code == 422, answer.text
        found: dict[str, Any] = answer.json()
        return found

    same = await problem(**{"from": WEEK["from"], "to": WEEK["from"]})
    assert same["type"].endswith("/invalid-range")
    too_long = await problem(**{"from": "2026-01-01T00:00:00Z", "to": "2027-01-03T00:00:00Z"})
    assert too_long["type"].endswith("/range-too-long")
    zoneless = await problem(**{"from": "2026-11-23T00:00:00", "to": "2026-11-30T00:00:00"})
    assert zoneless["type"].endswith("/invalid-range")
    await problem(**{"from": WEEK["from"]})  # `to` is required
    for beyond in (
        {"from": "9999-12-31T00:00:00-14:00", "to": "9999-12-31T12:00:00-14:00"},
        {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-01T12:00:00+14:00"},
    ):  # a time a zone's offset moves out of years 1 to 9999 UTC
        assert (await problem(**beyond))["type"].endswith("/invalid-range")

    writer_only = await service.http.get(
        "/v1/analytics", params=WEEK, headers=service.headers("cases:write")
    )
    assert writer_only.status_code == 403

    empty = await service.ok("/v1/analytics", **WEEK)
    assert empty["from"] == WEEK["from"] and empty["to"] == WEEK["to"]
    assert (empty["opened"], empty["resolved"], empty["breaches_by_queue"]) == (0, 0, [])
    assert empty["sla_attainment"]["first_response"] == {
        "on_time": 0,
        "breached": 0,
        "running": 0,
        "attainment_percent": None,
    }
    assert empty["first_response"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert empty["fcr"]["rate_percent"] is None
    assert empty["csat"] == {"rated": 0, "average": None}
