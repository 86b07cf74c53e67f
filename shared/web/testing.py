"""Test-mode endpoints: move a service's controllable clock from another process."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.clock import ControllableClock, parse_instant
from shared.errors import ValidationFailed
from shared.web.keys import CLOCK
from shared.web.validation import parse_body


class ClockChange(BaseModel):
    """Set the clock to ``now`` or move it by ``advance_seconds``; ``frozen`` stops it there."""

    model_config = ConfigDict(extra="forbid")

    now: str | None = None
    advance_seconds: float | None = Field(default=None, ge=-10 * 365 * 86400, le=10 * 365 * 86400)
    frozen: bool | None = None


async def get_clock(request: web.Request) -> web.Response:
    """The service's current time."""
    clock = request.app[CLOCK]
    assert isinstance(clock, ControllableClock)
    return web.json_response({"now": clock.now().isoformat(), "frozen": clock.frozen})


async def put_clock(request: web.Request) -> web.Response:
    """Change the service's controllable clock."""
    change = await parse_body(request, ClockChange)
    clock = request.app[CLOCK]
    assert isinstance(clock, ControllableClock)
    if change.now is not None:
        try:
            when = parse_instant(change.now)
        except ValueError as exc:
            raise ValidationFailed(errors=[{"field": "now", "message": str(exc)}]) from None
        clock.set(when, frozen=bool(change.frozen))
    elif change.frozen is not None:
        clock.set(clock.now(), frozen=change.frozen)
    if change.advance_seconds is not None:
        clock.advance(timedelta(seconds=change.advance_seconds))
    return await get_clock(request)


def setup_test_clock(app: web.Application) -> None:
    """Mount ``/internal/v1/test/clock`` (only ever called in test mode)."""
    app.router.add_get("/internal/v1/test/clock", get_clock)
    app.router.add_put("/internal/v1/test/clock", put_clock)
