"""App factory of the notifier service, used by production and tests alike."""

from __future__ import annotations

from aiohttp import web

from services.notifier.settings import NotifierSettings
from shared.app import create_base_app
from shared.clock import Clock


def create_app(settings: NotifierSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the notifier application."""
    app = create_base_app(settings, clock=clock)
    return app
