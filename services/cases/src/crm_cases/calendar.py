"""Business-hours calendars: how much working time lies between two instants, and when a
given amount of it has passed.

SLA targets are promises in business time ("answer within 4 business hours"), while events
carry instants. A `Calendar` says which local wall-clock hours of which weekdays count, in
one IANA time zone, minus holidays. Each local day's hours are turned into UTC instants for
that very date, so a daylight-saving change moves the instants, never the wall-clock hours:
09:00-17:00 is eight hours of business time on either side of the change and starts at 09:00
on the clock on the wall. A boundary that falls in the spring gap (a local time that does not
exist) means the first instant after the gap; in the autumn fold (an hour that happens twice)
a start means its first occurrence and an end its second, so the repeated hour counts.

The work is done a local day at a time, never a minute at a time, so months of business time
cost a few hundred zone conversions. Pure: no I/O and no clock; callers pass event times.
`to_document` and `parse_calendar` are the JSON form that policies store and the API takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DAY_NAMES", "Calendar", "CalendarError", "parse_calendar"]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names of the JSON form, by weekday number (0 = Monday, as `date.weekday()`)."""

MIDNIGHT = time(0)
SEARCH_DAYS = 366 * 2
"""How far ahead `add_business_seconds` looks for business time before it gives up."""

_FIELDS = ("time_zone", "hours", "holidays")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Interval = tuple[time, time]
Span = tuple[datetime, datetime]


class CalendarError(ValueError):
    """A calendar that cannot be: an unknown zone, bad hours or bad holidays."""


