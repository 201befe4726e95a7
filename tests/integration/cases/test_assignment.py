"""Queues hand their cases to agents with room, through HTTP and Kafka against the real
servers: each assignment is seen on the case and as `crm.case.assigned` on the cases topic."""

from __future__ import annotations

import asyncio
from typing import Any

from crm_cases.handlers import interactions
from crm_cases.handlers.context import Context
from crm_contracts import cases as cs
from crm_kit.db import connect
from tests.integration.cases.conftest import Replicas, Service, contact, resolved
from tests.support.harness import of_type
from tests.support.kafka import eventually
from tests.support.statements import statements_on


async def put_queue(service: Service, name: str = "support", **body: Any) -> dict[str, Any]:
    response = await service.send("PUT", f"/v1/queues/{name}", body)
    assert response.status_code == 200, response.text
    queue: dict[str, Any] = response.json()
    return queue


async def put_agent(
    service: Service,
    agent_id: str,
    *,
    capacity: int = 5,
    available: bool = True,
    queues: tuple[str, ...] = ("support",),
) -> dict[str, Any]:
    body = {"name": agent_id.title(), "capacity": capacity, "available": available}
    response = await service.send("PUT", f"/v1/agents/{agent_id}", {**body, "queues": queues})
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def open_case(service: Service, queue: str = "support") -> dict[str, Any]:
    """A case opened by hand a minute after the one before (oldest first is well defined)."""
    service.clock.advance(minutes=1)
    body = {"contact_id": contact(), "subject": "Help", "queue": queue}
    response = await service.send("POST", "/v1/cases", body)
    assert response.status_code == 201, response.text
    case: dict[str, Any] = response.json()
    return case


async def move(service: Service, case_id: str, to: str) -> dict[str, Any]:
    response = await service.send("POST", f"/v1/cases/{case_id}/transitions", {"to": to})
    assert response.status_code == 200, response.text
    case: dict[str, Any] = response.json()
    return case


async def assignments(service: Service, count: int) -> dict[str, str | None]:
    """Case → assignee of the crm.case.assigned events on the cases topic, once there are
    `count` (keyed by contact, so in order per contact only)."""
    events = await service.case_events(lambda es: len(of_type(es, cs.CASE_ASSIGNED)) >= count)
    data = [e.data_as(cs.CaseAssigned) for e in of_type(events, cs.CASE_ASSIGNED)]
    assert len(data) == count
    return {d.case_id: d.assignee for d in data}


async def assignee_of(service: Service, case_id: str) -> str | None:
    assignee: str | None = (await service.case(case_id))["assignee"]
    return assignee


async def test_round_robin_over_two_agents_alternates(service: Service) -> None:
    await put_queue(service, strategy="round_robin")
    await put_agent(service, "ann")
    await put_agent(service, "bob")

    first, second = await open_case(service), await open_case(service)
    person = contact()
    complaint = resolved("complaint", person, queue="support")
    await service.publish(complaint)
    (third,) = await service.wait_cases(person, lambda cases: len(cases) == 1)

    assert first["assignee"] == "ann"
    assert second["assignee"] == "bob"
    assert third["assignee"] == "ann"
    assert await assignee_of(service, second["id"]) == "bob"
    assert await assignments(service, 3) == {
        first["id"]: "ann",
        second["id"]: "bob",
        third["id"]: "ann",
    }
    assert (await service.ok("/v1/queues/support"))["last_agent_id"] == "ann"


