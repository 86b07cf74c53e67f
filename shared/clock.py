"""Time as a dependency (the wall clock in production, a controllable clock in test mode) and
the one range every instant the services accept must fall in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

from pydantic import AfterValidator

# Every instant a client may send lies in [EARLIEST, LATEST). Wide enough for any real meeting,
# birthday or deadline; narrow enough that adding a cadence, a year or a time zone offset to it
# never leaves what datetime can hold (year 1 to 9999), which is what broke jobs before.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE_TEXT = "between 1900-01-01 and 2200-01-01 (UTC), with a UTC offset"


class Clock(Protocol):
    """Anything that can tell the current UTC time."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return ``datetime.now(UTC)``."""
        return datetime.now(UTC)


class ControllableClock:
    """A clock that tests can set or move; it keeps ticking in real time from the set point."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        if start is not None:
            self.set(start, frozen=frozen)

    def now(self) -> datetime:
        """Return the controlled current time."""
        if self._frozen_at is not None:
            return self._frozen_at
        return datetime.now(UTC) + self._offset

    def set(self, when: datetime, *, frozen: bool = False) -> None:
        """Jump to ``when``; if ``frozen`` the clock stays there until moved again."""
        if when.tzinfo is None:
            raise ValueError("clock time must be timezone-aware")
        when = when.astimezone(UTC)
        if frozen:
            self._frozen_at = when
        else:
            self._frozen_at = None
            self._offset = when - datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        if self._frozen_at is not None:
            self._frozen_at += delta
        else:
            self._offset += delta

    @property
    def frozen(self) -> bool:
        """Whether the clock is stopped."""
        return self._frozen_at is not None


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant that carries an offset (``Z`` allowed), within the range."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return checked_instant(value).astimezone(UTC)


def in_range(value: datetime) -> bool:
    """Whether an aware ``value`` lies in the accepted range (comparison never overflows)."""
    return EARLIEST <= value < LATEST


def checked_instant(value: datetime) -> datetime:
    """``value`` if it carries an offset and lies in the range; ValueError otherwise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be {RANGE_TEXT}")
    if not in_range(value):
        raise ValueError(f"time must be {RANGE_TEXT}")
    return value


# The type of every datetime field a model accepts from outside: aware and in range.
Instant = Annotated[datetime, AfterValidator(checked_instant)]
