"""Time math for nudges: cadences, send windows, quiet hours and DST, all pure functions.

Local wall times are turned into instants with ``zoneinfo``. A local time that does not exist
(the spring-forward gap) moves forward by the size of the gap; an ambiguous one (the autumn
fold) resolves to its first occurrence, so a window fires exactly once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DAYS = (0, 1, 2, 3, 4, 5, 6)
# The range of every cadence interval, in days: operator tiers, user overrides, computed maxima.
MIN_CADENCE_DAYS = 1.0
MAX_CADENCE_DAYS = 3650.0


def parse_hhmm(text: str) -> time:
    """Parse ``HH:MM`` (24 h)."""
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes))


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, falling back to UTC for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def valid_zone(name: str) -> bool:
    """Whether ``name`` is a known IANA time zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``tz`` (gap: forward, fold: first)."""
    # fold=0 maps a time inside a gap with the offset from before the transition, which lands
    # after the gap by exactly its size (02:30 -> 03:30); inside a fold it picks the earlier one.
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Whether wall time ``local`` is inside quiet hours ``[start, end)`` (may wrap midnight)."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


@dataclass(frozen=True, slots=True)
class Window:
    """When a user may be nudged: digest time, weekdays (0 = Monday) and quiet hours."""

    time_zone: str = "UTC"
    digest_time: str = "09:00"
    days: tuple[int, ...] = DEFAULT_DAYS
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"

    def send_time(self) -> time:
        """The wall time of the digest, moved to the end of quiet hours if it falls inside."""
        at = parse_hhmm(self.digest_time)
        start, end = parse_hhmm(self.quiet_start), parse_hhmm(self.quiet_end)
        return end if in_quiet_hours(at, start, end) else at

    def key(self, send_at: datetime) -> str:
        """A stable name for the window that ``send_at`` opens: local date and wall time."""
        local = send_at.astimezone(zone(self.time_zone))
        return f"{local.date().isoformat()}T{self.send_time().strftime('%H%M')}"

    def closes_at(self, send_at: datetime) -> datetime:
        """When the window opened at ``send_at`` ends: the next start of quiet hours."""
        tz = zone(self.time_zone)
        local = send_at.astimezone(tz)
        start = parse_hhmm(self.quiet_start)
        day = local.date()
        for offset in range(3):
            candidate = local_instant(day + timedelta(days=offset), start, tz)
            if candidate > send_at:
                return candidate
        return send_at + timedelta(hours=12)

    def is_quiet(self, instant: datetime) -> bool:
        """Whether ``instant`` falls inside the user's quiet hours."""
        local = instant.astimezone(zone(self.time_zone)).time()
        return in_quiet_hours(local, parse_hhmm(self.quiet_start), parse_hhmm(self.quiet_end))


def next_window(after: datetime, window: Window, *, inclusive: bool = False) -> datetime:
    """The first send instant strictly after ``after`` (or at it, if ``inclusive``)."""
    tz = zone(window.time_zone)
    at = window.send_time()
    start_day = after.astimezone(tz).date() - timedelta(days=1)
    days = set(window.days) or set(DEFAULT_DAYS)
    for offset in range(0, 10):
        day = start_day + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        candidate = local_instant(day, at, tz)
        if candidate > after or (inclusive and candidate == after):
            return candidate
    raise ValueError("no send day in the window")  # unreachable: days is never empty


def window_for_due(now: datetime, window: Window) -> datetime:
    """Where a user's next digest goes when something becomes due at ``now``."""
    return next_window(now, window, inclusive=True)


def cadence_due(base: datetime, ideal_days: float, max_days: float) -> tuple[datetime, datetime]:
    """When a contact last touched at ``base`` becomes due, and when it is escalated.

    Both intervals are clamped to ``MIN_CADENCE_DAYS``..``MAX_CADENCE_DAYS``: they are products
    of a contact's cadence, a user's override and an operator tier's max/ideal ratio, so each
    factor being in range does not keep the product (or a policy stored before the bounds)
    from overflowing a ``timedelta``.
    """
    ideal = _cadence_days(ideal_days)
    return base + timedelta(days=ideal), base + timedelta(days=max(_cadence_days(max_days), ideal))


def _cadence_days(days: float) -> float:
    if math.isnan(days):
        return MIN_CADENCE_DAYS
    return min(max(days, MIN_CADENCE_DAYS), MAX_CADENCE_DAYS)


def next_birthday(birthday: str, after: datetime, tz_name: str) -> date | None:
    """The next date (in the user's zone) of a ``MM-DD`` or ``YYYY-MM-DD`` birthday after today."""
    parts = birthday.split("-")
    try:
        month, day = int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError):
        return None
    today = after.astimezone(zone(tz_name)).date()
    for year in (today.year, today.year + 1, today.year + 2):
        # 29 February is celebrated on 28 February in years without it.
        for d in (day, day - 1):
            try:
                candidate = date(year, month, d)
            except ValueError:
                continue
            if candidate >= today:
                return candidate
            break
    return None


def parse_duration(text: str) -> timedelta | None:
    """Parse ``2w``, ``3d``, ``1m``, ``12h``, ``2 weeks``, ``tomorrow`` into a duration."""
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    if cleaned.replace(" ", "") in ("tomorrow", "tmrw", "tmr"):
        return timedelta(days=1)
    if cleaned.replace(" ", "") in ("nextweek", "week", "aweek"):
        return timedelta(weeks=1)
    if cleaned.replace(" ", "") in ("nextmonth", "month", "amonth"):
        return timedelta(days=30)
    match = re.fullmatch(r"(\d{1,3})\s*([a-z]*)", cleaned)
    if match is None:
        return None
    count, unit = int(match.group(1)), match.group(2)
    if count <= 0 or count > 365:
        return None
    units = {
        "h": timedelta(hours=1),
        "d": timedelta(days=1),
        "w": timedelta(weeks=1),
        "m": timedelta(days=30),
        "mo": timedelta(days=30),
    }
    for prefix, size in (
        ("hour", units["h"]),
        ("hr", units["h"]),
        ("day", units["d"]),
        ("week", units["w"]),
        ("wk", units["w"]),
        ("month", units["m"]),
        ("mon", units["m"]),
    ):
        if unit.startswith(prefix):
            return size * count
    if unit in units:
        return units[unit] * count
    if unit == "":
        return timedelta(days=count)
    return None
