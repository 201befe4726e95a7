"""A customer's message that reaches us after the agent's answer it came before (a slow
channel) changes nothing that the answer already settled (DESIGN.md, pattern 7)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.integration.cases.conftest import Service, contact, resolved
from tests.support.harness import T0


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_a_message_written_before_the_first_answer_but_delivered_after_it_keeps_fcr(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=at(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    answer = resolved("chat", person, time=at(20), agent_id="agent-1", case_id=case["id"])
    await service.publish(answer)
    await service.wait_applied(answer.id)
    service.clock.now = at(25)
    asked = await service.send("POST", f"/v1/cases/{case['id']}/transitions", {"to": "pending"})
    assert asked.status_code == 200, asked.text
    late = resolved("email", person, time=at(10), case_id=case["id"])  # written before it
    await service.publish(late)
    await service.wait_applied(late.id)
    assert (await service.case(case["id"]))["status"] == "pending"  # still waiting on them

    service.clock.now = at(30)
    done = await service.send("POST", f"/v1/cases/{case['id']}/transitions", {"to": "resolved"})
    assert done.status_code == 200, done.text
    resolved_case = done.json()
    assert resolved_case["first_contact_resolution"] is True
    assert [k["metric"] for k in resolved_case["clocks"]] == ["first_response", "resolution"]


async def test_a_reply_an_agent_already_answered_gets_a_next_response_met_by_that_answer(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=at(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    first = resolved("chat", person, time=at(20), agent_id="agent-1", case_id=case["id"])
    second = resolved("chat", person, time=at(40), agent_id="agent-1", case_id=case["id"])
    await service.publish(first, second)
    await service.wait_applied(first.id, second.id)
    reply = resolved("chat", person, time=at(30), case_id=case["id"])  # answered at 40
    await service.publish(reply)
    await service.wait_applied(reply.id)

    detail = await service.case(case["id"])
    (next_response,) = [k for k in detail["clocks"] if k["metric"] == "next_response"]
    assert next_response["used_seconds"] == 600
    assert next_response["stopped_at"] is not None and next_response["due_at"] is None
    service.clock.now = at(30 + 8 * 60 + 1)  # past its due time had it kept running
    done = await service.send("POST", f"/v1/cases/{case['id']}/transitions", {"to": "resolved"})
    assert done.status_code == 200, done.text
    assert done.json()["breaches"] == []
    assert done.json()["first_contact_resolution"] is False  # the customer did write again


async def test_an_answer_delivered_after_a_later_customer_message_does_not_answer_it(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=at(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    first = resolved("chat", person, time=at(20), agent_id="agent-1", case_id=case["id"])
    reply = resolved("chat", person, time=at(30), case_id=case["id"])
    await service.publish(first, reply)
    await service.wait_applied(first.id, reply.id)
    late = resolved("chat", person, time=at(25), agent_id="agent-1", case_id=case["id"])
    await service.publish(late)
    await service.wait_applied(late.id)

    detail = await service.case(case["id"])
    (next_response,) = [k for k in detail["clocks"] if k["metric"] == "next_response"]
    assert next_response["stopped_at"] is None  # the 09:30 message still awaits its answer


async def test_a_first_answer_delivered_after_the_customer_wrote_again_counts_that_message(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=at(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    reply = resolved("chat", person, time=at(30), case_id=case["id"])
    await service.publish(reply)
    await service.wait_applied(reply.id)
    answer = resolved("chat", person, time=at(20), agent_id="agent-1", case_id=case["id"])
    await service.publish(answer)
    await service.wait_applied(answer.id)

    detail = await service.case(case["id"])
    (next_response,) = [k for k in detail["clocks"] if k["metric"] == "next_response"]
    assert next_response["started_at"].startswith("2026-11-23T09:30:00")
    assert next_response["stopped_at"] is None
    service.clock.now = at(35)
    done = await service.send("POST", f"/v1/cases/{case['id']}/transitions", {"to": "resolved"})
    assert done.status_code == 200, done.text
    assert done.json()["first_contact_resolution"] is False  # they wrote after the answer
