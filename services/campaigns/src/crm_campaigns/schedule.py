"""When a step may go out: quiet hours in the contact's zone and rolling frequency caps.

Pure functions on aware datetimes; results are in UTC. Quiet hours are computed on local
dates and wall-clock times, then converted, so they hold across daylight-saving changes: a
window's end that does not exist that day (the spring gap) means the first instant after the
gap; one that happens twice (the autumn fold) means its first occurrence, unless that is
already past, then its second. A window lasts until its end on the wall clock even when a
clock falling back leaves it for a while before (01:30-02:30 in New York on 1 November: a
step due at 01:45 EDT waits for 02:30 EST, not for 01:00 EST).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_campaigns.domain import QuietHours


def defer_for_quiet_hours(due: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime:
    """`due` if its local time in `zone` is outside the quiet window, else the window's end."""
    _require_aware(due, "due")
    if quiet is None or quiet.start == quiet.end:
        return due
    local = due.astimezone(zone)
    end_day = _quiet_end_day(local.date(), local.time(), quiet)
    if end_day is None:
        return due
    return max(_instant(end_day, quiet.end, zone, not_before=due), due)


def zone_of(name: str | None, fallback: str) -> ZoneInfo:
    """The zone `name` names if it is a valid IANA name, else `fallback`'s, else UTC."""
    for candidate in (name, fallback):
        zone = _valid_zone(candidate)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def cap_slot(
    sent: Sequence[datetime], *, at: datetime, max_sends: int, window: timedelta
) -> datetime | None:
    """None if a send at `at` keeps within `max_sends` per rolling `window`, else the earliest
    moment one does.

    The sends counted at `at` are those in (at - window, at]; sends after `at` are not counted.
    """
    if max_sends < 1:
        raise ValueError(f"max_sends must be at least 1, not {max_sends}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, not {window}")
    _require_aware(at, "at")
    recent = sorted(s for s in sent if at - window < s <= at)
    if len(recent) < max_sends:
        return None
    # Allowed once all but max_sends - 1 of them have aged out: at the moment the last of
    # those that must go leaves the window (the window is open at its start).
    must_age_out = len(recent) - max_sends + 1
    return (recent[must_age_out - 1] + window).astimezone(UTC)


def _quiet_end_day(day: date, wall: time, quiet: QuietHours) -> date | None:
    """The local date on which the quiet window holding `wall` on `day` ends (None: outside)."""
    if quiet.start < quiet.end:
        return day if quiet.start <= wall < quiet.end else None
    if wall >= quiet.start:
        return day + timedelta(days=1)
    if wall < quiet.end:
        return day
    return None


def _instant(day: date, wall: time, zone: ZoneInfo, *, not_before: datetime) -> datetime:
    """The UTC instant of wall-clock `wall` on local `day`: the first after the gap if it does
    not exist, its first occurrence if it happens twice (its second if the first is before
    `not_before`, as when the window began in the fold's repeated hour)."""
    local = datetime.combine(day, wall)
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:
        return first if first >= not_before else second
    # In a gap fold=0 reads the wall time with the old offset, fold=1 with the new one, so
    # the new offset's reading comes first; the gap's end lies between them.
    return _transition(zone, second, first)


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant the zone's offset changes between `before` (old offset) and `after`.

    A bisection over whole seconds (transitions fall on them): a dozen steps for an hour.
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


def _valid_zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    # A directory name ("Europe") raises IsADirectoryError, a path or a non-zone file
    # ValueError, an unknown name ZoneInfoNotFoundError.
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {instant!r}")
