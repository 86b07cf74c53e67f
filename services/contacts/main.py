"""App factory of the contacts service, used by production and tests alike."""

from __future__ import annotations

from aiohttp import web

from services.contacts.settings import ContactsSettings
from shared.app import create_base_app
from shared.clock import Clock


def create_app(settings: ContactsSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the contacts application."""
    app = create_base_app(settings, clock=clock)
    return app
