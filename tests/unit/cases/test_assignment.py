"""Who gets a case: round robin, least busy, room and availability (crm_cases.assignment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_cases.assignment import Agent, Queue, Strategy, Waiting, choose_agent, counts, plan
from crm_contracts.cases import CaseStatus

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RR = Strategy.ROUND_ROBIN
LB = Strategy.LEAST_BUSY


def agent(id: str, *, load: int = 0, capacity: int = 5, available: bool = True) -> Agent:
    return Agent(id, available, capacity, load, frozenset({"support"}))


def waiting(n: int, queue: str = "support") -> list[Waiting]:
    return [Waiting(f"case-{i}", queue, T0 + timedelta(minutes=i)) for i in range(n)]


def test_round_robin_takes_the_agent_after_the_last_one() -> None:
    agents = [agent("a"), agent("b"), agent("c")]
    assert choose_agent(RR, agents, last_agent_id="a") == agents[1]


def test_round_robin_wraps_around_after_the_last_agent() -> None:
    agents = [agent("a"), agent("b")]
    assert choose_agent(RR, agents, last_agent_id="b") == agents[0]


def test_round_robin_starts_with_the_first_agent_by_id() -> None:
    assert choose_agent(RR, [agent("b"), agent("a")]) == agent("a")


def test_round_robin_skips_an_agent_without_room() -> None:
    agents = [agent("a"), agent("b", load=5), agent("c")]
    assert choose_agent(RR, agents, last_agent_id="a") == agents[2]


def test_round_robin_goes_on_after_an_agent_who_left_the_queue() -> None:
    assert choose_agent(RR, [agent("a"), agent("c")], last_agent_id="b") == agent("c")


def test_least_busy_takes_the_agent_with_the_fewest_cases() -> None:
    agents = [agent("a", load=3), agent("b", load=1), agent("c", load=2)]
    assert choose_agent(LB, agents) == agents[1]


def test_least_busy_breaks_a_tie_by_the_lower_id() -> None:
    assert choose_agent(LB, [agent("b", load=1), agent("a", load=1)]) == agent("a", load=1)


def test_an_unavailable_agent_gets_nothing() -> None:
    assert choose_agent(LB, [agent("a", available=False), agent("b", load=4)]) == agent("b", load=4)
    assert choose_agent(RR, [agent("a", available=False)]) is None


def test_nobody_with_room_means_no_agent() -> None:
    assert choose_agent(LB, [agent("a", load=2, capacity=2), agent("b", capacity=0)]) is None


def test_pending_resolved_and_closed_cases_take_no_slot() -> None:
    assert [s.value for s in CaseStatus if counts(s)] == ["new", "open", "on_hold"]


def test_a_plan_alternates_round_robin_over_two_agents() -> None:
    result = plan({"support": Queue("support", RR)}, [agent("a"), agent("b")], waiting(4))
    assert [who for _, who in result.assignments] == ["a", "b", "a", "b"]
    assert result.last_agent == {"support": "b"}


def test_a_plan_continues_round_robin_from_the_stored_pointer() -> None:
    result = plan({"support": Queue("support", RR, "a")}, [agent("a"), agent("b")], waiting(1))
    assert result.assignments == [("case-0", "b")]


def test_a_plan_fills_the_least_busy_agent_first_as_loads_grow() -> None:
    agents = [agent("a", load=2), agent("b")]
    result = plan({"support": Queue("support", LB)}, agents, waiting(4))
    assert [who for _, who in result.assignments] == ["b", "b", "a", "b"]
    assert result.last_agent == {}


def test_a_plan_assigns_the_oldest_cases_and_leaves_the_rest_waiting() -> None:
    cases = waiting(3)
    result = plan({"support": Queue("support", LB)}, [agent("a", capacity=2)], reversed(cases))
    assert result.assignments == [("case-0", "a"), ("case-1", "a")]


def test_a_plan_gives_a_case_only_to_agents_of_its_queue() -> None:
    billing = Agent("z", True, 5, 0, frozenset({"billing"}))
    queues = {"support": Queue("support", LB), "billing": Queue("billing", LB)}
    result = plan(queues, [billing, agent("a", load=4)], waiting(1) + waiting(1, "billing"))
    assert sorted(result.assignments) == [("case-0", "a"), ("case-0", "z")]


def test_a_plan_shares_an_agents_room_between_their_queues() -> None:
    both = Agent("a", True, 1, 0, frozenset({"support", "billing"}))
    queues = {"support": Queue("support", RR), "billing": Queue("billing", RR)}
    first = Waiting("old", "billing", T0)
    second = Waiting("new", "support", T0 + timedelta(minutes=1))
    assert plan(queues, [both], [second, first]).assignments == [("old", "a")]


def test_a_plan_leaves_cases_of_a_queue_that_does_not_assign() -> None:
    assert plan({}, [agent("a")], waiting(2)).assignments == []
