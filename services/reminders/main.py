"""App factory of the reminders service, used by production and tests alike."""

from __future__ import annotations

from aiohttp import web

from services.reminders.settings import RemindersSettings
from shared.app import create_base_app
from shared.clock import Clock


def create_app(settings: RemindersSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the reminders application."""
    app = create_base_app(settings, clock=clock)
    return app