async def test_least_busy_picks_the_agent_with_fewer_open_cases_not_counting_pending(
    service: Service,
) -> None:
    await put_queue(service, strategy="least_busy")
    await put_agent(service, "ann")
    await put_agent(service, "bob")
    cases = [await open_case(service) for _ in range(4)]
    assert [c["assignee"] for c in cases] == ["ann", "bob", "ann", "bob"]  # ties: lower id

    for case in cases[0::2]:  # both of ann's wait on the customer now
        await move(service, case["id"], "pending")
    fifth, sixth = await open_case(service), await open_case(service)

    assert fifth["assignee"] == "ann"  # 0 open against bob's 2
    assert sixth["assignee"] == "ann"  # 1 open against 2, though she has 4 cases
    agents = {a["id"]: a for a in await service.ok("/v1/agents")}
    assert (agents["ann"]["load"], agents["bob"]["load"]) == (2, 2)
    events = await assignments(service, 6)
    assert (events[fifth["id"]], events[sixth["id"]]) == ("ann", "ann")


async def test_an_unavailable_agent_gets_nothing(service: Service) -> None:
    await put_queue(service)
    await put_agent(service, "ann", available=False)
    await put_agent(service, "bob")

    cases = [await open_case(service) for _ in range(3)]

    assert [c["assignee"] for c in cases] == ["bob", "bob", "bob"]
    assert set((await assignments(service, 3)).values()) == {"bob"}
    assert (await service.ok("/v1/agents/ann"))["load"] == 0


async def test_with_no_room_a_case_waits_and_is_assigned_when_the_agent_resolves_one(
    service: Service,
) -> None:
    await put_queue(service)
    await put_agent(service, "ann", capacity=1)
    busy = await open_case(service)
    assert busy["assignee"] == "ann"

    person = contact()
    complaint = resolved("complaint", person, queue="support")
    await service.publish(complaint)
    await service.wait_applied(complaint.id)
    (waiting,) = await service.cases_of(person)
    assert waiting["assignee"] is None
    assert (await service.ok("/v1/queues/support"))["waiting"] == 1

    await move(service, busy["id"], "resolved")

    assert await assignee_of(service, waiting["id"]) == "ann"
    assert (await service.ok("/v1/queues/support"))["waiting"] == 0
    assert await assignments(service, 2) == {busy["id"]: "ann", waiting["id"]: "ann"}


async def test_a_case_moved_to_pending_frees_its_agents_slot(service: Service) -> None:
    await put_queue(service)
    await put_agent(service, "ann", capacity=1)
    busy, waiting = await open_case(service), await open_case(service)
    assert waiting["assignee"] is None

    await move(service, busy["id"], "pending")

    assert await assignee_of(service, waiting["id"]) == "ann"


async def test_an_agent_made_available_picks_up_the_waiting_case(service: Service) -> None:
    await put_queue(service)
    await put_agent(service, "ann", available=False)
    older, newer = await open_case(service), await open_case(service)
    assert (older["assignee"], newer["assignee"]) == (None, None)

    response = await service.send("PATCH", "/v1/agents/ann", {"available": True, "capacity": 1})

    assert response.status_code == 200, response.text
    assert (response.json()["available"], response.json()["load"]) == (True, 1)
    assert await assignee_of(service, older["id"]) == "ann"  # the oldest first
    assert await assignee_of(service, newer["id"]) is None
    assert await assignments(service, 1) == {older["id"]: "ann"}


async def test_an_agent_who_joins_a_queue_and_more_capacity_take_waiting_cases(
    service: Service,
) -> None:
    await put_queue(service, "billing", strategy="least_busy")
    waiting = [await open_case(service, "billing") for _ in range(2)]

    await put_agent(service, "cid", capacity=1, queues=("billing",))
    assert await assignee_of(service, waiting[0]["id"]) == "cid"
    assert await assignee_of(service, waiting[1]["id"]) is None

    response = await service.send("PATCH", "/v1/agents/cid", {"capacity": 2})
    assert response.status_code == 200, response.text
    assert await assignee_of(service, waiting[1]["id"]) == "cid"


async def test_a_customer_request_into_a_queue_that_does_not_assign_waits(
    service: Service,
) -> None:
    await put_queue(service, auto_assign=False)
    await put_agent(service, "ann")
    person = contact()
    complaint = resolved("complaint", person)
    await service.publish(complaint)
    (case,) = await service.wait_cases(person, lambda cases: len(cases) == 1)
    assert case["assignee"] is None

    await put_queue(service, auto_assign=True)

    assert await assignee_of(service, case["id"]) == "ann"


