"""Business-hours calendars, checked against the wall clocks and UTC instants a user reads.

DST dates used (2026): the EU springs forward on Sunday 29 March at 01:00 UTC (02:00 CET
becomes 03:00 CEST) and falls back on Sunday 25 October at 01:00 UTC (03:00 CEST becomes
02:00 CET, so 02:00-03:00 happens twice); the US on 8 March and 1 November at 02:00 local.
"""

from __future__ import annotations

import time as stopwatch
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from crm_cases.calendar import Calendar, CalendarError, parse_calendar

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600.0
NINE_TO_FIVE = ((time(9), time(17)),)
WEEKDAYS = range(5)


def berlin(month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


def new_york(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def wall(instant: datetime, zone: ZoneInfo = BERLIN) -> str:
    """What the clock on the office wall says at `instant`."""
    return instant.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def office(zone: str = "Europe/Berlin", holidays: frozenset[date] = frozenset()) -> Calendar:
    return Calendar(zone, dict.fromkeys(WEEKDAYS, NINE_TO_FIVE), holidays)


def round_the_clock(zone: str) -> Calendar:
    return Calendar(zone, dict.fromkeys(range(7), ((time(0), time(0)),)))


# --- office hours ------------------------------------------------------------------------


def test_four_business_hours_from_friday_16_00_are_due_on_monday_12_00() -> None:
    due = office().add_business_seconds(berlin(6, 5, 16), 4 * HOUR)

    assert wall(due) == "Mon 2026-06-08 12:00 CEST"
    assert due == utc(6, 8, 10)
    assert due.tzinfo is UTC


def test_three_business_hours_from_friday_16_00_are_due_on_monday_11_00() -> None:
    assert wall(office().add_business_seconds(berlin(6, 5, 16), 3 * HOUR)) == (
        "Mon 2026-06-08 11:00 CEST"
    )


def test_a_weekend_holds_no_business_time() -> None:
    calendar = office()

    assert calendar.business_seconds(berlin(6, 5, 16), berlin(6, 8, 12)) == 4 * HOUR
    assert calendar.business_seconds(berlin(6, 5, 17), berlin(6, 8, 9)) == 0.0


def test_a_start_outside_hours_counts_from_the_next_opening() -> None:
    calendar = office()

    assert wall(calendar.add_business_seconds(berlin(6, 6, 11), HOUR)) == (
        "Mon 2026-06-08 10:00 CEST"
    )
    assert wall(calendar.add_business_seconds(berlin(6, 8, 7, 30), 90 * 60)) == (
        "Mon 2026-06-08 10:30 CEST"
    )
    assert wall(calendar.add_business_seconds(berlin(6, 8, 20), HOUR)) == (
        "Tue 2026-06-09 10:00 CEST"
    )


def test_time_running_out_at_closing_is_due_at_closing_not_at_the_next_opening() -> None:
    assert wall(office().add_business_seconds(berlin(6, 5, 9), 8 * HOUR)) == (
        "Fri 2026-06-05 17:00 CEST"
    )


def test_five_business_days_from_monday_morning_end_on_friday_evening() -> None:
    assert wall(office().add_business_seconds(berlin(6, 8, 9), 5 * 8 * HOUR)) == (
        "Fri 2026-06-12 17:00 CEST"
    )


def test_a_year_of_office_hours_is_its_weekdays_times_eight_hours_and_is_quick() -> None:
    calendar = office()
    began = stopwatch.perf_counter()

    seconds = calendar.business_seconds(berlin(1, 1), datetime(2027, 1, 1, tzinfo=BERLIN))
    due = calendar.add_business_seconds(berlin(1, 1), 261 * 8 * HOUR)

    assert seconds == 261 * 8 * HOUR  # 2026 has 261 weekdays
    assert wall(due) == "Thu 2026-12-31 17:00 CET"
    assert stopwatch.perf_counter() - began < 1.0


def test_a_holiday_is_skipped() -> None:
    christmas = office(holidays=frozenset({date(2026, 12, 25)}))

    due = christmas.add_business_seconds(berlin(12, 24, 16), 4 * HOUR)

    assert wall(due) == "Mon 2026-12-28 12:00 CET"
    assert christmas.business_seconds(berlin(12, 24), berlin(12, 29)) == 2 * 8 * HOUR
    assert office().business_seconds(berlin(12, 24), berlin(12, 29)) == 3 * 8 * HOUR


def test_split_hours_skip_the_lunch_break() -> None:
    calendar = Calendar("Europe/Berlin", {0: ((time(13), time(17)), (time(9), time(12)))})

    assert calendar.hours[0] == ((time(9), time(12)), (time(13), time(17)))
    assert wall(calendar.add_business_seconds(berlin(6, 8, 11), 2 * HOUR)) == (
        "Mon 2026-06-08 14:00 CEST"
    )
    assert calendar.business_seconds(berlin(6, 8), berlin(6, 9)) == 7 * HOUR


# --- daylight saving: Europe/Berlin ------------------------------------------------------


def test_a_deadline_across_the_spring_change_keeps_the_wall_clock_hours() -> None:
    friday_15_00 = berlin(3, 27, 15)  # CET, 14:00 UTC

    due = office().add_business_seconds(friday_15_00, 4 * HOUR)

    assert wall(due) == "Mon 2026-03-30 11:00 CEST"
    assert due == utc(3, 30, 9)
    # Naive arithmetic with Friday's offset (UTC+1) would say 10:00 UTC, an hour late.
    offset = friday_15_00.utcoffset()
    assert offset is not None
    naive = datetime(2026, 3, 30, 11, tzinfo=timezone(offset))
    assert naive == utc(3, 30, 10)
    assert due == naive - timedelta(hours=1)


def test_office_hours_are_eight_hours_in_the_weeks_either_side_of_a_change() -> None:
    calendar = office()

    assert calendar.business_seconds(berlin(3, 23), berlin(3, 28)) == 40 * HOUR
    assert calendar.business_seconds(berlin(3, 30), berlin(4, 4)) == 40 * HOUR
    assert calendar.business_seconds(berlin(10, 19), berlin(10, 24)) == 40 * HOUR
    assert calendar.business_seconds(berlin(10, 26), berlin(10, 31)) == 40 * HOUR
    assert calendar.business_seconds(utc(3, 30, 7), utc(3, 30, 8)) == HOUR  # 09:00 CEST
    assert calendar.business_seconds(utc(3, 27, 7), utc(3, 27, 8)) == 0.0  # 08:00 CET


def test_round_the_clock_days_have_23_and_25_hours_on_the_change_nights() -> None:
    calendar = round_the_clock("Europe/Berlin")

    assert calendar.business_seconds(berlin(3, 29), berlin(3, 30)) == 23 * HOUR
    assert calendar.business_seconds(berlin(10, 25), berlin(10, 26)) == 25 * HOUR
    assert calendar.business_seconds(berlin(6, 1), berlin(6, 2)) == 24 * HOUR


def test_24_business_hours_round_the_clock_over_the_spring_night_end_at_13_00() -> None:
    due = round_the_clock("Europe/Berlin").add_business_seconds(berlin(3, 28, 12), 24 * HOUR)

    assert wall(due) == "Sun 2026-03-29 13:00 CEST"
    assert due == utc(3, 29, 11)


def test_hours_starting_in_the_spring_gap_start_when_the_gap_ends() -> None:
    sunday_night = Calendar("Europe/Berlin", {6: ((time(2, 30), time(5)),)})

    opening = sunday_night.add_business_seconds(utc(3, 28), 1)

    assert opening == utc(3, 29, 1, 0) + timedelta(seconds=1)
    assert wall(opening - timedelta(seconds=1)) == "Sun 2026-03-29 03:00 CEST"
    assert sunday_night.business_seconds(utc(3, 28), utc(3, 30)) == 2 * HOUR
    assert sunday_night.business_seconds(utc(4, 4), utc(4, 6)) == 2.5 * HOUR


def test_hours_ending_in_the_spring_gap_end_when_the_gap_ends() -> None:
    sunday_night = Calendar("Europe/Berlin", {6: ((time(1), time(2, 30)),)})

    assert sunday_night.business_seconds(utc(3, 28), utc(3, 30)) == HOUR
    assert wall(sunday_night.add_business_seconds(utc(3, 28), HOUR)) == (
        "Sun 2026-03-29 03:00 CEST"
    )


def test_hours_over_the_autumn_fold_count_the_repeated_hour() -> None:
    sunday_night = Calendar("Europe/Berlin", {6: ((time(1), time(4)),)})

    assert sunday_night.business_seconds(utc(10, 24), utc(10, 27)) == 4 * HOUR
    due = sunday_night.add_business_seconds(utc(10, 24), 3.5 * HOUR)
    assert wall(due) == "Sun 2026-10-25 03:30 CET"
    assert due == utc(10, 25, 2, 30)


def test_hours_ending_inside_the_fold_end_at_its_second_occurrence() -> None:
    sunday_night = Calendar("Europe/Berlin", {6: ((time(1), time(2, 30)),)})

    # 01:00 CEST to 02:30 CET: 23:00 to 01:30 UTC.
    assert sunday_night.business_seconds(utc(10, 24), utc(10, 27)) == 2.5 * HOUR


def test_a_clock_started_in_the_second_occurrence_of_the_repeated_hour() -> None:
    second_half_past_two = berlin(10, 25, 2, 30, fold=1)  # CET, 01:30 UTC
    calendar = round_the_clock("Europe/Berlin")

    assert second_half_past_two.astimezone(UTC) == utc(10, 25, 1, 30)
    assert wall(calendar.add_business_seconds(second_half_past_two, HOUR)) == (
        "Sun 2026-10-25 03:30 CET"
    )
    first_half_past_two = berlin(10, 25, 2, 30)  # CEST, 00:30 UTC
    assert calendar.business_seconds(first_half_past_two, second_half_past_two) == HOUR


def test_adjacent_intervals_meeting_in_the_fold_are_not_counted_twice() -> None:
    sunday_night = Calendar("Europe/Berlin", {6: ((time(1), time(2, 30)), (time(2, 30), time(4)))})

    assert sunday_night.business_seconds(utc(10, 24), utc(10, 27)) == 4 * HOUR


def test_a_fold_at_midnight_is_counted_once_by_the_two_days_that_share_it() -> None:
    # Havana falls back from 01:00 to 00:00 on Sunday 1 November: midnight happens twice.
    havana = ZoneInfo("America/Havana")
    calendar = round_the_clock("America/Havana")
    year = (utc(1, 1), datetime(2027, 1, 1, tzinfo=UTC))
    saturday = datetime(2026, 10, 31, tzinfo=havana)
    sunday = datetime(2026, 11, 1, tzinfo=havana)  # the first midnight
    monday = datetime(2026, 11, 2, tzinfo=havana)

    assert calendar.business_seconds(saturday, sunday) == 24 * HOUR
    assert calendar.business_seconds(sunday, monday) == 25 * HOUR
    assert calendar.business_seconds(saturday, monday) == 49 * HOUR
    assert calendar.business_seconds(*year) == (year[1] - year[0]).total_seconds()
    assert calendar.add_business_seconds(utc(10, 31, 20), 11 * HOUR) == utc(11, 1, 7)


# --- daylight saving: America/New_York ---------------------------------------------------


def new_york_office() -> Calendar:
    return Calendar("America/New_York", dict.fromkeys(WEEKDAYS, ((time(8), time(18)),)))


def test_new_york_deadline_across_the_march_change() -> None:
    due = new_york_office().add_business_seconds(new_york(3, 6, 17), 3 * HOUR)  # 22:00 UTC

    assert wall(due, NEW_YORK) == "Mon 2026-03-09 10:00 EDT"
    assert due == utc(3, 9, 14)


def test_new_york_deadline_across_the_november_change() -> None:
    due = new_york_office().add_business_seconds(new_york(10, 30, 17), 3 * HOUR)  # 21:00 UTC

    assert wall(due, NEW_YORK) == "Mon 2026-11-02 10:00 EST"
    assert due == utc(11, 2, 15)


def test_new_york_round_the_clock_change_days() -> None:
    calendar = round_the_clock("America/New_York")

    assert calendar.business_seconds(new_york(3, 8), new_york(3, 9)) == 23 * HOUR
    assert calendar.business_seconds(new_york(11, 1), new_york(11, 2)) == 25 * HOUR


# --- hours across midnight ---------------------------------------------------------------


def night_desk() -> Calendar:
    """22:00-24:00 Monday to Friday, carrying on 00:00-06:00 Tuesday to Saturday."""
    evenings = dict.fromkeys(range(5), ((time(22), time(0)),))
    mornings = dict.fromkeys(range(1, 6), ((time(0), time(6)),))
    return Calendar(
        "Europe/Berlin", {day: evenings.get(day, ()) + mornings.get(day, ()) for day in range(7)}
    )


def test_a_night_shift_runs_on_across_midnight() -> None:
    calendar = night_desk()

    assert wall(calendar.add_business_seconds(berlin(6, 8, 23), 3 * HOUR)) == (
        "Tue 2026-06-09 02:00 CEST"
    )
    assert calendar.business_seconds(berlin(6, 8, 21), berlin(6, 9, 7)) == 8 * HOUR
    assert calendar.business_seconds(berlin(6, 8, 23, 30), berlin(6, 9, 0, 30)) == HOUR


def test_a_night_shift_resumes_on_monday_evening_after_the_weekend() -> None:
    due = night_desk().add_business_seconds(berlin(6, 12, 23), 8 * HOUR)  # Friday 23:00

    assert wall(due) == "Mon 2026-06-15 23:00 CEST"


# --- always, errors and guards -----------------------------------------------------------


def test_always_is_real_time_in_utc() -> None:
    always = Calendar.always()

    assert always.time_zone == "UTC"
    assert always.business_seconds(utc(3, 28, 12), utc(4, 2, 12)) == 5 * 24 * HOUR
    assert always.add_business_seconds(berlin(3, 28, 12), 24 * HOUR) == berlin(3, 29, 13)


def test_an_empty_or_backwards_span_holds_no_business_time() -> None:
    always = Calendar.always()

    assert always.business_seconds(utc(6, 1), utc(6, 1)) == 0.0
    assert always.business_seconds(utc(6, 2), utc(6, 1)) == 0.0


def test_naive_datetimes_are_refused() -> None:
    always = Calendar.always()

    with pytest.raises(ValueError, match="aware"):
        always.business_seconds(datetime(2026, 6, 1), utc(6, 2))
    with pytest.raises(ValueError, match="aware"):
        always.business_seconds(utc(6, 1), datetime(2026, 6, 2))
    with pytest.raises(ValueError, match="aware"):
        always.add_business_seconds(datetime(2026, 6, 1), HOUR)


def test_no_time_to_add_gives_the_start_even_outside_hours() -> None:
    saturday = berlin(6, 6, 11)

    assert office().add_business_seconds(saturday, 0) == saturday
    assert office().add_business_seconds(saturday, -5) == saturday


def test_a_calendar_without_hours_cannot_give_a_deadline() -> None:
    with pytest.raises(ValueError, match="no business hours"):
        Calendar("Europe/Berlin", {}).add_business_seconds(utc(6, 1), HOUR)


def test_a_calendar_closed_for_years_by_holidays_gives_up_instead_of_looping() -> None:
    mondays = frozenset(date(2026, 6, 1) + timedelta(weeks=week) for week in range(52 * 3))
    mondays_only = Calendar("Europe/Berlin", {0: NINE_TO_FIVE}, mondays)
    began = stopwatch.perf_counter()

    with pytest.raises(ValueError, match="no business time within 732 days"):
        mondays_only.add_business_seconds(utc(5, 30), HOUR)
    assert stopwatch.perf_counter() - began < 1.0
    assert mondays_only.business_seconds(utc(5, 30), utc(6, 30)) == 0.0


@pytest.mark.parametrize(
    "calendar",
    [office(), office("America/New_York"), night_desk(), round_the_clock("Europe/Berlin")],
    ids=["berlin-office", "new-york-office", "night-desk", "berlin-24x7"],
)
def test_adding_business_time_and_measuring_it_agree_across_the_year(calendar: Calendar) -> None:
    for start in (utc(1, 1, 5) + timedelta(hours=37 * step) for step in range(240)):
        for seconds in (1.0, 1800.0, 4 * HOUR, 30 * HOUR):
            due = calendar.add_business_seconds(start, seconds)
            assert due >= start
            assert calendar.business_seconds(start, due) == pytest.approx(seconds, abs=1e-5)


# --- building a calendar -----------------------------------------------------------------


def test_calendars_with_the_same_rules_are_equal_and_hash_alike() -> None:
    one = Calendar("Europe/Berlin", {0: NINE_TO_FIVE, 6: ()}, frozenset({date(2026, 12, 25)}))
    two = Calendar("Europe/Berlin", {0: NINE_TO_FIVE}, frozenset({date(2026, 12, 25)}))

    assert one == two
    assert hash(one) == hash(two)
    assert 6 not in one.hours


def test_a_calendar_cannot_be_changed_after_it_is_made() -> None:
    hours = {0: NINE_TO_FIVE}
    calendar = Calendar("Europe/Berlin", hours)
    hours[1] = NINE_TO_FIVE

    assert 1 not in calendar.hours
    with pytest.raises(TypeError):
        calendar.hours[2] = NINE_TO_FIVE  # type: ignore[index]


@pytest.mark.parametrize(
    ("zone", "hours", "holidays", "message"),
    [
        ("Mars/Olympus", {}, frozenset(), "unknown time zone 'Mars/Olympus'"),
        ("", {}, frozenset(), "unknown time zone ''"),
        ("UTC", {7: NINE_TO_FIVE}, frozenset(), "weekday 7 is not 0"),
        ("UTC", {0: ((time(17), time(9)),)}, frozenset(), "mon: 17:00-09:00 ends before"),
        ("UTC", {0: ((time(9), time(9)),)}, frozenset(), "mon: 09:00-09:00 ends before"),
        (
            "UTC",
            {1: ((time(9), time(13)), (time(12), time(17)))},
            frozenset(),
            "tue: 09:00-13:00 overlaps 12:00-17:00",
        ),
        ("UTC", {0: ((time(9, 0, 30), time(17)),)}, frozenset(), "whole minutes"),
        ("UTC", {}, frozenset({datetime(2026, 12, 25)}), "is not a date"),
    ],
)
def test_impossible_calendars_are_refused_with_the_reason(
    zone: str,
    hours: dict[int, tuple[tuple[time, time], ...]],
    holidays: frozenset[date],
    message: str,
) -> None:
    with pytest.raises(CalendarError, match=message):
        Calendar(zone, hours, holidays)


# --- the JSON form -----------------------------------------------------------------------

DOCUMENT_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DOCUMENT = {
    "time_zone": "Europe/Berlin",
    "hours": {
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "fri": [["09:00", "15:00"]],
        "sat": [["22:00", "24:00"]],
        "sun": [["00:00", "06:00"]],
    },
    "holidays": ["2026-12-24", "2026-12-25"],
}


def test_parse_calendar_reads_the_json_form() -> None:
    calendar = parse_calendar(DOCUMENT)

    assert calendar == Calendar(
        "Europe/Berlin",
        {
            0: ((time(9), time(12)), (time(13), time(17))),
            4: ((time(9), time(15)),),
            5: ((time(22), time(0)),),
            6: ((time(0), time(6)),),
        },
        frozenset({date(2026, 12, 24), date(2026, 12, 25)}),
    )


def test_to_document_and_parse_calendar_are_inverse() -> None:
    assert parse_calendar(DOCUMENT).to_document() == DOCUMENT
    assert parse_calendar(Calendar.always().to_document()) == Calendar.always()
    assert Calendar.always().to_document() == {
        "time_zone": "UTC",
        "hours": {day: [["00:00", "24:00"]] for day in DOCUMENT_DAYS},
        "holidays": [],
    }


def test_omitted_days_and_holidays_are_closed_and_none() -> None:
    calendar = parse_calendar({"time_zone": "UTC", "hours": {"wed": [["10:00", "11:00"]]}})

    assert dict(calendar.hours) == {2: ((time(10), time(11)),)}
    assert calendar.holidays == frozenset()
    assert parse_calendar({"time_zone": "UTC", "hours": {"mon": []}}).hours == {}


def test_an_end_of_00_00_in_a_document_means_midnight() -> None:
    calendar = parse_calendar({"time_zone": "UTC", "hours": {"fri": [["22:00", "00:00"]]}})

    assert calendar.to_document()["hours"] == {"fri": [["22:00", "24:00"]]}
    assert calendar.business_seconds(utc(6, 5), utc(6, 6)) == 2 * HOUR


def test_unsorted_intervals_in_a_document_are_put_in_order() -> None:
    calendar = parse_calendar(
        {"time_zone": "UTC", "hours": {"mon": [["13:00", "17:00"], ["9:00", "12:00"]]}}
    )

    assert calendar.to_document()["hours"] == {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"time_zone": "Europe/Berlln", "hours": {}}, "unknown time zone 'Europe/Berlln'"),
        ({"hours": {}}, "time_zone must be an IANA time zone name"),
        ({"time_zone": 1}, "time_zone must be an IANA time zone name"),
        ({"time_zone": "UTC", "hours": {"monday": []}}, "unknown day 'monday'; days are mon, tue"),
        ({"time_zone": "UTC", "hours": {"Mon": []}}, "unknown day 'Mon'"),
        ({"time_zone": "UTC", "hours": [["09:00", "17:00"]]}, "hours must map day names"),
        ({"time_zone": "UTC", "hours": {"mon": "09:00-17:00"}}, r"hours\.mon must be a list"),
        ({"time_zone": "UTC", "hours": {"mon": [["09:00"]]}}, r"hours\.mon\[0\] must be a \[start"),
        (
            {"time_zone": "UTC", "hours": {"tue": [["08:00", "12:00"], ["13:00", "25:00"]]}},
            r"hours\.tue\[1\]: '25:00' is not a time of day; write HH:MM",
        ),
        ({"time_zone": "UTC", "hours": {"mon": [["9h", "17:00"]]}}, "'9h' is not a time of day"),
        ({"time_zone": "UTC", "hours": {"mon": [["09:60", "17:00"]]}}, "'09:60' is not a time"),
        ({"time_zone": "UTC", "hours": {"mon": [[9, 17]]}}, "9 is not a time of day"),
        (
            {"time_zone": "UTC", "hours": {"mon": [["24:00", "24:00"]]}},
            "24:00 may end an interval, not start one",
        ),
        (
            {"time_zone": "UTC", "hours": {"mon": [["17:00", "09:00"]]}},
            "mon: 17:00-09:00 ends before it starts",
        ),
        (
            {"time_zone": "UTC", "hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}},
            "mon: 09:00-13:00 overlaps 12:00-17:00",
        ),
        (
            {"time_zone": "UTC", "holidays": ["2026-02-30"]},
            r"holidays\[0\]: '2026-02-30' is not a date",
        ),
        ({"time_zone": "UTC", "holidays": ["25.12.2026"]}, "'25.12.2026' is not a date"),
        ({"time_zone": "UTC", "holidays": ["20261225"]}, "'20261225' is not a date"),
        ({"time_zone": "UTC", "holidays": "2026-12-25"}, "holidays must be a list of dates"),
        ({"time_zone": "UTC", "holiday": []}, "unknown calendar field.* holiday; expected"),
    ],
)
def test_parse_calendar_says_what_is_wrong_and_where(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_calendar(document)


def test_a_calendar_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_calendar({"time_zone": "Nowhere/Town"})
