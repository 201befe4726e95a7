"""Running aggregates give exactly the scores and reasons of the full recompute from facts."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_scoring.aggregates import (
    Aggregates,
    Crossing,
    advance,
    aggregate,
    card,
    crossing,
    explain_folded,
    fold_changes,
)
from crm_scoring.domain import Change, Fact, describe, explain, score
from crm_scoring.model import load_model
from crm_scoring.repository import aggregates_from_json, aggregates_to_json

MODEL = load_model()
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KINDS = ["page_view", "email_clicked", "chat", "complaint", "unsubscribe", "feedback", "signup"]
CASE_KINDS = ["case_opened", "case_reopened", "case_resolved", "case_closed", "case_sla_breached"]


def random_fact(rng: random.Random, n: int, span_days: float) -> Fact:
    """A fact of any kind that scores, at a random second within `span_days` before T0."""
    when = T0 - timedelta(seconds=rng.randrange(int(span_days * 86_400)))
    roll = rng.random()
    if roll < 0.3:
        kind = "purchase" if rng.random() < 0.8 else "refund"
        amount = Decimal(rng.randrange(100, 90_000)) / 100
        currency = rng.choice(["EUR", "USD", "GBP", "JPY"])
        return Fact(f"f{n}", kind, when, channel="store", amount=amount, currency=currency)
    if roll < 0.45:
        kind = rng.choice([*CASE_KINDS, "case_csat"])
        csat = rng.randint(1, 5) if kind == "case_csat" else None
        detail = "resolution" if kind == "case_sla_breached" else None
        return Fact(
            f"f{n}", kind, when, case_id=f"case-{rng.randrange(4)}", csat=csat, detail=detail
        )
    return Fact(
        f"f{n}",
        rng.choice(KINDS),
        when,
        channel=rng.choice(["web", "email", "store", "phone", "social", "unknown"]),
        csat=rng.choice([None, None, rng.randint(1, 5)]),
        nps=rng.choice([None, None, rng.randint(0, 10)]),
    )


def history(seed: int) -> list[Fact]:
    rng = random.Random(seed)
    span = rng.choice([20.0, 90.0, 400.0, 1_100.0])
    return [random_fact(rng, n, span) for n in range(rng.randrange(1, 60))]


def crossing_facts(stored: list[Fact], edges: Crossing) -> list[Fact]:
    """What repository.facts_crossing reads: the stored facts in the crossing's ranges."""
    return [
        f
        for f in stored
        if f.occurred_at > edges.after
        or (
            edges.window_from <= f.occurred_at < edges.window_to
            and f.kind in ("purchase", "refund")
        )
        or edges.lookback_from < f.occurred_at <= edges.lookback_to
    ]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), offset_days=st.floats(-400, 400))
def test_aggregates_of_all_facts_score_as_the_full_recompute(seed: int, offset_days: float) -> None:
    facts = history(seed)
    as_of = T0 + timedelta(days=offset_days)
    assert card(aggregate(facts, as_of, MODEL), MODEL) == score(facts, as_of, MODEL)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_facts_arriving_late_and_out_of_order_score_as_the_full_recompute(seed: int) -> None:
    rng = random.Random(seed)
    facts = history(seed)
    rng.shuffle(facts)  # arrival order unrelated to event time
    moment = T0 - timedelta(days=rng.choice([0, 30, 200]))
    stored: list[Fact] = []
    state: Aggregates | None = None
    previous = published = None
    while facts:
        batch = [facts.pop() for _ in range(min(len(facts), rng.randint(1, 4)))]
        moment = max(
            [moment + timedelta(hours=rng.expovariate(1 / 40)), *(f.occurred_at for f in batch)]
        )
        if state is None:
            before = aggregate(stored, moment, MODEL)
        else:
            before = state.copy()
            advance(before, moment, crossing_facts(stored, crossing(before, moment, MODEL)), MODEL)
        if rng.random() < 0.3:  # a merge brings many facts under one change
            changes = [Change("merged contact c-2", tuple(batch))]
        else:
            changes = [Change(describe(f), (f,)) for f in batch]
        folded = fold_changes(before, changes, MODEL)
        expected_reasons = explain(
            facts_before=stored,
            changes=changes,
            as_of=moment,
            model=MODEL,
            previous=previous,
            published=published,
        )
        stored += batch
        assert folded.card == score(stored, moment, MODEL)
        reasons = explain_folded(folded, previous=previous, published=published, model=MODEL)
        assert reasons == expected_reasons
        state, previous = folded.aggregates, folded.card
        if rng.random() < 0.5:
            published = folded.card


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.lists(st.floats(0, 400), min_size=1, max_size=6))
def test_time_passing_scores_as_the_full_recompute(seed: int, steps: list[float]) -> None:
    facts = history(seed)
    moment = T0 - timedelta(days=500)  # facts in the future of the first moments count later
    state = aggregate(facts, moment, MODEL)
    for days in steps:
        moment += timedelta(days=days)
        advance(state, moment, crossing_facts(facts, crossing(state, moment, MODEL)), MODEL)
        assert card(state, MODEL) == score(facts, moment, MODEL)


def test_decayed_sums_move_their_anchor_long_before_they_could_overflow() -> None:
    facts = [Fact("f1", "purchase", T0, channel="store", amount=Decimal(10), currency="EUR")]
    state = aggregate(facts, T0, MODEL)
    later = T0 + timedelta(days=365 * 40)
    advance(state, later, [], MODEL)
    assert state.anchor == later
    assert card(state, MODEL) == score(facts, later, MODEL)


def test_aggregates_move_forward_only() -> None:
    state = aggregate([], T0, MODEL)
    with pytest.raises(ValueError, match="forward only"):
        advance(state, T0 - timedelta(seconds=1), [], MODEL)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_aggregates_survive_their_json_row_unchanged(seed: int) -> None:
    state = aggregate(history(seed), T0, MODEL)
    assert aggregates_from_json(json.loads(json.dumps(aggregates_to_json(state)))) == state
