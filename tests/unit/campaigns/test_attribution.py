"""Conversion credit by model, revenue to the cent, and goal matching (attribution)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_campaigns.attribution import Credit, Touch, credit, credited_step, is_conversion
from crm_campaigns.domain import AttributionModel, Goal

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
FIRST = AttributionModel.FIRST_TOUCH
LAST = AttributionModel.LAST_TOUCH
LINEAR = AttributionModel.LINEAR
CONVERTED = T0 + timedelta(days=10)


def touch(step_id: str, day: float) -> Touch:
    return Touch(step_id, T0 + timedelta(days=day))


JOURNEY = [touch("welcome", 0), touch("reminder", 3), touch("offer", 6)]


def credits(
    touches: list[Touch], model: AttributionModel, revenue: float | None = 100.0
) -> list[Credit]:
    return credit(touches, converted_at=CONVERTED, since=T0, model=model, revenue=revenue)


def cents(found: list[Credit]) -> dict[str, int]:
    return {c.step_id: round(c.revenue * 100) for c in found}


def test_first_touch_gives_everything_to_the_earliest_step() -> None:
    assert credits(JOURNEY, FIRST) == [Credit("welcome", 1.0, 100.0)]


def test_last_touch_gives_everything_to_the_latest_step() -> None:
    assert credits(list(reversed(JOURNEY)), LAST) == [Credit("offer", 1.0, 100.0)]


def test_linear_gives_each_touch_an_equal_share() -> None:
    found = credits(JOURNEY, LINEAR)
    assert [c.step_id for c in found] == ["welcome", "reminder", "offer"]
    assert all(c.share == pytest.approx(1 / 3) for c in found)


def test_linear_merges_the_touches_of_one_step() -> None:
    touches = [touch("welcome", 0), touch("reminder", 3), touch("welcome", 5), touch("offer", 6)]
    found = {c.step_id: c for c in credits(touches, LINEAR)}
    assert found["welcome"].share == pytest.approx(0.5)
    assert found["reminder"].share == pytest.approx(0.25)
    assert found["offer"].share == pytest.approx(0.25)
    assert cents(list(found.values())) == {"welcome": 5000, "reminder": 2500, "offer": 2500}


def test_a_hundred_over_three_touches_sums_to_the_cent() -> None:
    split = cents(credits(JOURNEY, LINEAR))
    assert sum(split.values()) == 10_000
    assert sorted(split.values()) == [3333, 3333, 3334]
    assert split["offer"] == 3334  # the spare cent goes to the latest step


def test_awkward_revenues_split_over_awkward_counts_sum_to_the_cent() -> None:
    for revenue in (0.01, 0.29, 10.0, 99.99, 1234.57):
        for n in range(1, 8):
            touches = [touch(f"step-{i}", i) for i in range(n)]
            assert sum(cents(credits(touches, LINEAR, revenue)).values()) == round(revenue * 100)


def test_a_refund_is_split_to_the_cent_as_well() -> None:
    split = cents(credits(JOURNEY, LINEAR, -100.0))
    assert sum(split.values()) == -10_000
    assert sorted(split.values()) == [-3334, -3333, -3333]


def test_a_conversion_without_value_credits_no_revenue() -> None:
    assert [c.revenue for c in credits(JOURNEY, LINEAR, None)] == [0.0, 0.0, 0.0]


def test_touches_before_enrolment_or_after_the_conversion_are_ignored() -> None:
    touches = [touch("old", -1), *JOURNEY, touch("late", 11)]
    assert credits(touches, FIRST)[0].step_id == "welcome"
    assert credits(touches, LAST)[0].step_id == "offer"
    assert {c.step_id for c in credits(touches, LINEAR)} == {"welcome", "reminder", "offer"}


def test_touches_exactly_at_enrolment_and_at_the_conversion_count() -> None:
    touches = [touch("welcome", 0), Touch("offer", CONVERTED)]
    assert {c.step_id for c in credits(touches, LINEAR)} == {"welcome", "offer"}


def test_no_touches_means_no_credit() -> None:
    assert credits([], LINEAR) == []
    assert credits([touch("late", 11)], LAST) == []
    assert credited_step([]) is None


def test_touches_at_the_same_instant_are_ordered_by_step_id() -> None:
    touches = [touch("b", 1), touch("a", 1)]
    assert credits(touches, FIRST)[0].step_id == "a"
    assert credits(touches, LAST)[0].step_id == "b"
    assert credits(list(reversed(touches)), FIRST)[0].step_id == "a"


def test_the_credited_step_is_the_one_with_the_largest_share() -> None:
    touches = [touch("welcome", 0), touch("reminder", 3), touch("welcome", 5)]
    assert credited_step(credits(touches, LINEAR)) == "welcome"
    assert credited_step(credits(JOURNEY, FIRST)) == "welcome"
    assert credited_step(credits(JOURNEY, LAST)) == "offer"


def test_a_tie_on_share_credits_the_step_that_touched_last() -> None:
    touches = [touch("welcome", 0), touch("offer", 2), touch("reminder", 3)]
    assert credited_step(credits(touches, LINEAR)) == "reminder"
    again = [*touches, touch("offer", 4), touch("welcome", 5)]  # welcome and offer 2/5 each
    assert credited_step(credits(again, LINEAR)) == "welcome"


PURCHASE = Goal(kind="purchase", min_value=50.0, window_days=30)


def test_an_interaction_of_the_goals_kind_and_value_in_the_window_converts() -> None:
    assert is_conversion(PURCHASE, kind="purchase", value=50.0, entered_at=T0, at=T0)
    at_window_end = T0 + timedelta(days=30)
    assert is_conversion(PURCHASE, kind="purchase", value=80.0, entered_at=T0, at=at_window_end)


def test_another_kind_does_not_convert() -> None:
    assert not is_conversion(PURCHASE, kind="email_open", value=80.0, entered_at=T0, at=T0)


def test_too_small_a_value_or_none_does_not_meet_a_minimum() -> None:
    assert not is_conversion(PURCHASE, kind="purchase", value=49.99, entered_at=T0, at=T0)
    assert not is_conversion(PURCHASE, kind="purchase", value=None, entered_at=T0, at=T0)


def test_a_goal_without_minimum_converts_without_a_value() -> None:
    signup = Goal(kind="signup")
    assert is_conversion(signup, kind="signup", value=None, entered_at=T0, at=T0)


def test_an_interaction_before_entry_or_after_the_window_does_not_convert() -> None:
    late = T0 + timedelta(days=30, seconds=1)
    early = T0 - timedelta(seconds=1)
    assert not is_conversion(PURCHASE, kind="purchase", value=80.0, entered_at=T0, at=late)
    assert not is_conversion(PURCHASE, kind="purchase", value=80.0, entered_at=T0, at=early)