@dataclass(frozen=True)
class Calendar:
    """Weekly business hours in one time zone, minus holidays.

    hours maps a weekday (0 = Monday .. 6 = Sunday) to its [start, end) local wall-clock
    intervals; an end of 00:00 means midnight at the end of the day (24:00). Days missing
    from hours are closed; holidays are local dates with no business hours at all.
    """

    time_zone: str
    hours: Mapping[int, tuple[Interval, ...]]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _zone(self.time_zone)
        object.__setattr__(self, "hours", MappingProxyType(_checked_hours(self.hours)))
        object.__setattr__(self, "holidays", _checked_holidays(self.holidays))

    def __hash__(self) -> int:
        return hash((self.time_zone, tuple(sorted(self.hours.items())), self.holidays))

    @classmethod
    def always(cls) -> Calendar:
        """Round the clock, every day, in UTC, no holidays: business time is real time."""
        return cls("UTC", dict.fromkeys(range(7), ((MIDNIGHT, MIDNIGHT),)))

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return _zone(self.time_zone)

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Business time in [start, end), in seconds; 0 if end is not after start."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        start, end = start.astimezone(UTC), end.astimezone(UTC)  # a fold=1 time compares oddly
        if end <= start:
            return 0.0
        total = 0.0
        for _, day_start, spans in self._days(self._local_date(start) - timedelta(days=1)):
            if day_start >= end:
                break
            for span_start, span_end in spans:
                low, high = max(span_start, start), min(span_end, end)
                if high > low:
                    total += (high - low).total_seconds()
        return total

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant (UTC) at which `seconds` of business time after `start` have passed.

        An amount that runs out exactly at the end of some hours gives that end (Friday
        17:00), not the next opening. Raises ValueError when the calendar has no hours at
        all, or none within SEARCH_DAYS of the last business time found.
        """
        _require_aware(start, "start")
        start = start.astimezone(UTC)
        if seconds <= 0:
            return start
        if not self.hours:
            raise ValueError("the calendar has no business hours on any day")
        left = float(seconds)
        first = self._local_date(start) - timedelta(days=1)
        last_open = first
        for day, _, spans in self._days(first):
            for span_start, span_end in spans:
                low = max(span_start, start)
                if span_end <= low:
                    continue
                last_open = day
                available = (span_end - low).total_seconds()
                if left <= available:
                    return low + timedelta(seconds=left)
                left -= available
            if (day - last_open).days > SEARCH_DAYS:
                raise ValueError(
                    f"no business time within {SEARCH_DAYS} days after {last_open.isoformat()}"
                )
        raise AssertionError("Calendar._days never ends")  # pragma: no cover

    def to_document(self) -> dict[str, Any]:
        """The JSON form: time zone, hours by day name ("HH:MM", 24:00 for midnight), dates."""
        return {
            "time_zone": self.time_zone,
            "hours": {
                DAY_NAMES[day]: [[_hhmm(start), _hhmm(end, end=True)] for start, end in spans]
                for day, spans in sorted(self.hours.items())
            },
            "holidays": [holiday.isoformat() for holiday in sorted(self.holidays)],
        }

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def _days(self, first: date) -> Iterator[tuple[date, datetime, list[Span]]]:
        """Each local day from `first` on: the day, its first instant, its business spans.

        Spans are UTC, in order, and never overlap: one that would start before the previous
        one ended (two intervals meeting in a fold) is cut to start there.
        """
        day, previous_end = first, datetime.min.replace(tzinfo=UTC)
        while True:
            spans: list[Span] = []
            for span_start, span_end in self._day_spans(day):
                span_start = max(span_start, previous_end)
                if span_end > span_start:
                    spans.append((span_start, span_end))
                    previous_end = span_end
            yield day, self._instant(day, MIDNIGHT, end=False), spans
            day += timedelta(days=1)

    def _day_spans(self, day: date) -> list[Span]:
        if day in self.holidays:
            return []
        return [
            (self._instant(day, start, end=False), self._instant(day, end, end=True))
            for start, end in self.hours.get(day.weekday(), ())
        ]

    def _instant(self, day: date, wall: time, *, end: bool) -> datetime:
        """The UTC instant of a local wall-clock boundary on `day` (an end of 00:00 is 24:00).

        In a fold a start is the first occurrence and an end the second; in a gap both are
        the first instant after the gap.
        """
        if end and wall == MIDNIGHT:
            day += timedelta(days=1)
        local = datetime.combine(day, wall)
        first = local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return first
        if first < second:
            return second if end else first
        return _transition(self.zone, second, first)


def parse_calendar(document: Mapping[str, Any]) -> Calendar:
    """The calendar a JSON document describes (the inverse of `Calendar.to_document`).

    {"time_zone": "Europe/Berlin", "hours": {"mon": [["09:00", "17:00"]], ...},
    "holidays": ["2026-12-25"]}: days omitted are closed, holidays may be omitted. Raises
    CalendarError saying what is wrong and where.
    """
    if not isinstance(document, Mapping):
        raise CalendarError("a calendar is an object with time_zone, hours and holidays")
    unknown = sorted(str(key) for key in document if key not in _FIELDS)
    if unknown:
        raise CalendarError(
            f"unknown calendar field(s) {', '.join(unknown)}; expected {', '.join(_FIELDS)}"
        )
    time_zone = document.get("time_zone")
    if not isinstance(time_zone, str):
        raise CalendarError("time_zone must be an IANA time zone name such as 'Europe/Berlin'")
    return Calendar(
        time_zone=time_zone,
        hours=_parse_hours(document.get("hours", {})),
        holidays=_parse_holidays(document.get("holidays", [])),
    )


def _parse_hours(raw: Any) -> dict[int, tuple[Interval, ...]]:
    if not isinstance(raw, Mapping):
        raise CalendarError('hours must map day names to [start, end] pairs: {"mon": [...]}')
    hours: dict[int, tuple[Interval, ...]] = {}
    for name, intervals in raw.items():
        if name not in DAY_NAMES:
            raise CalendarError(f"hours: unknown day {name!r}; days are {', '.join(DAY_NAMES)}")
        if not _is_list(intervals):
            raise CalendarError(
                f'hours.{name} must be a list of [start, end] pairs, e.g. [["09:00", "17:00"]]'
            )
        parsed: list[Interval] = []
        for index, pair in enumerate(intervals):
            where = f"hours.{name}[{index}]"
            if not _is_list(pair) or len(pair) != 2:
                raise CalendarError(f'{where} must be a [start, end] pair, e.g. ["09:00", "17:00"]')
            parsed.append(
                (_parse_time(pair[0], where, end=False), _parse_time(pair[1], where, end=True))
            )
        hours[DAY_NAMES.index(name)] = tuple(parsed)
    return hours


def _parse_time(raw: Any, where: str, *, end: bool) -> time:
    match = _TIME.fullmatch(raw) if isinstance(raw, str) else None
    hour, minute = (int(match[1]), int(match[2])) if match else (-1, -1)
    if end and (hour, minute) == (24, 0):
        return MIDNIGHT
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        hint = " (24:00 may end an interval, not start one)" if raw == "24:00" else ""
        raise CalendarError(
            f"{where}: {raw!r} is not a time of day; write HH:MM, e.g. '09:00'{hint}"
        )
    return time(hour, minute)


def _parse_holidays(raw: Any) -> frozenset[date]:
    if not _is_list(raw):
        raise CalendarError('holidays must be a list of dates, e.g. ["2026-12-25"]')
    holidays: set[date] = set()
    for index, text in enumerate(raw):
        try:
            if not (isinstance(text, str) and _DATE.fullmatch(text)):
                raise ValueError(text)
            holidays.add(date.fromisoformat(text))
        except ValueError:
            raise CalendarError(f"holidays[{index}]: {text!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(holidays)


def _checked_hours(hours: Mapping[int, Sequence[Interval]]) -> dict[int, tuple[Interval, ...]]:
    """Hours by weekday, each day's intervals sorted; closed days dropped; errors named."""
    checked: dict[int, tuple[Interval, ...]] = {}
    for day, intervals in hours.items():
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise CalendarError(f"weekday {day!r} is not 0 (Monday) .. 6 (Sunday)")
        ordered = sorted(
            (_checked_interval(DAY_NAMES[day], pair) for pair in intervals), key=_minutes
        )
        for before, after in pairwise(ordered):
            if _minutes(after)[0] < _minutes(before)[1]:
                raise CalendarError(f"{DAY_NAMES[day]}: {_text(before)} overlaps {_text(after)}")
        if ordered:
            checked[day] = tuple(ordered)
    return dict(sorted(checked.items()))


