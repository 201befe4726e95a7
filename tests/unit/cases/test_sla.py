"""SLA clocks through a case's life: started, paused while the customer is away, met,
breached, retargeted by a priority change and recounted when the hours are edited.

The office is Mon-Fri 09:00-17:00 in Berlin; 8-12 June 2026 is a plain week (CEST).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_cases.calendar import Calendar
from crm_cases.sla import (
    BREACH_NAMESPACE,
    Clock,
    Metric,
    Target,
    breach,
    breach_event_id,
    elapsed,
    on_status,
    overdue,
    pause,
    recalendar,
    remaining,
    resume,
    retarget,
    start,
    stop,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600
OFFICE = Calendar("Europe/Berlin", dict.fromkeys(range(5), ((time(9), time(17)),)))
RESOLUTION = Target(8 * HOUR, frozenset({"pending", "on_hold"}))
FIRST_RESPONSE = Target(4 * HOUR)


def june(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=BERLIN)


def wall(instant: datetime | None) -> str:
    assert instant is not None
    return instant.astimezone(BERLIN).strftime("%a %d %b %H:%M")


def resolution_clock(at: datetime = june(8, 9), status: str = "open") -> Clock:
    return start(Metric.RESOLUTION, 1, at, RESOLUTION, OFFICE, status)


# --- starting ----------------------------------------------------------------------------


def test_a_clock_started_in_an_open_case_runs_and_is_due_when_its_target_is_used() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")

    assert clock.running
    assert clock.running_since == june(8, 9)
    assert clock.started_at == june(8, 9)
    assert (clock.used_seconds, clock.target_seconds, clock.cycle) == (0.0, 4 * HOUR, 1)
    assert wall(clock.due_at) == "Mon 08 Jun 13:00"
    assert not overdue(clock, june(8, 12, 59))
    assert overdue(clock, june(8, 13))


def test_a_first_response_asked_for_on_friday_afternoon_is_due_on_monday() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(5, 16), FIRST_RESPONSE, OFFICE, "new")

    assert wall(clock.due_at) == "Mon 08 Jun 12:00"
    assert remaining(clock, june(6, 12), OFFICE) == 3 * HOUR  # Saturday: nothing used


def test_a_clock_started_in_a_pausing_status_waits_for_the_case_to_move_on() -> None:
    clock = resolution_clock(status="pending")

    assert not clock.running
    assert clock.due_at is None
    assert elapsed(clock, june(10, 12), OFFICE) == 0.0

    resumed = on_status(clock, "open", june(9, 10), RESOLUTION, OFFICE)

    assert resumed.running_since == june(9, 10)
    assert wall(resumed.due_at) == "Wed 10 Jun 10:00"


def test_start_refuses_naive_times_and_cycle_zero() -> None:
    with pytest.raises(ValueError, match="aware"):
        start(Metric.RESOLUTION, 1, datetime(2026, 6, 8, 9), RESOLUTION, OFFICE, "open")
    with pytest.raises(ValueError, match="cycles count from 1"):
        start(Metric.RESOLUTION, 0, june(8, 9), RESOLUTION, OFFICE, "open")
    with pytest.raises(ValueError, match="negative"):
        Target(-1)


def test_a_round_the_clock_target_over_the_autumn_night_counts_the_repeated_hour() -> None:
    berlin_24x7 = Calendar("Europe/Berlin", dict.fromkeys(range(7), ((time(0), time(0)),)))
    saturday_22_00 = datetime(2026, 10, 24, 22, tzinfo=BERLIN)

    clock = start(Metric.RESOLUTION, 1, saturday_22_00, Target(8 * HOUR), berlin_24x7, "open")

    assert clock.due_at is not None
    assert clock.due_at.astimezone(BERLIN).strftime("%d %b %H:%M %Z") == "25 Oct 05:00 CET"
    assert clock.due_at - saturday_22_00 == timedelta(hours=8)


# --- pausing while the customer is away --------------------------------------------------


def test_a_case_pending_for_days_keeps_its_deadline_honest() -> None:
    clock = resolution_clock()  # Monday 09:00, 8 business hours
    assert wall(clock.due_at) == "Mon 08 Jun 17:00"

    waiting = on_status(clock, "pending", june(8, 13), RESOLUTION, OFFICE)

    assert waiting.used_seconds == 4 * HOUR
    assert waiting.running_since is None
    assert waiting.due_at is None
    assert elapsed(waiting, june(10, 12), OFFICE) == 4 * HOUR
    assert remaining(waiting, june(10, 12), OFFICE) == 4 * HOUR
    assert not overdue(waiting, june(10, 12))

    back = on_status(waiting, "open", june(11, 10), RESOLUTION, OFFICE)  # Thursday 10:00

    assert wall(back.due_at) == "Thu 11 Jun 14:00"
    assert remaining(back, june(11, 10), OFFICE) == 4 * HOUR
    assert not overdue(back, june(11, 13, 59))
    assert overdue(back, june(11, 14))


def test_on_hold_pauses_resolution_too_and_a_second_pause_changes_nothing() -> None:
    held = on_status(resolution_clock(), "on_hold", june(8, 11), RESOLUTION, OFFICE)

    assert on_status(held, "pending", june(9, 11), RESOLUTION, OFFICE) == held
    assert pause(held, june(9, 12), OFFICE) == held
    assert held.used_seconds == 2 * HOUR


def test_resuming_a_running_clock_changes_nothing() -> None:
    clock = resolution_clock()

    assert resume(clock, june(8, 11), OFFICE) == clock
    assert on_status(clock, "open", june(8, 11), RESOLUTION, OFFICE) == clock


def test_first_response_does_not_pause_when_the_case_waits_on_the_customer() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")

    assert on_status(clock, "pending", june(8, 10), FIRST_RESPONSE, OFFICE) == clock


def test_a_clock_paused_after_its_due_time_stays_overdue_so_that_it_breaches_at_once() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")
    late_pause = pause(clock, june(8, 15), OFFICE)  # due at 13:00, the sweeper had not run

    assert late_pause.running_since is None
    assert late_pause.used_seconds == 6 * HOUR
    assert wall(late_pause.due_at) == "Mon 08 Jun 13:00"
    assert overdue(late_pause, june(8, 15))

    resumed = resume(late_pause, june(9, 9), OFFICE)

    assert wall(resumed.due_at) == "Mon 08 Jun 13:00"
    assert overdue(resumed, june(9, 9))


# --- meeting the target ------------------------------------------------------------------


def test_stopping_records_the_time_used_and_ends_the_clock() -> None:
    clock = resolution_clock()

    met = stop(clock, june(8, 15, 30), OFFICE)

    assert met.stopped
    assert met.stopped_at == june(8, 15, 30)
    assert met.used_seconds == 6.5 * HOUR
    assert met.due_at is None
    assert met.running_since is None
    assert not overdue(met, june(9, 9))
    assert elapsed(met, june(12, 9), OFFICE) == 6.5 * HOUR
    assert remaining(met, june(12, 9), OFFICE) == 1.5 * HOUR


def test_a_stopped_clock_ignores_everything_that_follows() -> None:
    met = stop(resolution_clock(), june(8, 15), OFFICE)
    always = Calendar.always()

    assert stop(met, june(9, 9), OFFICE) == met
    assert pause(met, june(9, 9), OFFICE) == met
    assert resume(met, june(9, 9), OFFICE) == met
    assert on_status(met, "open", june(9, 9), RESOLUTION, OFFICE) == met
    assert retarget(met, Target(HOUR), june(9, 9), OFFICE) == met
    assert recalendar(met, june(9, 9), OFFICE, always) == met


def test_a_paused_clock_can_be_stopped_and_keeps_its_used_time() -> None:
    waiting = on_status(resolution_clock(), "pending", june(8, 12), RESOLUTION, OFFICE)

    met = stop(waiting, june(10, 12), OFFICE)

    assert met.used_seconds == 3 * HOUR
    assert met.stopped_at == june(10, 12)


def test_time_over_the_target_shows_as_negative_remaining_time() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")

    assert elapsed(clock, june(8, 15), OFFICE) == 6 * HOUR
    assert remaining(clock, june(8, 15), OFFICE) == -2 * HOUR


# --- breaches ----------------------------------------------------------------------------


def test_a_breach_is_recorded_once() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")

    breached = breach(clock, june(8, 13))

    assert breached.breached_at == june(8, 13)
    assert not overdue(breached, june(8, 14))
    assert breach(breached, june(8, 14)) == breached


def test_a_breach_stands_when_the_clock_is_later_met() -> None:
    breached = breach(resolution_clock(), june(8, 17))

    met = stop(breached, june(9, 10), OFFICE)

    assert met.breached_at == june(8, 17)
    assert met.used_seconds == 9 * HOUR


def test_breach_event_ids_are_the_same_everywhere_and_one_per_case_metric_and_cycle() -> None:
    first = breach_event_id("case-1", Metric.RESOLUTION, 1)

    assert first == "84243d8e-ba30-50c0-97be-1a991da08453"  # fixed for ever: replicas agree
    assert uuid.UUID(first).version == 5
    assert first == str(uuid.uuid5(BREACH_NAMESPACE, "case-1/resolution/1"))
    assert breach_event_id("case-1", Metric("resolution"), 1) == first
    others = {
        breach_event_id("case-1", Metric.RESOLUTION, 2),
        breach_event_id("case-1", Metric.FIRST_RESPONSE, 1),
        breach_event_id("case-1", Metric.NEXT_RESPONSE, 1),
        breach_event_id("case-2", Metric.RESOLUTION, 1),
    }
    assert first not in others
    assert len(others) == 4


# --- a priority change picks a new target ------------------------------------------------


def test_a_tighter_target_already_used_up_is_overdue_at_once_from_when_it_was_crossed() -> None:
    clock = resolution_clock()  # Monday 09:00, 8 h, due 17:00

    urgent = retarget(clock, Target(4 * HOUR, RESOLUTION.pauses_in), june(8, 15), OFFICE)

    assert urgent.target_seconds == 4 * HOUR
    assert urgent.started_at == june(8, 9)
    assert wall(urgent.due_at) == "Mon 08 Jun 13:00"
    assert overdue(urgent, june(8, 15))
    assert remaining(urgent, june(8, 15), OFFICE) == -2 * HOUR


def test_a_tighter_target_crossed_before_a_pause_is_due_when_it_is_set() -> None:
    clock = resolution_clock()
    waiting = on_status(clock, "pending", june(8, 13), RESOLUTION, OFFICE)  # 4 h used
    back = on_status(waiting, "open", june(9, 9), RESOLUTION, OFFICE)

    urgent = retarget(back, Target(2 * HOUR), june(9, 10), OFFICE)

    assert urgent.due_at == june(9, 10)
    assert overdue(urgent, june(9, 10))


def test_a_tighter_target_not_yet_used_up_moves_the_deadline_earlier() -> None:
    high = retarget(resolution_clock(), Target(4 * HOUR), june(8, 10), OFFICE)

    assert wall(high.due_at) == "Mon 08 Jun 13:00"
    assert not overdue(high, june(8, 10))


def test_a_looser_target_moves_the_deadline_later_but_a_breach_stands() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")
    breached = breach(clock, june(8, 13))

    low = retarget(breached, Target(8 * HOUR), june(8, 14), OFFICE)

    assert wall(low.due_at) == "Mon 08 Jun 17:00"
    assert low.breached_at == june(8, 13)
    assert not overdue(low, june(8, 17))


def test_retargeting_a_paused_clock() -> None:
    waiting = on_status(resolution_clock(), "pending", june(8, 13), RESOLUTION, OFFICE)

    assert retarget(waiting, Target(6 * HOUR), june(9, 12), OFFICE).due_at is None
    tighter = retarget(waiting, Target(3 * HOUR), june(9, 12), OFFICE)
    assert tighter.due_at == june(9, 12)
    assert overdue(tighter, june(9, 12))
    looser = retarget(tighter, Target(16 * HOUR), june(9, 13), OFFICE)
    assert looser.due_at is None


# --- the hours are edited mid-case -------------------------------------------------------


def test_an_edited_calendar_keeps_the_time_used_and_counts_the_rest_by_the_new_hours() -> None:
    mornings = Calendar("Europe/Berlin", dict.fromkeys(range(5), ((time(9), time(13)),)))
    clock = resolution_clock()  # Monday 09:00, 8 h, due 17:00 by the old hours

    edited = recalendar(clock, june(8, 11), OFFICE, mornings)

    assert edited.used_seconds == 2 * HOUR
    assert edited.running_since == june(8, 11)
    assert wall(edited.due_at) == "Tue 09 Jun 13:00"  # 2 h Monday, 4 h Tuesday
    assert elapsed(edited, june(8, 17), mornings) == 4 * HOUR


def test_a_case_handed_to_another_time_zone_counts_the_rest_in_its_hours() -> None:
    new_york = Calendar("America/New_York", dict.fromkeys(range(5), ((time(8), time(18)),)))
    clock = resolution_clock()

    edited = recalendar(clock, june(8, 13), OFFICE, new_york)  # 07:00 in New York

    assert edited.used_seconds == 4 * HOUR
    assert wall(edited.due_at) == "Mon 08 Jun 18:00"  # 12:00 in New York


def test_an_edited_calendar_leaves_a_paused_clock_alone() -> None:
    waiting = on_status(resolution_clock(), "pending", june(8, 13), RESOLUTION, OFFICE)

    assert recalendar(waiting, june(9, 9), OFFICE, Calendar.always()) == waiting


def test_an_edited_calendar_keeps_an_overdue_clock_overdue_from_when_it_crossed() -> None:
    clock = start(Metric.FIRST_RESPONSE, 1, june(8, 9), FIRST_RESPONSE, OFFICE, "new")

    edited = recalendar(clock, june(8, 15), OFFICE, Calendar.always())

    assert edited.used_seconds == 6 * HOUR
    assert wall(edited.due_at) == "Mon 08 Jun 13:00"
    assert overdue(edited, june(8, 15))


def test_every_cycle_is_a_clock_of_its_own() -> None:
    asked = start(Metric.NEXT_RESPONSE, 1, june(8, 9), Target(2 * HOUR), OFFICE, "open")
    answered = stop(asked, june(8, 10), OFFICE)
    asked_again = start(Metric.NEXT_RESPONSE, 2, june(8, 16), Target(2 * HOUR), OFFICE, "open")

    assert answered.used_seconds == HOUR
    assert asked_again.cycle == 2
    assert wall(asked_again.due_at) == "Tue 09 Jun 10:00"
    assert asked_again.due_at is not None
    assert asked_again.due_at.tzinfo is UTC
