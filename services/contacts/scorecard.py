"""The scorecard of a period: its bounds in the user's calendar, and its numbers from the history.

Pure functions: the service reads the period's interactions and referrals (each query bounded
by the period and served by an index) and hands the documents here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.contacts.models import LedgerEntry, Money, Period, Scorecard, StatsQuery
from shared.clock import EARLIEST, LATEST
from shared.errors import ValidationFailed
from shared.mongo import Document

# Long enough for a calendar year (366 days) and a bit; a wider scorecard belongs in an export.
MAX_SPAN = timedelta(days=400)


@dataclass(frozen=True)
class Window:
    """A half-open span of time [start, end) and the calendar period it is, if any."""

    start: datetime
    end: datetime
    period: Period | None
    time_zone: str


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", errors=[{"field": name, "message": message}])


def user_zone(name: str | None) -> tuple[ZoneInfo, str]:
    """The user's zone (UTC when the stored name is missing or unknown) and its name."""
    try:
        return ZoneInfo(name or "UTC"), name or "UTC"
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), "UTC"


def _first_day(today: date, period: Period, offset: int) -> tuple[date, date]:
    """The first day of the period containing ``today`` moved by ``offset``, and of the next."""
    if period == "week":  # ISO weeks start on Monday
        start = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
        return start, start + timedelta(weeks=1)
    months = 1 if period == "month" else 3
    index = (today.year * 12 + today.month - 1) // months + offset
    start_month = index * months
    end_month = start_month + months
    return (
        date(start_month // 12, start_month % 12 + 1, 1),
        date(end_month // 12, end_month % 12 + 1, 1),
    )


def window(query: StatsQuery, now: datetime, time_zone: str | None) -> Window:
    """The span a stats query asks for; a 422 problem when it is inconsistent or out of range.

    ``from``/``to`` are taken as given (aware instants); a ``period`` is the current (or, with a
    negative ``offset``, an earlier) calendar week, month or quarter in the user's time zone,
    from local midnight to local midnight, so a DST change makes it an hour shorter or longer.
    Without either, the current month.
    """
    zone, zone_name = user_zone(time_zone)
    fields = query.model_fields_set
    explicit = query.from_ is not None or query.to is not None
    if explicit:
        if query.period is not None or "offset" in fields:
            name = "period" if query.period is not None else "offset"
            raise _invalid(name, "give either from and to, or a period (with an offset)")
        if query.from_ is None or query.to is None:
            raise _invalid("from" if query.from_ is None else "to", "from and to go together")
        start, end = query.from_.astimezone(UTC), query.to.astimezone(UTC)
        if start >= end:
            raise _invalid("to", "must be after from")
        if end - start > MAX_SPAN:
            raise _invalid("to", f"the span may be at most {MAX_SPAN.days} days")
        return Window(start, end, None, zone_name)
    if query.period is None and "offset" in fields:
        raise _invalid("offset", "only goes with a period")
    period: Period = query.period or "month"
    first, following = _first_day(now.astimezone(zone).date(), period, query.offset)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(following, time(0), tzinfo=zone).astimezone(UTC)
    if start < EARLIEST or end > LATEST:
        raise _invalid("offset", "the period would start before 1900")
    return Window(start, end, period, zone_name)


@dataclass
class _Tally:
    one_to_ones: int = 0
    given: int = 0
    received: int = 0
    money: dict[str, dict[str, Decimal]] = field(
        default_factory=lambda: {"given": {}, "received": {}}
    )


def _add(sums: dict[str, Decimal], currency: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    # Decimal of the shortest repr, so 0.1 + 0.2 sums to 0.3 and not 0.30000000000000004.
    sums[currency] = sums.get(currency, Decimal(0)) + Decimal(repr(value))


def _money(sums: dict[str, dict[str, Decimal]]) -> Money:
    return Money(
        given={k: float(v) for k, v in sorted(sums["given"].items())},
        received={k: float(v) for k, v in sorted(sums["received"].items())},
    )


def build(
    span: Window,
    interactions: Iterable[Document],
    created: Iterable[Document],
    won: Iterable[Document],
    contacts: dict[str, Document],
) -> Scorecard:
    """The scorecard of ``span`` from the interactions that occurred in it, the referrals
    created in it, the referrals won in it, and the contacts they name (by id)."""
    by_kind: Counter[str] = Counter()
    tallies: dict[str, _Tally] = {}
    total = _Tally()
    for item in interactions:
        by_kind[item["kind"]] += 1
        if item["kind"] == "one_to_one":
            total.one_to_ones += 1
            tallies.setdefault(item["contact_id"], _Tally()).one_to_ones += 1
    for ref in created:
        tally = tallies.setdefault(ref["contact_id"], _Tally())
        if ref["direction"] == "given":
            total.given += 1
            tally.given += 1
        else:
            total.received += 1
            tally.received += 1
    for ref in won:
        currency, direction = ref.get("currency"), ref["direction"]
        if not currency:
            continue
        tally = tallies.setdefault(ref["contact_id"], _Tally())
        _add(total.money[direction], currency, ref.get("value"))
        _add(tally.money[direction], currency, ref.get("value"))
    ledger = []
    for contact_id, tally in tallies.items():
        contact = contacts.get(contact_id) or {}
        ledger.append(
            LedgerEntry(
                contact_id=contact_id,
                name=contact.get("name") or "",
                deleted=bool(contact.get("deleted")) or not contact,
                one_to_ones=tally.one_to_ones,
                referrals_given=tally.given,
                referrals_received=tally.received,
                closed_business=_money(tally.money),
            )
        )
    ledger.sort(
        key=lambda e: (
            -(e.referrals_given + e.referrals_received + e.one_to_ones),
            e.name.casefold(),
            e.contact_id,
        )
    )
    return Scorecard(
        from_=span.start,
        to=span.end,
        period=span.period,
        time_zone=span.time_zone,
        one_to_ones=total.one_to_ones,
        interactions_by_kind=dict(sorted(by_kind.items())),
        referrals_given=total.given,
        referrals_received=total.received,
        closed_business=_money(total.money),
        ledger=ledger,
    )
