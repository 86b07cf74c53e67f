"""Cadence math, windows, quiet hours and DST in several zones (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.reminders.scheduling import (
    Window,
    cadence_due,
    in_quiet_hours,
    local_instant,
    next_birthday,
    next_window,
    parse_duration,
)

NY = ZoneInfo("America/New_York")
SYD = ZoneInfo("Australia/Sydney")
LON = ZoneInfo("Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cadence_due_and_escalation() -> None:
    base = utc(2026, 1, 1, 12)
    due, maximum = cadence_due(base, 14, 28)
    assert due == utc(2026, 1, 15, 12)
    assert maximum == utc(2026, 1, 29, 12)
    # A maximum shorter than the ideal is lifted to the ideal.
    assert cadence_due(base, 30, 10) == (utc(2026, 1, 31, 12), utc(2026, 1, 31, 12))


@pytest.mark.parametrize(
    ("ideal", "maximum", "days"),
    [
        # A contact's 730 days times a tier's 1/3650 ratio, a tier ratio of 3650/5e-324 (inf).
        (730, 730 * 3650.0, (730, 3650)),
        (30, float("inf"), (30, 3650)),
        (5e-324, 1.0, (1, 1)),
        (float("nan"), float("nan"), (1, 1)),
    ],
)
def test_cadence_due_stays_within_ten_years(
    ideal: float, maximum: float, days: tuple[int, int]
) -> None:
    base = utc(2026, 1, 1, 12)
    assert cadence_due(base, ideal, maximum) == (
        base + timedelta(days=days[0]),
        base + timedelta(days=days[1]),
    )


@pytest.mark.parametrize(
    ("tz", "day", "at", "expected"),
    [
        # Spring forward: 02:30 does not exist; it moves forward by the gap to 03:30 local.
        (NY, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 30)),
        (LON, date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1, 30)),
        # Sydney springs forward on the first Sunday of October (02:00 -> 03:00).
        (SYD, date(2026, 10, 4), time(2, 30), utc(2026, 10, 3, 16, 30)),
        # Fall back: 01:30 happens twice; the first occurrence wins.
        (NY, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        (LON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),
        (SYD, date(2026, 4, 5), time(2, 30), utc(2026, 4, 4, 15, 30)),
        # Ordinary days.
        (NY, date(2026, 7, 1), time(9, 0), utc(2026, 7, 1, 13, 0)),
        (SYD, date(2026, 7, 1), time(9, 0), utc(2026, 6, 30, 23, 0)),
    ],
)
def test_local_instant_gap_and_fold(tz: ZoneInfo, day: date, at: time, expected: datetime) -> None:
    assert local_instant(day, at, tz) == expected


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/London", "Australia/Sydney"])
def test_daily_window_fires_once_per_local_day_across_dst(tz: str) -> None:
    """A whole year of daily 09:00 digests: one per local day, always at 09:00 local."""
    window = Window(time_zone=tz, digest_time="09:00")
    at = next_window(utc(2026, 1, 1), window)
    seen: set[str] = set()
    for _ in range(365):
        local = at.astimezone(ZoneInfo(tz))
        assert (local.hour, local.minute) == (9, 0)
        key = window.key(at)
        assert key not in seen
        seen.add(key)
        nxt = next_window(at, window)
        assert timedelta(hours=23) <= nxt - at <= timedelta(hours=25)
        at = nxt
    assert len(seen) == 365


@pytest.mark.parametrize(
    ("tz", "ambiguous_day"),
    [("America/New_York", date(2026, 11, 1)), ("Europe/London", date(2026, 10, 25))],
)
def test_ambiguous_digest_time_fires_once(tz: str, ambiguous_day: date) -> None:
    window = Window(time_zone=tz, digest_time="01:30", quiet_start="23:00", quiet_end="01:00")
    start = local_instant(ambiguous_day - timedelta(days=1), time(12), ZoneInfo(tz))
    first = next_window(start, window)
    second = next_window(first, window)
    assert first.astimezone(ZoneInfo(tz)).date() == ambiguous_day
    assert second.astimezone(ZoneInfo(tz)).date() == ambiguous_day + timedelta(days=1)
    # Even asking from inside the repeated hour does not produce a second send that day.
    assert next_window(first + timedelta(minutes=30), window) == second


def test_nonexistent_digest_time_moves_forward() -> None:
    window = Window(
        time_zone="America/New_York", digest_time="02:30", quiet_start="23:00", quiet_end="01:00"
    )
    at = next_window(utc(2026, 3, 7, 12), window)
    assert at == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert at.astimezone(NY).hour == 3


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 30), True),
        (time(3, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_quiet_hours_wrap_midnight(local: time, expected: bool) -> None:
    assert in_quiet_hours(local, time(21), time(8)) is expected


def test_quiet_hours_same_day_and_disabled() -> None:
    assert in_quiet_hours(time(13), time(12), time(14))
    assert not in_quiet_hours(time(15), time(12), time(14))
    assert not in_quiet_hours(time(3), time(0), time(0))


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/London", "Australia/Sydney"])
def test_digest_time_inside_quiet_hours_moves_to_their_end(tz: str) -> None:
    window = Window(time_zone=tz, digest_time="06:30")
    at = next_window(utc(2026, 6, 1), window)
    local = at.astimezone(ZoneInfo(tz))
    assert (local.hour, local.minute) == (8, 0)
    assert not window.is_quiet(at)
    assert window.is_quiet(at - timedelta(minutes=1))


def test_window_closes_at_quiet_start_in_sydney() -> None:
    window = Window(time_zone="Australia/Sydney", digest_time="09:00")
    at = next_window(utc(2026, 1, 5), window)
    closes = window.closes_at(at)
    assert closes.astimezone(SYD).time() == time(21, 0)
    assert closes.astimezone(SYD).date() == at.astimezone(SYD).date()


def test_weekdays_only() -> None:
    window = Window(time_zone="Europe/London", digest_time="09:00", days=(0, 1, 2, 3, 4))
    friday = utc(2026, 3, 6, 10)
    assert next_window(friday, window).astimezone(LON).weekday() == 0


def test_birthdays() -> None:
    now = utc(2026, 3, 2, 12)
    assert next_birthday("03-05", now, "UTC") == date(2026, 3, 5)
    assert next_birthday("1980-01-10", now, "UTC") == date(2027, 1, 10)
    assert next_birthday("02-29", now, "UTC") == date(2027, 2, 28)
    assert next_birthday("garbage", now, "UTC") is None
    # Already 3 March in Sydney while still 2 March in UTC.
    assert next_birthday("03-02", utc(2026, 3, 2, 14), "Australia/Sydney") == date(2027, 3, 2)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("2w", 14),
        ("3d", 3),
        ("1m", 30),
        ("2 weeks", 14),
        ("tomorrow", 1),
        ("10 days", 10),
        ("5", 5),
        ("1 month", 30),
        ("12h", 0.5),
    ],
)
def test_durations(text: str, days: float) -> None:
    assert parse_duration(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "soon", "0d", "999w", "2x"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None