def _checked_interval(day_name: str, pair: Sequence[time]) -> Interval:
    if len(pair) != 2 or not all(isinstance(t, time) and not isinstance(t, datetime) for t in pair):
        raise CalendarError(f"{day_name}: {pair!r} is not a (start, end) pair of times")
    interval = (pair[0], pair[1])
    for wall in interval:
        if wall.tzinfo is not None or wall.second or wall.microsecond:
            raise CalendarError(f"{day_name}: {wall} must be a local time in whole minutes")
    start, end = _minutes(interval)
    if end <= start:
        raise CalendarError(f"{day_name}: {_text(interval)} ends before it starts")
    return interval


def _checked_holidays(holidays: frozenset[date]) -> frozenset[date]:
    for holiday in holidays:
        if isinstance(holiday, datetime) or not isinstance(holiday, date):
            raise CalendarError(f"holiday {holiday!r} is not a date")
    return frozenset(holidays)


def _minutes(interval: Interval) -> tuple[int, int]:
    """Start and end as minutes of the day; an end of 00:00 is 1440 (24:00)."""
    start, end = interval
    return start.hour * 60 + start.minute, (end.hour * 60 + end.minute) or 24 * 60


def _hhmm(wall: time, *, end: bool = False) -> str:
    return "24:00" if end and wall == MIDNIGHT else f"{wall.hour:02d}:{wall.minute:02d}"


def _text(interval: Interval) -> str:
    return f"{_hhmm(interval[0])}-{_hhmm(interval[1], end=True)}"


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CalendarError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'"
        ) from None


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {instant!r}")


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant the zone's offset changes between `before` (old offset) and `after`.

    A bisection over whole seconds (transitions fall on them): a dozen steps for an hour's
    gap, and gaps are rare boundaries, so this costs nothing in practice.
    """
    new_offset = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
