"""Quiet hours and frequency caps (crm_campaigns.schedule), checked against the wall clocks
and UTC instants a user reads.

DST dates used (2026): the EU springs forward on Sunday 29 March at 01:00 UTC (02:00 CET
becomes 03:00 CEST) and falls back on Sunday 25 October at 01:00 UTC (03:00 CEST becomes
02:00 CET, so 02:00-03:00 happens twice); the US on 8 March and 1 November at 02:00 local.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_campaigns.domain import QuietHours
from crm_campaigns.schedule import cap_slot, defer_for_quiet_hours, zone_of

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(start=time(21), end=time(8))
LUNCH = QuietHours(start=time(12), end=time(14))
UNTIL_HALF_TWO = QuietHours(start=time(21), end=time(2, 30))
AROUND_THE_CHANGE = QuietHours(start=time(1, 30), end=time(2, 30))
WEEK = timedelta(days=7)


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def local(
    zone: ZoneInfo, month: int, day: int, hour: int, minute: int = 0, *, fold: int = 0
) -> datetime:
    """The UTC instant of a wall-clock time in `zone` (`fold=1`: a repeated hour's second)."""
    return datetime(2026, month, day, hour, minute, tzinfo=zone, fold=fold).astimezone(UTC)


def test_a_step_due_at_23_berlin_before_spring_forward_goes_out_at_8_sunday_summer_time() -> None:
    due = local(BERLIN, 3, 28, 23)
    assert due == utc(3, 28, 22)
    sent = defer_for_quiet_hours(due, NIGHT, BERLIN)
    assert sent == utc(3, 29, 6)
    assert sent.astimezone(BERLIN).hour == 8


def test_a_step_due_at_23_berlin_before_fall_back_goes_out_at_8_sunday_winter_time() -> None:
    due = local(BERLIN, 10, 24, 23)
    assert due == utc(10, 24, 21)
    assert defer_for_quiet_hours(due, NIGHT, BERLIN) == utc(10, 25, 7)


def test_a_quiet_end_inside_the_spring_gap_means_the_first_instant_after_it() -> None:
    # 02:30 does not exist in Berlin on 29 March: the clock goes from 02:00 to 03:00 CEST.
    due = local(BERLIN, 3, 28, 23)
    sent = defer_for_quiet_hours(due, UNTIL_HALF_TWO, BERLIN)
    assert sent == utc(3, 29, 1)
    assert sent.astimezone(BERLIN).time() == time(3)


def test_a_quiet_end_in_the_autumn_fold_means_its_first_occurrence() -> None:
    due = local(BERLIN, 10, 24, 23)
    assert defer_for_quiet_hours(due, UNTIL_HALF_TWO, BERLIN) == utc(10, 25, 0, 30)


def test_a_step_due_in_the_repeated_hour_waits_for_the_end_still_ahead() -> None:
    # 02:15 CET is the second 02:15 that night; the first 02:30 (CEST) is already past.
    due = local(BERLIN, 10, 25, 2, 15, fold=1)
    assert due == utc(10, 25, 1, 15)
    assert defer_for_quiet_hours(due, UNTIL_HALF_TWO, BERLIN) == utc(10, 25, 1, 30)


def test_new_york_quiet_hours_end_at_8_local_across_both_changes() -> None:
    assert defer_for_quiet_hours(local(NEW_YORK, 3, 7, 23), NIGHT, NEW_YORK) == utc(3, 8, 12)
    assert defer_for_quiet_hours(local(NEW_YORK, 10, 31, 23), NIGHT, NEW_YORK) == utc(11, 1, 13)


def test_a_new_york_quiet_end_inside_the_spring_gap_means_3_local() -> None:
    sent = defer_for_quiet_hours(local(NEW_YORK, 3, 7, 23), UNTIL_HALF_TWO, NEW_YORK)
    assert sent == utc(3, 8, 7)
    assert sent.astimezone(NEW_YORK).time() == time(3)


def test_a_step_due_after_midnight_in_quiet_hours_goes_out_the_same_morning() -> None:
    due = local(BERLIN, 6, 10, 5, 45)
    assert defer_for_quiet_hours(due, NIGHT, BERLIN) == local(BERLIN, 6, 10, 8)


def test_a_step_due_outside_quiet_hours_is_unchanged() -> None:
    due = local(BERLIN, 6, 10, 13)
    assert defer_for_quiet_hours(due, NIGHT, BERLIN) is due


def test_quiet_hours_start_inclusive_and_end_exclusive() -> None:
    assert defer_for_quiet_hours(local(BERLIN, 6, 10, 21), NIGHT, BERLIN) == local(BERLIN, 6, 11, 8)
    at_end = local(BERLIN, 6, 10, 8)
    assert defer_for_quiet_hours(at_end, NIGHT, BERLIN) == at_end


def test_a_window_not_spanning_midnight_defers_to_its_end_the_same_day() -> None:
    assert defer_for_quiet_hours(local(BERLIN, 6, 10, 12, 30), LUNCH, BERLIN) == utc(6, 10, 12)
    before = local(BERLIN, 6, 10, 11, 59)
    after = local(BERLIN, 6, 10, 14)
    assert defer_for_quiet_hours(before, LUNCH, BERLIN) == before
    assert defer_for_quiet_hours(after, LUNCH, BERLIN) == after


def test_no_quiet_hours_or_an_empty_window_never_defers() -> None:
    due = local(BERLIN, 6, 10, 23)
    assert defer_for_quiet_hours(due, None, BERLIN) == due
    assert defer_for_quiet_hours(due, QuietHours(time(23), time(23)), BERLIN) == due


def test_a_deferred_step_is_in_utc_and_never_earlier_than_due() -> None:
    for hour in range(24):
        for zone in (BERLIN, NEW_YORK):
            due = local(zone, 3, 28, hour)
            sent = defer_for_quiet_hours(due, NIGHT, zone)
            assert sent >= due
            assert sent.utcoffset() == timedelta(0)


def test_a_naive_due_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        defer_for_quiet_hours(datetime(2026, 6, 10, 23), NIGHT, BERLIN)


def test_the_contacts_zone_wins_when_it_is_a_valid_name() -> None:
    assert zone_of("America/New_York", "Europe/Berlin") == NEW_YORK


@pytest.mark.parametrize("garbage", [None, "", "Mars/Olympus", "Europe", "../etc/passwd", "a\0b"])
def test_an_invalid_contact_zone_falls_back_to_the_campaigns(garbage: str | None) -> None:
    assert zone_of(garbage, "Europe/Berlin") == BERLIN


def test_an_invalid_fallback_too_means_utc() -> None:
    assert zone_of("nowhere", "Not/AZone") == ZoneInfo("UTC")


def test_sends_up_to_the_cap_are_allowed_and_the_next_is_not() -> None:
    at = utc(6, 10, 12)
    sent: list[datetime] = []
    for hours_later in range(3):
        now = at + timedelta(hours=hours_later)
        assert cap_slot(sent, at=now, max_sends=3, window=WEEK) is None
        sent.append(now)
    assert cap_slot(sent, at=at + timedelta(hours=3), max_sends=3, window=WEEK) is not None


def test_a_full_cap_opens_when_the_oldest_send_in_the_window_ages_out() -> None:
    at = utc(6, 10, 12)
    sent = [at - timedelta(days=1), at - timedelta(days=6), at - timedelta(days=3)]
    slot = cap_slot(sent, at=at, max_sends=3, window=WEEK)
    assert slot == at + timedelta(days=1)
    assert slot is not None
    assert cap_slot(sent, at=slot, max_sends=3, window=WEEK) is None
    assert cap_slot(sent, at=slot - timedelta(seconds=1), max_sends=3, window=WEEK) is not None


def test_a_cap_over_full_waits_until_enough_sends_have_aged_out() -> None:
    at = utc(6, 10, 12)
    sent = [at - timedelta(hours=5), at - timedelta(hours=2)]
    assert cap_slot(sent, at=at, max_sends=1, window=timedelta(hours=6)) == at + timedelta(hours=4)


def test_sends_outside_the_window_do_not_count() -> None:
    at = utc(6, 10, 12)
    sent = [at - WEEK, at - timedelta(days=30), at - timedelta(days=2), at + timedelta(hours=1)]
    assert cap_slot(sent, at=at, max_sends=2, window=WEEK) is None


def test_a_cap_below_one_send_is_refused() -> None:
    with pytest.raises(ValueError, match="max_sends"):
        cap_slot([], at=utc(6, 10), max_sends=0, window=WEEK)
    with pytest.raises(ValueError, match="window"):
        cap_slot([], at=utc(6, 10), max_sends=1, window=timedelta(0))


def is_quiet(instant: datetime, quiet: QuietHours, zone: ZoneInfo) -> bool:
    wall = instant.astimezone(zone).time()
    if quiet.start < quiet.end:
        return quiet.start <= wall < quiet.end
    return wall >= quiet.start or wall < quiet.end


def just_after_a_gap(instant: datetime, zone: ZoneInfo) -> bool:
    offset_before = (instant - timedelta(seconds=1)).astimezone(zone).utcoffset()
    offset = instant.astimezone(zone).utcoffset()
    assert offset_before is not None and offset is not None
    return offset_before < offset


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("quiet", [NIGHT, LUNCH, UNTIL_HALF_TWO, AROUND_THE_CHANGE])
def test_a_quiet_step_goes_out_at_the_windows_end_on_the_wall_clock_across_dst(
    zone: ZoneInfo, quiet: QuietHours
) -> None:
    for first_day in (utc(3, 7), utc(3, 28), utc(10, 24), utc(10, 31)):
        for step in range(0, 2 * 24 * 60, 7):  # two days, every 7 minutes
            due = first_day + timedelta(minutes=step)
            sent = defer_for_quiet_hours(due, quiet, zone)
            assert due <= sent < due + timedelta(hours=25)
            assert not is_quiet(sent, quiet, zone), (due, sent)
            if sent != due:
                at_end = sent.astimezone(zone).time() == quiet.end
                assert is_quiet(due, quiet, zone)
                assert at_end or just_after_a_gap(sent, zone), (due, sent)


def test_a_window_ends_at_its_end_even_when_falling_back_leaves_it_for_a_while() -> None:
    # New York, 1 November: 01:45 EDT is quiet; at 02:00 EDT the clock reads 01:00 EST, outside
    # 01:30-02:30 for half an hour, but the step still waits for 02:30 EST.
    due = local(NEW_YORK, 11, 1, 1, 45)
    assert defer_for_quiet_hours(due, AROUND_THE_CHANGE, NEW_YORK) == utc(11, 1, 7, 30)
