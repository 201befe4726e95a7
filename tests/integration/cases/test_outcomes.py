"""What a case comes to: first-contact resolution, CSAT, reopening within the window and a
follow-up case after it; merges and erasures through the kit's protocol; a poison event."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_contracts import KafkaRecord, dead_letter_topic
from crm_contracts import cases as cs
from crm_contracts import privacy as pv
from tests.integration.cases.conftest import Service, contact, erasure_requested, merged, resolved
from tests.support.harness import T0, of_type
from tests.support.kafka import header, produce, read_until


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


async def resolve(service: Service, case_id: str) -> None:
    response = await service.send(
        "POST", f"/v1/cases/{case_id}/transitions", {"to": "resolved", "resolution": "answered"}
    )
    assert response.status_code == 200, response.text


async def test_one_answer_and_done_is_first_contact_resolution_and_csat_is_credited(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("support_request", person, time=minutes(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    answer = resolved("chat", person, time=minutes(5), agent_id="agent-3", case_id=case["id"])
    await service.publish(answer)
    await service.wait_applied(answer.id)
    service.clock.now = minutes(6)
    await resolve(service, case["id"])

    await service.publish(
        resolved("feedback", person, time=minutes(60), csat=2, case_id=case["id"])
    )
    await service.wait_cases(person, lambda cases: cases[0]["csat"] == 2)
    await service.publish(
        resolved("feedback", person, time=minutes(70), csat=5, case_id=case["id"])
    )
    (case,) = await service.wait_cases(person, lambda cases: cases[0]["csat"] == 5)
    assert case["first_contact_resolution"] is True
    assert case["assignee"] == "agent-3"  # the agent who answered took the case
    assert case["resolved_by"] == "agent-7"  # the agent who resolved it (the caller)

    events = await service.case_events(lambda es: len(of_type(es, cs.CASE_CSAT_RECORDED)) == 2)
    resolved_event = of_type(events, cs.CASE_RESOLVED)[0].data_as(cs.CaseResolved)
    assert resolved_event.first_contact_resolution is True
    first, second = (e.data_as(cs.CaseCsatRecorded) for e in of_type(events, cs.CASE_CSAT_RECORDED))
    assert (first.csat, first.replaced_csat, first.agent_id) == (2, None, "agent-7")
    assert (second.csat, second.replaced_csat, second.agent_id) == (5, 2, "agent-7")


async def test_a_reply_after_the_answer_is_not_first_contact_resolution(service: Service) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=minutes(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    last = resolved("chat", person, time=minutes(9), case_id=case["id"])
    await service.publish(
        resolved("chat", person, time=minutes(5), agent_id="agent-3", case_id=case["id"]),
        last,
    )
    await service.wait_applied(last.id)
    await resolve(service, case["id"])
    (case,) = await service.wait_cases(person, lambda cases: cases[0]["status"] == "resolved")
    assert case["first_contact_resolution"] is False


async def test_a_reply_within_the_window_reopens_and_after_it_opens_a_linked_case(
    service: Service,
) -> None:
    person = contact()
    await service.publish(resolved("complaint", person, time=minutes(0)))
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    service.clock.now = minutes(30)
    await resolve(service, case["id"])

    await service.publish(resolved("chat", person, time=minutes(60), case_id=case["id"]))
    (case,) = await service.wait_cases(person, lambda cases: cases[0]["status"] == "open")
    assert case["reopened"] == 1
    assert case["first_contact_resolution"] is False
    assert sorted(k["cycle"] for k in case["clocks"] if k["metric"] == "resolution") == [1, 2]

    service.clock.now = minutes(90)
    await resolve(service, case["id"])
    late = resolved("chat", person, time=minutes(90) + timedelta(days=8), case_id=case["id"])
    await service.publish(late)
    cases = await service.wait_cases(person, lambda cases: len(cases) == 2)
    follow_up, old = cases  # newest first
    assert follow_up["linked_case_id"] == old["id"]
    assert old["status"] == "resolved"
    assert follow_up["status"] == "new"
    # Whoever picks up the follow-up sees the case it follows and how that one ended.
    detail = await service.case(follow_up["id"])
    (earlier,) = detail["earlier_cases"]
    assert (earlier["id"], earlier["status"], earlier["resolution"]) == (
        old["id"],
        "resolved",
        "answered",
    )


async def test_a_merge_moves_cases_to_the_survivor_and_late_events_follow(
    service: Service,
) -> None:
    survivor, duplicate = contact(), contact()
    await service.publish(resolved("complaint", duplicate, time=minutes(0)))
    (case,) = await service.wait_cases(duplicate, lambda cases: len(cases) == 1)
    merge = merged(survivor, duplicate, time=minutes(1))
    await service.publish(merge)
    await service.wait_applied(merge.id)
    assert await service.cases_of(duplicate) == []
    (moved,) = await service.cases_of(survivor)
    assert moved["id"] == case["id"]

    # A late complaint of the merged id joins the survivor's open case.
    late = resolved("complaint", duplicate, time=minutes(2))
    await service.publish(late)
    await service.wait_applied(late.id)
    (joined,) = await service.cases_of(survivor)
    detail = await service.case(joined["id"])
    assert late.id in [a["event_id"] for a in detail["activity"]]


async def test_an_erasure_removes_what_was_said_keeps_the_statistics_and_is_answered(
    service: Service,
) -> None:
    person = contact()
    await service.publish(
        resolved("complaint", person, time=minutes(0), subject="My address is 1 Elm St")
    )
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    request = erasure_requested(person, time=minutes(5))
    late = resolved("complaint", person, time=minutes(6), subject="Still here")
    await service.publish(request, late)
    await service.wait_applied(request.id, late.id)

    (erased,) = await service.cases_of(person)  # no case for the late complaint
    assert erased["erased"] is True
    assert "Elm" not in erased["subject"]
    assert erased["priority"] == case["priority"] and erased["opened_at"] == case["opened_at"]
    detail = await service.case(erased["id"])
    assert all(a["event_id"] is None and a["body"] is None for a in detail["activity"])

    records = await read_until(
        service.bootstrap, service.settings.privacy_topic, lambda rs: len(rs) >= 2
    )
    types = [dict(r.headers)["ce_type"].decode() for r in records]
    assert types.count(pv.PRIVACY_ERASURE_COMPLETED) == 1


async def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_applied(
    service: Service,
) -> None:

    person = contact()
    good = resolved("complaint", person, time=minutes(0))
    await produce(
        service.bootstrap,
        service.settings.interactions_topic,
        [KafkaRecord(key=person.encode(), value=b"{not json", headers=[])],
    )
    await service.publish(good)
    await service.wait_cases(person, lambda cases: len(cases) == 1)
    (dead,) = await read_until(
        service.bootstrap,
        dead_letter_topic(service.settings.interactions_topic),
        lambda rs: len(rs) >= 1,
    )
    assert header(dead, "x-error-reason") is not None


async def test_an_erasure_forgets_the_stored_answer_of_an_idempotent_create(
    service: Service,
) -> None:
    person = contact()
    body = {"contact_id": person, "subject": "My address is 1 Elm St"}
    headers = {**service.headers(), "Idempotency-Key": f"k-{person}"}
    first = await service.http.post("/v1/cases", json=body, headers=headers)
    assert first.status_code == 201, first.text
    request = erasure_requested(person, time=minutes(5))
    await service.publish(request)
    await service.wait_applied(request.id)

    # The answer kept for a repeat held what the person wrote: it goes with the erasure, and
    # the repeat is a new request, for an erased contact.
    again = await service.http.post("/v1/cases", json=body, headers=headers)
    assert again.status_code == 410, again.text
    assert "Elm" not in again.text
