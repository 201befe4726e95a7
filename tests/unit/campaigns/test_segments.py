"""Segment rules: membership of a contact view, and when it flips by time alone."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from crm_campaigns.domain import MAX_WINDOW_DAYS, ConsentState, ContactView, Touchpoint
from crm_campaigns.segments import (
    AllRule,
    Answer,
    AnyRule,
    ChurnBandRule,
    ConsentRule,
    DidNotRule,
    DidRule,
    NotRule,
    OpenCaseRule,
    Rule,
    ScoreRule,
    SegmentRule,
    StageRule,
    TraitRule,
    ValueTierRule,
    behaviour_kinds,
    check_rule,
    evaluate,
    longest_window_days,
    parse_rule,
    rule_json,
    walk,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def purchases(*ages: float, channel: str = "web") -> dict[str, list[Touchpoint]]:
    points = [Touchpoint(at=days_ago(age), channel=channel) for age in sorted(ages)]
    return {"purchase": points}


def member(rule: Rule, view: ContactView, as_of: datetime = NOW) -> bool:
    return evaluate(rule, view, as_of).member


def test_stage_value_tier_and_churn_band_match_when_the_contact_is_in_the_set() -> None:
    view = ContactView("c1", stage="customer", value_tier="high", churn_band="low")
    assert member(StageRule(stages=["lead", "customer"]), view)
    assert not member(StageRule(stages=["lead"]), view)
    assert member(ValueTierRule(tiers=["high"]), view)
    assert not member(ValueTierRule(tiers=["low", "medium"]), view)
    assert member(ChurnBandRule(bands=["low"]), view)
    assert not member(ChurnBandRule(bands=["high"]), view)
    assert not member(StageRule(stages=["customer"]), ContactView("c2"))


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [("gte", 0.7, True), ("gt", 0.7, False), ("lte", 0.7, True), ("lt", 0.7, False)],
)
def test_a_score_compares_with_the_value(op: Any, value: float, expected: bool) -> None:
    rule = ScoreRule(score="churn_risk", op=op, value=value)
    assert member(rule, ContactView("c1", churn_risk=0.7)) is expected


def test_a_contact_without_the_score_is_not_a_member_whatever_the_comparison() -> None:
    view = ContactView("c1", engagement=None, clv=None)
    assert not member(ScoreRule(score="engagement", op="lt", value=1_000), view)
    assert not member(ScoreRule(score="clv", op="gte", value=-1), view)
    assert member(
        ScoreRule(score="engagement", op="gt", value=40), ContactView("c2", engagement=41)
    )


def test_consent_matches_a_grant_or_an_explicit_withdrawal_but_never_no_word() -> None:
    granted = ContactView("c1", consents={"marketing:*": ConsentState(True, days_ago(5))})
    withdrawn = ContactView("c2", consents={"marketing:*": ConsentState(False, days_ago(5))})
    silent = ContactView("c3")
    grant = ConsentRule(purpose="marketing", channel="email")
    withdrawal = ConsentRule(purpose="marketing", channel="email", granted=False)
    assert member(grant, granted) and not member(withdrawal, granted)
    assert member(withdrawal, withdrawn) and not member(grant, withdrawn)
    assert not member(grant, silent) and not member(withdrawal, silent)


def test_consent_takes_the_newer_of_the_channels_word_and_the_every_channel_word() -> None:
    grant = ConsentRule(purpose="marketing", channel="email")
    older_grant_newer_opt_out = ContactView(
        "c1",
        consents={
            "marketing:email": ConsentState(True, days_ago(10)),
            "marketing:*": ConsentState(False, days_ago(2)),
        },
    )
    newer_grant_older_opt_out = ContactView(
        "c2",
        consents={
            "marketing:email": ConsentState(True, days_ago(2)),
            "marketing:*": ConsentState(False, days_ago(10)),
        },
    )
    assert not member(grant, older_grant_newer_opt_out)
    assert member(grant, newer_grant_older_opt_out)
    assert not member(ConsentRule(purpose="marketing", channel="sms"), newer_grant_older_opt_out)


def test_traits_compare_profile_fields_and_custom_traits() -> None:
    view = ContactView("c1", traits={"country": "DE", "custom.plan": "pro", "custom.seats": 5})
    assert member(TraitRule(name="country", op="eq", value="DE"), view)
    assert not member(TraitRule(name="country", op="ne", value="DE"), view)
    assert member(TraitRule(name="country", op="ne", value="FR"), view)
    assert member(TraitRule(name="custom.plan", op="in", value=["pro", "team"]), view)
    assert not member(TraitRule(name="custom.plan", op="in", value=["free"]), view)
    assert member(TraitRule(name="custom.seats", op="eq", value=5), view)
    assert member(TraitRule(name="custom.seats", op="exists"), view)
    assert not member(TraitRule(name="custom.missing", op="exists"), view)


def test_a_contact_without_the_trait_matches_neither_eq_nor_ne() -> None:
    view = ContactView("c1")
    assert not member(TraitRule(name="country", op="eq", value="DE"), view)
    assert not member(TraitRule(name="country", op="ne", value="DE"), view)
    assert member(NotRule(rule=TraitRule(name="country", op="eq", value="DE")), view)


def test_a_true_trait_is_not_the_number_one() -> None:
    view = ContactView("c1", traits={"custom.vip": True})
    assert not member(TraitRule(name="custom.vip", op="eq", value=1), view)
    assert member(TraitRule(name="custom.vip", op="eq", value=True), view)


def test_open_case_matches_any_open_case_or_one_of_the_category() -> None:
    view = ContactView("c1", open_cases={"case-1": "billing"})
    assert member(OpenCaseRule(), view)
    assert member(OpenCaseRule(category="billing"), view)
    assert not member(OpenCaseRule(category="complaint"), view)
    assert not member(OpenCaseRule(), ContactView("c2"))


def test_did_counts_interactions_of_the_kind_in_the_window() -> None:
    view = ContactView("c1", activity=purchases(1, 10, 29, 31))
    assert member(DidRule(kind="purchase", at_least=3, within_days=30), view)
    assert not member(DidRule(kind="purchase", at_least=4, within_days=30), view)
    assert not member(DidRule(kind="visit", within_days=30), view)


def test_a_touchpoint_exactly_a_window_old_has_aged_out() -> None:
    rule = DidRule(kind="purchase", within_days=30)
    assert not member(rule, ContactView("c1", activity=purchases(30)))
    edge = ContactView("c2", activity={"purchase": [Touchpoint(days_ago(30) + US, "web")]})
    assert evaluate(rule, edge, NOW) == Answer(member=True, changes_at=NOW + US)


def test_did_on_a_channel_counts_only_that_channel() -> None:
    view = ContactView(
        "c1",
        activity={"purchase": [Touchpoint(days_ago(1), "email"), Touchpoint(days_ago(2), "web")]},
    )
    assert member(DidRule(kind="purchase", channel="email", within_days=7), view)
    assert not member(DidRule(kind="purchase", channel="email", at_least=2, within_days=7), view)
    assert member(DidRule(kind="purchase", at_least=2, within_days=7), view)


def test_did_ignores_touchpoints_after_as_of_until_their_moment() -> None:
    view = ContactView("c1", activity={"purchase": [Touchpoint(NOW + timedelta(hours=1), "web")]})
    answer = evaluate(DidRule(kind="purchase", within_days=30), view, NOW)
    assert answer == Answer(member=False, changes_at=NOW + timedelta(hours=1))


def test_three_purchases_in_thirty_days_stop_counting_when_the_oldest_ages_out() -> None:
    view = ContactView("c1", activity=purchases(2, 5, 20, 40))
    answer = evaluate(DidRule(kind="purchase", at_least=3, within_days=30), view, NOW)
    assert answer == Answer(member=True, changes_at=days_ago(20) + timedelta(days=30))


def test_did_that_does_not_hold_cannot_come_true_by_time_alone() -> None:
    view = ContactView("c1", activity=purchases(2, 40))
    answer = evaluate(DidRule(kind="purchase", at_least=2, within_days=30), view, NOW)
    assert answer == Answer(member=False, changes_at=None)


def test_no_purchase_for_sixty_days_comes_true_sixty_days_after_the_last() -> None:
    rule = DidNotRule(kind="purchase", for_days=60)
    view = ContactView("c1", activity=purchases(10, 100))
    assert evaluate(rule, view, NOW) == Answer(member=False, changes_at=days_ago(10 - 60))


def test_a_contact_who_never_purchased_has_not_purchased_for_sixty_days_for_good() -> None:
    rule = DidNotRule(kind="purchase", for_days=60)
    assert evaluate(rule, ContactView("c1"), NOW) == Answer(member=True, changes_at=None)
    old = ContactView("c2", activity=purchases(61))
    assert evaluate(rule, old, NOW) == Answer(member=True, changes_at=None)


def test_all_any_and_not_combine_their_rules() -> None:
    view = ContactView("c1", stage="customer", value_tier="low")
    customer = StageRule(stages=["customer"])
    high = ValueTierRule(tiers=["high"])
    assert not member(AllRule(rules=[customer, high]), view)
    assert member(AllRule(rules=[customer, NotRule(rule=high)]), view)
    assert member(AnyRule(rules=[customer, high]), view)
    assert not member(AnyRule(rules=[high, NotRule(rule=customer)]), view)


def test_an_all_held_false_by_a_condition_time_cannot_change_never_comes_due() -> None:
    rule = AllRule(
        rules=[StageRule(stages=["lead"]), DidNotRule(kind="purchase", for_days=60)],
    )
    view = ContactView("c1", stage="customer", activity=purchases(10))
    assert evaluate(rule, view, NOW) == Answer(member=False, changes_at=None)


def test_a_lapsed_customer_segment_comes_due_when_the_last_purchase_is_sixty_days_old() -> None:
    rule = AllRule(
        rules=[StageRule(stages=["customer"]), DidNotRule(kind="purchase", for_days=60)],
    )
    view = ContactView("c1", stage="customer", activity=purchases(10))
    assert evaluate(rule, view, NOW) == Answer(member=False, changes_at=days_ago(-50))
    assert evaluate(rule, view, days_ago(-50)) == Answer(member=True, changes_at=None)


def test_not_flips_when_its_rule_does() -> None:
    view = ContactView("c1", activity=purchases(5))
    answer = evaluate(NotRule(rule=DidRule(kind="purchase", within_days=7)), view, NOW)
    assert answer == Answer(member=False, changes_at=days_ago(-2))


def random_view(rng: random.Random) -> ContactView:
    def points() -> list[Touchpoint]:
        ats = [NOW + timedelta(seconds=rng.randint(-90 * 86_400, 5 * 86_400)) for _ in range(8)]
        ats += rng.sample(ats, 2)  # the same moment twice happens
        return [Touchpoint(at, rng.choice(["web", "email"])) for at in sorted(ats, reverse=True)][
            : rng.randint(0, 10)
        ]

    return ContactView(
        "c1",
        stage=rng.choice(["lead", "customer"]),
        activity={"purchase": points(), "visit": points()},
    )


def random_rule(rng: random.Random, depth: int = 0) -> Rule:
    roll = rng.random() if depth < 3 else rng.random() * 0.6
    kind = rng.choice(["purchase", "visit"])
    channel = rng.choice([None, "web", "email"])
    days = rng.choice([1, 7, 30, 45.5])
    if roll < 0.25:
        return DidRule(kind=kind, channel=channel, at_least=rng.randint(1, 3), within_days=days)
    if roll < 0.5:
        return DidNotRule(kind=kind, channel=channel, for_days=days)
    if roll < 0.6:
        return StageRule(stages=["customer"])
    if roll < 0.75:
        return NotRule(rule=random_rule(rng, depth + 1))
    children = [random_rule(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return AllRule(rules=children) if roll < 0.88 else AnyRule(rules=children)


def moments_that_may_matter(rule: Rule, view: ContactView) -> list[datetime]:
    """Every touchpoint and its ageing out of every window, a microsecond either side."""
    windows = {timedelta(0)}
    for node in walk(rule):
        if isinstance(node, DidRule):
            windows.add(timedelta(days=node.within_days))
        elif isinstance(node, DidNotRule):
            windows.add(timedelta(days=node.for_days))
    edges = {p.at + w for points in view.activity.values() for p in points for w in windows}
    return sorted({edge + d for edge in edges for d in (-US, timedelta(0), US)})


def naive_member(rule: Rule, view: ContactView, t: datetime) -> bool:
    """Membership at t straight from the definitions, to check `evaluate` against."""
    if isinstance(rule, AllRule):
        return all(naive_member(r, view, t) for r in rule.rules)
    if isinstance(rule, AnyRule):
        return any(naive_member(r, view, t) for r in rule.rules)
    if isinstance(rule, NotRule):
        return not naive_member(rule.rule, view, t)
    if isinstance(rule, DidRule | DidNotRule):
        days = rule.within_days if isinstance(rule, DidRule) else rule.for_days
        count = sum(
            1
            for p in view.activity.get(rule.kind, [])
            if rule.channel in (None, p.channel) and t - timedelta(days=days) < p.at <= t
        )
        return count >= rule.at_least if isinstance(rule, DidRule) else count == 0
    return member(rule, view, t)


def test_changes_at_is_exactly_the_next_flip_by_time_alone_for_random_trees() -> None:
    rng = random.Random(20260601)
    for _ in range(300):
        rule, view = random_rule(rng), random_view(rng)
        answer = evaluate(rule, view, NOW)
        assert answer.member == naive_member(rule, view, NOW), rule
        later = [t for t in moments_that_may_matter(rule, view) if t > NOW]
        if answer.changes_at is None:
            assert all(naive_member(rule, view, t) == answer.member for t in later), rule
            continue
        assert answer.changes_at > NOW
        assert naive_member(rule, view, answer.changes_at - US) == answer.member, rule
        assert naive_member(rule, view, answer.changes_at) != answer.member, rule
        before = [t for t in later if t < answer.changes_at]
        assert all(naive_member(rule, view, t) == answer.member for t in before), rule


def test_evaluating_again_when_due_finds_each_flip_in_turn() -> None:
    rule = AllRule(
        rules=[
            DidRule(kind="purchase", within_days=30),
            DidNotRule(kind="visit", for_days=7),
        ]
    )
    view = ContactView("c1", activity={**purchases(1), "visit": [Touchpoint(days_ago(3), "web")]})
    flips = []
    answer = evaluate(rule, view, NOW)
    while answer.changes_at is not None:
        answer = evaluate(rule, view, answer.changes_at)
        flips.append((answer.changes_at, answer.member))
    assert evaluate(rule, view, NOW) == Answer(member=False, changes_at=days_ago(-4))
    assert flips == [(days_ago(-29), True), (None, False)]


def test_behaviour_kinds_and_the_longest_window_are_read_from_the_whole_tree() -> None:
    rule = AllRule(
        rules=[
            StageRule(stages=["customer"]),
            NotRule(rule=DidRule(kind="visit", within_days=14)),
            AnyRule(rules=[DidNotRule(kind="purchase", for_days=60)]),
        ]
    )
    assert behaviour_kinds(rule) == frozenset({"visit", "purchase"})
    assert longest_window_days(rule) == 60
    assert longest_window_days(StageRule(stages=["lead"])) == 0
    assert behaviour_kinds(StageRule(stages=["lead"])) == frozenset()


EVERY_KIND_OF_RULE: dict[str, Any] = {
    "type": "all",
    "rules": [
        {"type": "stage", "stages": ["customer"]},
        {"type": "value_tier", "tiers": ["high"]},
        {"type": "churn_band", "bands": ["high", "medium"]},
        {"type": "score", "score": "clv", "op": "gte", "value": 500},
        {"type": "consent", "purpose": "marketing", "channel": "email", "granted": True},
        {"type": "trait", "name": "custom.plan", "op": "in", "value": ["pro", 3, True]},
        {"type": "trait", "name": "country", "op": "exists", "value": None},
        {"type": "not", "rule": {"type": "open_case", "category": "complaint"}},
        {
            "type": "any",
            "rules": [
                {"type": "did", "kind": "purchase", "channel": None, "at_least": 3,
                 "within_days": 30},
                {"type": "did_not", "kind": "visit", "channel": "web", "for_days": 60},
            ],
        },
    ],
}  # fmt: skip


def test_a_rule_survives_a_json_round_trip() -> None:
    rule = parse_rule(EVERY_KIND_OF_RULE)
    assert isinstance(rule, AllRule)
    assert parse_rule(rule_json(rule)) == rule
    assert parse_rule(json.dumps(rule_json(rule))) == rule
    assert json.loads(json.dumps(rule_json(rule))) == rule_json(rule)
    assert rule_json(rule)["rules"][3]["value"] == 500


def test_the_rule_schema_documents_every_condition() -> None:
    schema = json.dumps(SegmentRule.model_json_schema())
    for name in ["AllRule", "DidRule", "DidNotRule", "TraitRule", "ConsentRule"]:
        assert f'"{name}"' in schema
    assert "Interaction kind" in schema


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "someday", "kind": "purchase"},
        {"type": "stage", "stages": ["lead"], "colour": "red"},
        {"stages": ["lead"]},
        {"type": "stage", "stages": []},
        {"type": "all", "rules": []},
        {"type": "did", "kind": "purchase", "within_days": 0},
        {"type": "did", "kind": "purchase", "within_days": MAX_WINDOW_DAYS + 1},
        {"type": "did", "kind": "purchase", "within_days": 7, "at_least": 0},
        {"type": "score", "score": "mood", "op": "gt", "value": 1},
        {"type": "trait", "name": "country", "op": "in", "value": "DE"},
        {"type": "trait", "name": "country", "op": "eq"},
        {"type": "trait", "name": "country", "op": "exists", "value": "DE"},
        {"type": "not", "rule": {"type": "stage", "stages": ["lead"], "extra": 1}},
    ],
)
def test_a_malformed_rule_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_rule(bad)


def nested(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"type": "stage", "stages": ["lead"]}
    for _ in range(depth - 1):
        rule = {"type": "not", "rule": rule}
    return rule


def test_a_rule_six_deep_is_accepted_and_seven_deep_refused() -> None:
    parse_rule(nested(6))
    with pytest.raises(ValueError, match="7 levels deep; at most 6"):
        parse_rule(nested(7))


def test_a_rule_of_more_than_a_hundred_conditions_is_refused() -> None:
    stage = {"type": "stage", "stages": ["lead"]}
    halves = [{"type": "all", "rules": [stage] * 49}, {"type": "all", "rules": [stage] * 48}]
    ok = {"type": "any", "rules": halves}
    parse_rule(ok)  # 97 stages, two alls and an any: 100
    with pytest.raises(ValueError, match="at most 100"):
        parse_rule({**ok, "rules": [*ok["rules"], {"type": "stage", "stages": ["lead"]}]})


def test_check_rule_refuses_a_tree_built_in_code() -> None:
    rule: Rule = StageRule(stages=["lead"])
    for _ in range(6):
        rule = NotRule(rule=rule)
    with pytest.raises(ValueError, match="deep"):
        check_rule(rule)
