"""App factory of the reminders service, used by production and tests alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.reminders.gateways import ContactsGateway, NotifierGateway
from services.reminders.jobs import jobs_ctx
from services.reminders.keys import (
    CONTACTS_CLIENT,
    IDEMPOTENCY,
    NOTIFIER_CLIENT,
    REPOSITORY,
    SERVICE,
)
from services.reminders.repository import RemindersRepository, ensure_indexes
from services.reminders.routes import setup_routes
from services.reminders.service import RemindersService
from services.reminders.settings import RemindersSettings
from shared.app import create_base_app
from shared.auth import Role
from shared.clock import Clock
from shared.http import ServiceClient
from shared.web.auth import ROLE_LOOKUP
from shared.web.idempotency import IdempotencyStore
from shared.web.keys import CLOCK, DB


def _client(
    settings: RemindersSettings, app: web.Application, target: str, url: str
) -> ServiceClient:
    return ServiceClient(
        base_url=url,
        caller="reminders",
        audience=target,
        secret=settings.internal_auth_secret.get_secret_value(),
        clock=app[CLOCK],
        timeout_s=settings.http_timeout_s,
    )


def create_app(settings: RemindersSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the reminders application."""
    app = create_base_app(settings, clock=clock, index_hooks=(ensure_indexes,))

    async def clients_ctx(app: web.Application) -> AsyncIterator[None]:
        contacts = _client(settings, app, "contacts", settings.contacts_url)
        notifier = _client(settings, app, "notifier", settings.notifier_url)
        await contacts.start()
        await notifier.start()
        app[CONTACTS_CLIENT] = contacts
        app[NOTIFIER_CLIENT] = notifier
        try:
            yield
        finally:
            await contacts.close()
            await notifier.close()

    async def service_ctx(app: web.Application) -> AsyncIterator[None]:
        repo = RemindersRepository(app[DB])
        contacts = ContactsGateway(app[CONTACTS_CLIENT])

        async def current_role(user_id: str) -> Role | None:
            # Operator rights come from contacts on each /admin/ request (shared.web.auth):
            # a grant or a revoke there counts from the next request here.
            user = await contacts.user(user_id)
            if user is None:
                return None
            return "operator" if user.get("role") == "operator" else "networker"

        app[ROLE_LOOKUP] = current_role
        app[REPOSITORY] = repo
        # Replays of the app's touchpoint actions; records expire by timestamp (24 h).
        app[IDEMPOTENCY] = IdempotencyStore(app[DB]["idempotency"], app[CLOCK])
        app[SERVICE] = RemindersService(
            repo,
            contacts,
            NotifierGateway(app[NOTIFIER_CLIENT]),
            app[CLOCK],
            settings,
        )
        yield

    app.cleanup_ctx.append(clients_ctx)
    app.cleanup_ctx.append(service_ctx)
    app.cleanup_ctx.append(jobs_ctx)
    setup_routes(app)
    return app
