"""The simulator's generator: same seed, same events; journeys that a real business would see."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest

from crm_contracts import decode_json, decode_record
from crm_stack.simulate.journeys import (
    Route,
    SimConfig,
    SimEvent,
    Source,
    TrafficGenerator,
    sequence_number,
)
from crm_stack.simulate.sender import binary_record, structured_record

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def events(count: int = 5000, **settings: object) -> list[SimEvent]:
    config = SimConfig(**{"seed": 42, "contacts": 300, "start": START, "rate": 100.0, **settings})
    return list(itertools.islice(TrafficGenerator(config), count))


def identity(event: SimEvent) -> dict[str, object]:
    return dict(event.event["data"]["identity"])


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first, again, other = events(2000), events(2000), events(2000, seed=43)
    assert [e.event for e in first] == [e.event for e in again]
    assert [(e.key, e.route) for e in first] == [(e.key, e.route) for e in again]
    assert {e.id for e in first}.isdisjoint({e.id for e in other})


def test_every_event_is_a_valid_interaction_in_both_encodings() -> None:
    for event in events(3000):
        decoded = decode_json(event.event)
        assert decoded.type == "crm.interaction.recorded"
        value, headers = binary_record(event)
        assert dict(headers)["ce_id"].decode() == event.id
        assert decode_record(value, headers).id == event.id
        assert b"@" not in event.key.encode()
        value, headers = structured_record(event)
        assert decode_record(value, headers).id == event.id
        assert dict(headers)["content-type"] == b"application/cloudevents+json"


def test_phone_numbers_are_possible_ones_so_contacts_keeps_them() -> None:
    phones = {identity(e)["phone"] for e in events(5000) if "phone" in identity(e)}
    assert phones
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(str(p))) for p in phones)


def test_identity_is_stitched_anonymous_id_then_email_then_phone() -> None:
    seen: dict[int, list[SimEvent]] = defaultdict(list)
    for event in events(8000):
        if not event.duplicate:
            seen[event.person].append(event)
    stitched = 0
    for journey in seen.values():
        first = identity(journey[0])
        assert set(first) == {"anonymous_id"}, "a journey starts with an anonymous visit"
        signup = next((i for i, e in enumerate(journey) if e.step == "signup"), None)
        if signup is None:
            assert {e.step for e in journey} == {"page_view"}
            continue
        assert set(identity(journey[signup])) == {"anonymous_id", "email"}
        assert all("email" not in identity(e) for e in journey[:signup])
        linked = [i for i, e in enumerate(journey) if {"email", "phone"} <= set(identity(e))]
        phone_only = [i for i, e in enumerate(journey) if set(identity(e)) == {"phone"}]
        if phone_only:
            stitched += 1
            assert linked and linked[0] < phone_only[0], "a phone alone only once linked"
    assert stitched > 10


def test_refunds_and_case_feedback_refer_to_the_persons_own_orders_and_cases() -> None:
    orders: dict[int, set[str]] = defaultdict(set)
    cases: dict[int, set[str]] = defaultdict(set)
    refunds = case_feedback = 0
    for event in events(10000):
        data = event.event["data"]
        props = data.get("properties", {})
        if data["kind"] == "purchase":
            orders[event.person].add(props["order_id"])
        if data["kind"] == "refund":
            refunds += 1
            assert props["order_id"] in orders[event.person]
        if data["kind"] in ("complaint", "support_request") and "case_id" in data:
            cases[event.person].add(data["case_id"])
        if data["kind"] in ("feedback", "case_reply") and "case_id" in data:
            case_feedback += data["kind"] == "feedback"
            assert data["case_id"] in cases[event.person]
    assert refunds and case_feedback


def test_the_mix_covers_every_journey_step_source_and_route() -> None:
    stream = events(20000)
    steps = Counter(e.step for e in stream)
    for step in (
        "page_view", "signup", "email_opened", "email_clicked", "purchase", "refund",
        "complaint", "support_request", "case_reply", "feedback", "consent_given",
        "consent_withdrawn", "unsubscribe", "membership_joined", "referral", "review",
    ):  # fmt: skip
        assert steps[step] > 0, step
    assert {e.source for e in stream} == {s.value for s in Source}
    routes = Counter(e.route for e in stream)
    assert 0.07 < routes[Route.HTTP] / len(stream) < 0.13
    assert routes[Route.KAFKA_STRUCTURED] and routes[Route.KAFKA_BINARY]
    with_case = [e for e in stream if e.step == "support_request" and "case_id" in e.event["data"]]
    assert 0 < len(with_case) < steps["support_request"]
    assert any("campaign_id" in e.event["data"] for e in stream if e.step == "purchase")


def test_customers_buy_in_rhythms_and_baskets_of_their_own() -> None:
    purchases: dict[int, list[float]] = defaultdict(list)
    for event in events(30000, contacts=200):
        if event.step == "purchase" and not event.duplicate:
            purchases[event.person].append(float(event.event["data"]["value"]["amount"]))
    buyers = [amounts for amounts in purchases.values() if len(amounts) >= 5]
    counts = sorted(len(a) for a in buyers)
    means = sorted(sum(a) / len(a) for a in buyers)
    assert counts[-1] > 3 * counts[0], "some buy far more often than others"
    assert means[-1] > 2 * means[0], "basket sizes differ from customer to customer"


def test_churners_go_quiet() -> None:
    stream = events(30000, contacts=200)
    last_seen: dict[int, int] = {}
    for position, event in enumerate(stream):
        last_seen[event.person] = position
    quiet = [p for p, pos in last_seen.items() if pos < len(stream) // 2]
    assert len(quiet) > 20
    assert len(last_seen) - len(quiet) > 50, "most customers stay"


def test_duplicates_are_exact_copies_sent_after_the_original() -> None:
    stream = events(20000)
    first_at: dict[str, int] = {}
    duplicates = 0
    for position, event in enumerate(stream):
        if event.duplicate:
            duplicates += 1
            original = stream[first_at[event.id]]
            assert original.event == event.event and original.key == event.key
            assert position > first_at[event.id]
        else:
            assert event.id not in first_at
            first_at[event.id] = position
    assert 0.005 < duplicates / len(stream) < 0.02


def test_event_times_follow_the_send_schedule_with_a_share_of_late_events() -> None:
    stream = [e for e in events(10000) if not e.duplicate]
    late = [e for e in stream if e.late]
    assert 0.01 < len(late) / len(stream) < 0.035
    for event in stream:
        when = datetime.fromisoformat(event.event["time"].replace("Z", "+00:00"))
        scheduled = START + timedelta(seconds=event.n / 100.0)
        if event.late:
            assert scheduled - timedelta(days=3, seconds=1) <= when < scheduled
        else:
            assert abs(when - scheduled) < timedelta(milliseconds=1)


def test_a_backfill_spreads_history_over_the_days_before_the_start() -> None:
    stream = [e for e in events(3000, backfill_events=2000, late_share=0) if not e.duplicate]
    times = [datetime.fromisoformat(e.event["time"].replace("Z", "+00:00")) for e in stream]
    history = [t for e, t in zip(stream, times, strict=True) if e.n < 2000]
    live = [t for e, t in zip(stream, times, strict=True) if e.n >= 2000]
    assert min(history) == START - timedelta(days=90)
    assert max(history) < START <= min(live)
    assert history == sorted(history)


def test_retime_restarts_the_clock_at_a_new_rate() -> None:
    generator = TrafficGenerator(SimConfig(seed=5, contacts=50, start=START, late_share=0))
    list(itertools.islice(generator, 100))
    later = START + timedelta(hours=1)
    generator.retime(start=later, rate=1000.0)
    event = next(e for e in generator if not e.duplicate)
    assert event.event["time"] == "2026-11-23T10:00:00.000Z"


def test_sequence_numbers_are_read_back_from_the_ids_of_one_seed_only() -> None:
    event = events(1)[0]
    assert sequence_number(event.id, 42) == event.n
    assert sequence_number(event.id, 43) is None
    assert sequence_number("evt-0001", 42) is None


@pytest.mark.parametrize("bad", [{"rate": 0}, {"contacts": 0}, {"http_share": 1.5}])
def test_a_config_out_of_range_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**bad)  # type: ignore[arg-type]