async def test_queues_and_agents_refuse_what_they_cannot_act_on(service: Service) -> None:
    await put_queue(service)

    unknown_queue = await service.send(
        "PUT", "/v1/agents/ann", {"name": "Ann", "capacity": 1, "queues": ["nowhere"]}
    )
    assert unknown_queue.status_code == 422
    assert unknown_queue.json()["type"].endswith("/queue-not-found")
    assert unknown_queue.json()["queues"] == ["nowhere"]
    bad_strategy = await service.send("PUT", "/v1/queues/support", {"strategy": "fastest"})
    assert bad_strategy.status_code == 422
    negative = await service.send("PUT", "/v1/agents/ann", {"name": "Ann", "capacity": -1})
    assert negative.status_code == 422
    unknown_field = await service.send("PATCH", "/v1/agents/ann", {"skills": ["de"]})
    assert unknown_field.status_code == 422
    bad_name = await service.send("PUT", "/v1/queues/Not-A-Code", {})
    assert bad_name.status_code == 422

    assert (await service.get("/v1/agents/nobody")).status_code == 404
    missing = await service.send("PATCH", "/v1/agents/nobody", {"available": False})
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/agent-not-found")
    assert (await service.get("/v1/queues/nowhere")).status_code == 404

    reader = service.headers("cases:read", "cases:write")
    refused = await service.http.put("/v1/queues/support", json={}, headers=reader)
    assert refused.status_code == 403
    listed = await service.http.get("/v1/queues", headers=service.headers("cases:read"))
    assert listed.status_code == 200
    assert [q["name"] for q in listed.json()] == ["support"]


async def test_a_slot_freed_behind_the_services_back_is_filled_by_the_sweep(
    replicas: Replicas,
) -> None:
    service = await replicas.start(assign_sweep_seconds=0.1)
    await put_queue(service)
    await put_agent(service, "ann", available=False)
    waiting = await open_case(service)
    await service.fetch("UPDATE case_agents SET available = true WHERE id = 'ann'")

    async def picked_up() -> bool:
        return await assignee_of(service, waiting["id"]) == "ann"

    await eventually(picked_up)
    assert await assignments(service, 1) == {waiting["id"]: "ann"}


async def test_a_batch_is_assigned_in_the_same_statements_whatever_its_size(
    service: Service,
) -> None:
    await put_queue(service, strategy="least_busy")
    for agent in ("ann", "bob", "cid"):
        await put_agent(service, agent, capacity=100)
    ctx = Context(service.settings, service.clock)
    conn = await connect(service.settings.database_url)
    sent: dict[int, list[str]] = {}
    try:
        for size in (2, 31):
            batch = [resolved("complaint", contact()) for _ in range(size)]
            async with conn.transaction(), statements_on(conn) as statements:
                await interactions.record_interactions(conn, batch, ctx)
            sent[size] = statements
    finally:
        await conn.close()

    assert len(sent[31]) == len(sent[2])
    agents = await service.ok("/v1/agents")
    assert [a["load"] for a in agents] == [11, 11, 11]
    assert (await service.ok("/v1/queues/support"))["waiting"] == 0


async def test_cases_opened_at_once_never_take_an_agent_past_their_capacity(
    service: Service,
) -> None:
    await put_queue(service, strategy="round_robin")
    await put_agent(service, "ann", capacity=2)
    await put_agent(service, "bob", capacity=2)

    cases = await asyncio.gather(*(open_case(service) for _ in range(7)))

    assignees = [c["assignee"] for c in cases]
    assert sorted(a for a in assignees if a) == ["ann", "ann", "bob", "bob"]
    assert assignees.count(None) == 3
    assert (await service.ok("/v1/queues/support"))["waiting"] == 3
    assert [a["load"] for a in await service.ok("/v1/agents")] == [2, 2]
