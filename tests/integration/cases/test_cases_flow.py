"""Cases from interactions and by hand, through Kafka and HTTP against the real servers."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_contracts import cases as cs
from tests.integration.cases.conftest import Service, contact, resolved, score_changed
from tests.support.harness import T0, of_type


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def clock_of(case: dict, metric: str, cycle: int = 1) -> dict:
    return next(k for k in case["clocks"] if k["metric"] == metric and k["cycle"] == cycle)


async def test_a_platinum_customers_complaint_opens_an_urgent_case_with_the_tight_policy(
    service: Service,
) -> None:
    vip = contact()
    await service.publish(score_changed(vip, tier="platinum", time=at(-60)))
    await service.publish(resolved("complaint", vip, time=at(0), subject="Parcel never arrived"))

    (case,) = await service.wait_cases(vip, lambda cases: len(cases) == 1)
    assert case["priority"] == "urgent"
    assert case["subject"] == "Parcel never arrived"
    assert case["status"] == "new"
    assert case["category"] == "complaint"
    first = clock_of(case, "first_response")
    assert first["target_seconds"] == 1800  # the urgent policy: 30 minutes
    assert parse(first["due_at"]) == at(30)  # from the complaint's time, not arrival
    events = await service.case_events(lambda es: len(of_type(es, cs.CASE_OPENED)) == 1)
    (opened,) = of_type(events, cs.CASE_OPENED)
    data = opened.data_as(cs.CaseOpened)
    assert data.priority == "urgent"
    assert opened.time == at(0)
    assert data.sla.first_response_due_at == at(30)


async def test_two_requests_of_one_new_person_in_one_batch_make_one_case(
    service: Service,
) -> None:
    person = contact()
    first = resolved("support_request", person, time=at(0))
    second = resolved("support_request", person, time=at(1))
    await service.publish(first, second)

    await service.wait_applied(first.id, second.id)
    (case,) = await service.cases_of(person)
    detail = await service.case(case["id"])
    assert [a["event_id"] for a in detail["activity"]] == [first.id, second.id]


async def test_an_agent_response_meets_first_response_and_a_reply_starts_next_response(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=at(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)

    await service.publish(
        resolved("chat", person, time=at(20), agent_id="agent-1", case_id=case["id"]),
        resolved("chat", person, time=at(25), case_id=case["id"]),
    )
    (case,) = await service.wait_cases(
        person, lambda cases: any(k["metric"] == "next_response" for k in cases[0]["clocks"])
    )
    assert case["status"] == "open"
    assert parse(case["first_response_at"]) == at(20)
    assert parse(clock_of(case, "first_response")["stopped_at"]) == at(20)
    next_response = clock_of(case, "next_response")
    assert parse(next_response["started_at"]) == at(25)
    assert parse(next_response["due_at"]) == at(25 + 8 * 60)  # the normal policy: 8 hours
    assert case["assignee"] == "agent-1"


async def test_a_case_paused_while_pending_keeps_its_resolution_deadline_honest(
    service: Service,
) -> None:
    person = contact()
    response = await service.send(
        "POST", "/v1/cases", {"contact_id": person, "subject": "Refund", "priority": "high"}
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert parse(clock_of(case, "resolution")["due_at"]) == T0 + timedelta(hours=8)

    service.clock.advance(hours=2)
    moved = await service.send(
        "POST", f"/v1/cases/{case['id']}/transitions", {"to": "pending", "reason": "asked"}
    )
    assert moved.status_code == 200, moved.text
    paused = clock_of(moved.json(), "resolution")
    assert paused["running_since"] is None and paused["due_at"] is None
    assert paused["used_seconds"] == 2 * 3600

    # The customer answers three days later: the six hours left count from then.
    await service.publish(
        resolved("chat", person, time=T0 + timedelta(days=3, hours=2), case_id=case["id"])
    )
    (case,) = await service.wait_cases(person, lambda cases: cases[0]["status"] == "open")
    resumed = clock_of(case, "resolution")
    assert parse(resumed["due_at"]) == T0 + timedelta(days=3, hours=8)


async def test_an_invalid_transition_is_a_409_naming_the_allowed_ones(service: Service) -> None:
    created = await service.send("POST", "/v1/cases", {"contact_id": contact(), "subject": "X"})
    case_id = created.json()["id"]
    done = await service.send(
        "POST", f"/v1/cases/{case_id}/transitions", {"to": "closed", "resolution": "duplicate"}
    )
    assert done.status_code == 200, done.text

    refused = await service.send("POST", f"/v1/cases/{case_id}/transitions", {"to": "open"})
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"].endswith("/invalid-transition")
    assert problem["case_status"] == "closed"
    assert problem["allowed"] == []
