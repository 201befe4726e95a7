"""The contact projection: events applied by event time, whatever order they arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_campaigns import projection
from crm_campaigns.domain import ACTIVITY_KEEP, MAX_WINDOW_DAYS, ContactView
from crm_contracts import contacts as ct

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def view() -> ContactView:
    return ContactView(contact_id="c-1")


def test_a_late_older_consent_does_not_undo_a_newer_withdrawal() -> None:
    v = view()
    projection.apply_consent(v, purpose="marketing", channel="email", granted=False, at=T0)
    changed = projection.apply_consent(
        v, purpose="marketing", channel="email", granted=True, at=T0 - timedelta(hours=1)
    )
    assert not changed
    state = v.consent("marketing", "email")
    assert state is not None and not state.granted


def test_the_newer_of_a_channel_consent_and_an_every_channel_consent_wins() -> None:
    v = view()
    projection.apply_consent(v, purpose="marketing", channel="email", granted=True, at=T0)
    projection.apply_consent(
        v, purpose="marketing", channel=None, granted=False, at=T0 + timedelta(minutes=1)
    )
    assert v.consent("marketing", "email") == v.consents["marketing:*"]
    projection.apply_consent(
        v, purpose="marketing", channel="email", granted=True, at=T0 + timedelta(minutes=2)
    )
    state = v.consent("marketing", "email")
    assert state is not None and state.granted
    sms = v.consent("marketing", "sms")
    assert sms is not None and not sms.granted


def test_touchpoints_are_kept_newest_first_whatever_order_they_arrive_in() -> None:
    v = view()
    for hours in (3, 1, 2):
        projection.apply_touchpoint(
            v, kind="purchase", channel="web", at=T0 + timedelta(hours=hours)
        )
    assert [p.at for p in v.activity["purchase"]] == [T0 + timedelta(hours=h) for h in (3, 2, 1)]


def test_touchpoints_are_bounded_in_count_and_age() -> None:
    v = view()
    old = T0 - timedelta(days=MAX_WINDOW_DAYS + 1)
    projection.apply_touchpoint(v, kind="page_view", channel="web", at=old)
    for i in range(ACTIVITY_KEEP + 5):
        projection.apply_touchpoint(
            v, kind="page_view", channel="web", at=T0 + timedelta(seconds=i)
        )
    kept = v.activity["page_view"]
    assert len(kept) == ACTIVITY_KEEP
    assert old not in [p.at for p in kept]


def test_a_resolved_complaint_that_reopens_is_open_again_with_its_category() -> None:
    v = view()
    projection.open_case(v, "case-1", "complaint")
    assert v.has_complaint_open()
    projection.close_case(v, "case-1")
    assert not v.has_complaint_open()
    projection.reopen_case(v, "case-1")
    assert v.open_cases == {"case-1": "complaint"}


def test_profile_traits_include_custom_traits_under_their_prefix() -> None:
    v = view()
    projection.apply_profile(
        v, ct.Profile(country="DE", timezone="Europe/Berlin", custom={"plan": "pro"})
    )
    assert v.traits == {"country": "DE", "timezone": "Europe/Berlin", "custom.plan": "pro"}
    assert v.time_zone == "Europe/Berlin"


def test_a_fold_keeps_the_newer_consent_and_every_touchpoint_and_open_case() -> None:
    survivor, merged = view(), ContactView(contact_id="c-2")
    projection.apply_consent(survivor, purpose="marketing", channel="email", granted=True, at=T0)
    projection.apply_consent(
        merged, purpose="marketing", channel="email", granted=False, at=T0 + timedelta(hours=1)
    )
    projection.apply_touchpoint(merged, kind="purchase", channel="web", at=T0)
    projection.open_case(merged, "case-9", "complaint")
    projection.fold(survivor, merged)
    state = survivor.consent("marketing", "email")
    assert state is not None and not state.granted
    assert len(survivor.activity["purchase"]) == 1
    assert survivor.has_complaint_open()
