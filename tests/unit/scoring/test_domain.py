"""The scoring rules, as pure functions of facts and a moment."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_contracts.base import Channel, Money
from crm_contracts.contacts import LifecycleStage
from crm_contracts.interactions import InteractionResolved
from crm_scoring.domain import (
    Change,
    Fact,
    ScoreCard,
    churn_signals,
    describe,
    explain,
    fact_from_case_event,
    fact_from_interaction,
    score,
    should_publish,
)
from crm_scoring.model import load_model

MODEL = load_model()
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def fact(kind: str, days: float = 0, **fields: object) -> Fact:
    fields.setdefault("channel", "web")
    return Fact(f"f{next(_ids)}", kind, at(days), **fields)  # type: ignore[arg-type]


def purchase(amount: str, days: float = 0, currency: str = "EUR") -> Fact:
    return fact("purchase", days, channel="store", amount=Decimal(amount), currency=currency)


def case(kind: str, days: float = 0, case_id: str = "case-1", **fields: object) -> Fact:
    return Fact(f"f{next(_ids)}", kind, at(days), case_id=case_id, **fields)  # type: ignore[arg-type]


def test_a_contact_without_facts_has_the_floor_scores() -> None:
    card = score([], T0, MODEL)
    assert (card.engagement, card.recency, card.frequency, card.monetary) == (0, 1, 1, 1)
    assert card.value_tier == "bronze"
    assert card.clv == Decimal("0.00")
    assert card.churn_risk == pytest.approx(MODEL.churn.base)
    assert card.churn_band == "low"


def test_scores_do_not_depend_on_the_order_facts_arrive_in() -> None:
    facts = [
        purchase("120", -40),
        purchase("80.50", -10, currency="USD"),
        fact("email_clicked", -3, channel="email"),
        fact("page_view", -1),
        fact("complaint", -5, channel="phone"),
        case("case_opened", -20),
        case("case_sla_breached", -18, detail="resolution"),
        case("case_csat", -2, csat=2),
        fact("feedback", -7, nps=10),
    ]
    expected = score(facts, T0, MODEL)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = facts[:]
        rng.shuffle(shuffled)
        assert score(shuffled, T0, MODEL) == expected


def test_a_late_event_gives_the_same_scores_as_an_ordered_one() -> None:
    early, late = purchase("50", -30), fact("email_clicked", -31, channel="email")
    in_order = score([late, early], T0, MODEL)
    arrived_late = score([early, late], T0, MODEL)
    assert in_order == arrived_late


def test_facts_after_as_of_do_not_count_yet() -> None:
    assert score([purchase("500", 1)], T0, MODEL) == score([], T0, MODEL)


def test_engagement_halves_with_each_half_life_before_saturation() -> None:
    hl = MODEL.engagement.half_life_days
    one = [fact("page_view", 0)]  # 1 point: far below saturation, so nearly linear
    fresh = score(one, T0, MODEL).engagement
    many = [fact("form_submitted", 0) for _ in range(3)]
    now = score(many, T0, MODEL).engagement
    later = score(many, at(hl), MODEL).engagement
    assert fresh == 2
    assert later < now
    assert later == round(100 * (1 - pow(2.718281828459045, -(24 * 0.5) / 40)))


def test_engagement_is_capped_at_100_and_weights_channels() -> None:
    lots = [fact("purchase", 0, channel="store") for _ in range(50)]
    assert score(lots, T0, MODEL).engagement == 100
    store = score([fact("email_clicked", 0, channel="store")], T0, MODEL).engagement
    email = score([fact("email_clicked", 0, channel="email")], T0, MODEL).engagement
    assert store > email


def test_engagement_bands_follow_the_model_edges() -> None:
    assert score([], T0, MODEL).engagement_band == "cold"
    warm = score([purchase("10")], T0, MODEL)
    assert 45 <= warm.engagement < 70
    assert warm.engagement_band == "warm"


def test_an_unknown_kind_gets_the_default_points() -> None:
    card = score([fact("webinar_attended", 0)], T0, MODEL)
    assert card.engagement == score([fact("page_view", 0)], T0, MODEL).engagement


@pytest.mark.parametrize(
    ("days_ago", "expected"), [(0, 5), (14, 5), (15, 4), (45, 4), (90, 3), (180, 2), (200, 1)]
)
def test_recency_buckets(days_ago: float, expected: int) -> None:
    assert score([purchase("10", -days_ago)], T0, MODEL).recency == expected


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (2, 2), (3, 3), (5, 4), (8, 5), (20, 5)])
def test_frequency_buckets_count_purchases_in_the_window(count: int, expected: int) -> None:
    facts = [purchase("1", -i) for i in range(count)]
    assert score(facts, T0, MODEL).frequency == expected


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("10", 1), ("50", 2), ("149.99", 2), ("150", 3), ("400", 4), ("1000", 5)],
)
def test_monetary_buckets(amount: str, expected: int) -> None:
    assert score([purchase(amount)], T0, MODEL).monetary == expected


def test_purchases_outside_the_window_do_not_count_for_rfm() -> None:
    old = [purchase("2000", -400), purchase("2000", -390)]
    card = score(old, T0, MODEL)
    assert (card.recency, card.frequency, card.monetary) == (1, 1, 1)


def test_refunds_lower_monetary_and_clv() -> None:
    bought = score([purchase("400")], T0, MODEL)
    refunded = score(
        [purchase("400"), fact("refund", 0, amount=Decimal("300"), currency="EUR")], T0, MODEL
    )
    assert refunded.monetary < bought.monetary
    assert refunded.clv < bought.clv


def test_amounts_in_other_currencies_are_converted_and_unknown_ones_ignored() -> None:
    usd = score([purchase("500", currency="USD")], T0, MODEL)  # 460 EUR
    assert usd.monetary == 4
    unknown = score([purchase("500", currency="JPY")], T0, MODEL)
    assert unknown.monetary == 1


def test_value_tier_comes_from_the_rfm_sum() -> None:
    assert score([], T0, MODEL).value_tier == "bronze"
    assert score([purchase("120")], T0, MODEL).value_tier == "silver"  # 5 + 1 + 2
    gold = [purchase("100", -i * 10) for i in range(3)]  # 5 + 3 + 3
    assert score(gold, T0, MODEL).value_tier == "gold"
    platinum = [purchase("200", -i * 5) for i in range(8)]  # 5 + 5 + 5
    assert score(platinum, T0, MODEL).value_tier == "platinum"


def test_clv_is_aov_times_rhythm_times_lifetime_times_retention() -> None:
    facts = [purchase("100", -180), purchase("200", -90), purchase("300", 0)]
    card = score(facts, T0, MODEL)
    aov = Decimal(200)
    per_year = 2 / 180 * 365
    expected = aov * Decimal(repr(round(per_year * 3.0 * (1 - card.churn_risk), 9)))
    assert card.clv == expected.quantize(Decimal("0.01"))


def test_one_purchase_uses_the_default_rhythm() -> None:
    card = score([purchase("120")], T0, MODEL)
    expected = Decimal(120) * Decimal(repr(round(2.0 * 3.0 * (1 - card.churn_risk), 9)))
    assert card.clv == expected.quantize(Decimal("0.01"))


def test_purchases_close_together_use_the_minimum_span() -> None:
    close = score([purchase("100", -1), purchase("100", 0)], T0, MODEL)
    per_year = 1 / MODEL.clv.min_span_days * 365
    expected = Decimal(100) * Decimal(repr(round(per_year * 3.0 * (1 - close.churn_risk), 9)))
    assert close.clv == expected.quantize(Decimal("0.01"))


def test_a_purchase_raises_value_and_clv() -> None:
    before = score([fact("page_view")], T0, MODEL)
    after = score([fact("page_view"), purchase("120")], T0, MODEL)
    assert after.clv > before.clv
    assert after.monetary > before.monetary
    assert after.value_tier == "silver" and before.value_tier == "bronze"


def test_churn_risk_grows_once_the_next_purchase_is_overdue() -> None:
    rhythm = [purchase("50", -60 * i) for i in range(4)]  # every 60 days
    on_time = score(rhythm, at(30), MODEL).churn_risk
    overdue = score(rhythm, at(180), MODEL).churn_risk
    very_overdue = score(rhythm, at(400), MODEL).churn_risk
    assert on_time < overdue < very_overdue


def test_overdue_follows_the_contacts_own_rhythm() -> None:
    weekly = [purchase("20", -7 * i) for i in range(10)]
    yearly = [purchase("20", -365 * i) for i in range(3)]
    assert score(weekly, at(60), MODEL).churn_risk > score(yearly, at(60), MODEL).churn_risk


@pytest.mark.parametrize(
    ("signal_fact", "signal"),
    [
        (fact("complaint"), "complaint"),
        (fact("unsubscribe", channel="email"), "unsubscribe"),
        (case("case_sla_breached"), "sla_breached"),
        (case("case_reopened"), "case_reopened"),
        (case("case_csat", csat=1), "low_csat"),
        (fact("feedback", nps=3), "detractor"),
    ],
)
def test_bad_experiences_raise_churn_risk(signal_fact: Fact, signal: str) -> None:
    base = [purchase("100", -10)]
    assert signal in churn_signals(signal_fact, MODEL)
    with_signal = score([*base, signal_fact], T0, MODEL)
    assert with_signal.churn_risk == pytest.approx(
        score(base, T0, MODEL).churn_risk + MODEL.churn.signals[signal].weight, abs=1e-4
    )


def test_positive_feedback_and_purchases_lower_churn_risk() -> None:
    complaint = [fact("complaint", -1)]
    base = score(complaint, T0, MODEL).churn_risk
    assert score([*complaint, fact("feedback", 0, csat=5)], T0, MODEL).churn_risk < base
    assert score([*complaint, fact("review", 0, nps=10)], T0, MODEL).churn_risk < base
    assert score([*complaint, purchase("10")], T0, MODEL).churn_risk < base


def test_signals_fade_with_their_half_life() -> None:
    breach = case("case_sla_breached", 0)
    hl = MODEL.churn.signals["sla_breached"].half_life_days
    now = score([breach], T0, MODEL).churn_risk
    later = score([breach], at(hl), MODEL).churn_risk
    assert now - MODEL.churn.base == pytest.approx(0.2, abs=1e-4)
    assert later - MODEL.churn.base == pytest.approx(0.1, abs=1e-4)


def test_a_case_open_too_long_raises_churn_risk_until_it_is_resolved() -> None:
    opened = case("case_opened", 0)
    fresh = score([opened], at(1), MODEL).churn_risk
    long_open = score([opened], at(MODEL.churn.long_open_days + 1), MODEL).churn_risk
    resolved = score([opened, case("case_resolved", 5)], at(20), MODEL).churn_risk
    reopened = score(
        [opened, case("case_resolved", 5), case("case_reopened", 6)],
        at(6 + MODEL.churn.long_open_days + 1),
        MODEL,
    )
    assert long_open == pytest.approx(fresh + MODEL.churn.long_open_weight, abs=1e-4)
    assert resolved == pytest.approx(MODEL.churn.base, abs=1e-4)
    assert reopened.churn_risk > resolved


def test_falling_engagement_raises_churn_risk() -> None:
    active = [fact("form_submitted", -35 - i) for i in range(5)]
    card = score(active, T0, MODEL)
    silent_before = score(active, at(-35), MODEL)
    assert card.engagement < silent_before.engagement
    assert card.churn_risk > MODEL.churn.base


def test_churn_risk_stays_between_0_and_1_and_bands_follow_it() -> None:
    awful = [case("case_sla_breached", 0, case_id=f"c{i}") for i in range(10)]
    card = score(awful, T0, MODEL)
    assert card.churn_risk == 1.0
    assert card.churn_band == "high"
    happy = [fact("feedback", 0, csat=5) for _ in range(5)] + [purchase("10")]
    assert score(happy, T0, MODEL).churn_risk == 0.0
    medium = score([fact("complaint"), case("case_sla_breached")], T0, MODEL)
    assert medium.churn_band == "medium"


def test_decay_alone_crosses_engagement_and_tier_boundaries() -> None:
    facts = [purchase("120", 0), fact("email_clicked", 0, channel="email")]
    now, later = score(facts, T0, MODEL), score(facts, at(60), MODEL)
    assert later.engagement < now.engagement
    assert later.engagement_band != now.engagement_band
    assert should_publish(now, later, MODEL, time_only=True)


def test_first_scores_are_always_published() -> None:
    assert should_publish(None, score([], T0, MODEL), MODEL)


def test_small_changes_are_not_published_and_large_ones_are() -> None:
    base = score([purchase("120", -3), fact("page_view", -3)], T0, MODEL)
    assert not should_publish(base, replace(base, engagement=base.engagement + 4), MODEL)
    assert should_publish(base, replace(base, engagement=base.engagement + 5), MODEL)
    assert not should_publish(base, replace(base, churn_risk=base.churn_risk + 0.04), MODEL)
    assert should_publish(base, replace(base, churn_risk=base.churn_risk + 0.05), MODEL)
    assert not should_publish(base, replace(base, clv=base.clv + Decimal("5")), MODEL)
    assert should_publish(base, replace(base, clv=base.clv * Decimal("1.06")), MODEL)
    assert should_publish(base, replace(base, monetary=base.monetary + 1), MODEL)


def test_tier_and_band_changes_are_always_published_even_for_time_alone() -> None:
    base = score([purchase("120")], T0, MODEL)
    assert should_publish(base, replace(base, value_tier="gold"), MODEL, time_only=True)
    assert should_publish(base, replace(base, churn_band="high"), MODEL, time_only=True)
    assert not should_publish(
        base, replace(base, engagement=base.engagement - 9), MODEL, time_only=True
    )


def _reasons_sum(reasons: list, name: str) -> float:
    return sum(r.contribution for r in reasons if r.score == name)


def test_reasons_name_the_event_and_its_contribution_in_plain_words() -> None:
    before = [purchase("120", -10)]
    previous = score(before, T0, MODEL)
    complaint, breach = (
        fact("complaint", 0, channel="phone"),
        case("case_sla_breached", 0, detail="resolution"),
    )
    reasons = explain(
        facts_before=before,
        changes=[Change(describe(complaint), (complaint,)), Change(describe(breach), (breach,))],
        as_of=T0,
        model=MODEL,
        previous=previous,
    )
    texts = [r.text for r in reasons]
    assert "case breached SLA (resolution): +0.20 churn risk" in texts
    assert "complaint via phone: +0.15 churn risk" in texts


def test_reasons_add_up_to_the_change() -> None:
    before = [purchase("80", -50), fact("email_opened", -20, channel="email")]
    previous = score(before, at(-20), MODEL)
    p = purchase("120", 0)
    model = replace(MODEL, publish=replace(MODEL.publish, max_reasons=20))
    reasons = explain(
        facts_before=before,
        changes=[Change(describe(p), (p,))],
        as_of=T0,
        model=model,
        previous=previous,
    )
    new = score([*before, p], T0, MODEL)
    assert _reasons_sum(reasons, "engagement") == new.engagement - previous.engagement
    assert _reasons_sum(reasons, "clv") == pytest.approx(float(new.clv - previous.clv))
    assert _reasons_sum(reasons, "churn_risk") == pytest.approx(
        new.churn_risk - previous.churn_risk, abs=1e-4
    )
    assert any(r.text.startswith("50 days since the last activity") for r in reasons) is False
    assert any(r.text.startswith("20 days since the last activity") for r in reasons)
    assert any(r.text.startswith("purchase 120.00 EUR: +") and r.score == "clv" for r in reasons)


def test_reasons_are_biggest_first_and_capped() -> None:
    p = purchase("120")
    reasons = explain(
        facts_before=[], changes=[Change(describe(p), (p,))], as_of=T0, model=MODEL, previous=None
    )
    assert len(reasons) <= MODEL.publish.max_reasons
    assert reasons[0].score in ("clv", "value_tier", "recency")


def test_merging_folds_facts_and_counts_shared_ones_once() -> None:
    shared = purchase("100", -5)
    survivor = [shared, fact("page_view", -1)]
    merged = [shared, purchase("300", -2)]
    folded = {f.fact_id: f for f in [*survivor, *merged]}
    card = score(folded.values(), T0, MODEL)
    assert card.frequency == 2  # two distinct purchases, not three
    assert card.clv > score(survivor, T0, MODEL).clv


def test_resolved_interactions_and_case_events_become_facts() -> None:
    data = InteractionResolved(
        interaction_id="evt-1",
        interaction_source="urn:channel:webshop",
        contact_id="c-1",
        channel=Channel.STORE,
        kind="purchase",
        value=Money(amount=Decimal("120.00"), currency="EUR"),
        stage=LifecycleStage.REPEAT_CUSTOMER,
        previous_stage=LifecycleStage.FIRST_TIME_CUSTOMER,
        stage_changed=True,
    )
    f = fact_from_interaction(data, T0)
    assert f is not None
    assert f.fact_id == "interaction|urn:channel:webshop|evt-1"
    assert (f.kind, f.amount, f.currency, f.channel) == (
        "purchase",
        Decimal("120.00"),
        "EUR",
        "store",
    )
    assert describe(f) == "purchase 120.00 EUR"
    breach = fact_from_case_event(
        event_type="crm.case.sla_breached",
        source="urn:crm:cases",
        event_id="e-9",
        occurred_at=T0,
        case_id="case-1",
        detail="resolution",
    )
    assert breach is not None and breach.kind == "case_sla_breached"
    assert (
        fact_from_case_event(
            event_type="crm.case.assigned", source="s", event_id="e", occurred_at=T0, case_id="x"
        )
        is None
    )


def test_score_card_values_rank_tiers() -> None:
    card = ScoreCard(0, "cold", 1, 1, 1, "gold", Decimal(0), 0.1, "low")
    assert card.value("value_tier", MODEL) == 2.0


def test_an_agents_reply_is_not_the_customers_engagement() -> None:
    reply = InteractionResolved(
        interaction_id="evt-2",
        interaction_source="urn:channel:helpdesk",
        contact_id="c-1",
        channel=Channel.EMAIL,
        kind="support_request",
        case_id="case-1",
        agent_id="agent-17",
        stage=LifecycleStage.PROSPECT,
        previous_stage=LifecycleStage.PROSPECT,
        stage_changed=False,
    )

    assert fact_from_interaction(reply, T0) is None
    assert fact_from_interaction(reply.model_copy(update={"agent_id": None}), T0) is not None
