"""App factory of the contacts service, used by production and tests alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web
from pymongo.errors import PyMongoError

from services.contacts.keys import (
    AUTH_METRICS,
    AUTH_SERVICE,
    CONTACTS_SERVICE,
    IDEMPOTENCY,
    NOTIFIER,
    REMINDERS,
)
from services.contacts.openapi import openapi_json
from services.contacts.otp import AuthMetrics, AuthService
from services.contacts.repository import (
    IDEMPOTENCY as IDEMPOTENCY_COLLECTION,
)
from services.contacts.repository import (
    AuthRepository,
    ChangeRepository,
    ContactRepository,
    IdempotencyRepository,
    InteractionRepository,
    ReferralRepository,
    StageRepository,
    UserRepository,
    create_indexes,
)
from services.contacts.routes import setup_routes
from services.contacts.service import ContactsService
from services.contacts.settings import ContactsSettings
from shared.app import create_base_app
from shared.clock import Clock
from shared.http import ServiceClient
from shared.tasks import cancel_and_wait
from shared.web.idempotency import IdempotencyStore
from shared.web.keys import CLOCK, DB, METRICS

log = logging.getLogger(__name__)

_CLEANUP_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("cleanup_task", asyncio.Task)


def _client(settings: ContactsSettings, clock: Clock, audience: str, url: str) -> ServiceClient:
    return ServiceClient(
        base_url=url,
        caller="contacts",
        audience=audience,
        secret=settings.internal_auth_secret.get_secret_value(),
        clock=clock,
        timeout_s=settings.http_timeout_s,
    )


async def _cleanup_once(app: web.Application) -> None:
    settings = app[CONTACTS_SERVICE].settings
    removed = await app[AUTH_SERVICE].purge()
    removed += await app[IDEMPOTENCY].purge()
    cutoff = app[CONTACTS_SERVICE].wall_now() - timedelta(days=settings.change_retention_days)
    removed += await app[CONTACTS_SERVICE].purge_changes(cutoff)
    if removed:
        log.info("cleanup removed %d expired records", removed)


async def _cleanup_loop(app: web.Application, interval_s: float) -> None:
    # No TTL indexes on FerretDB: expired codes, tokens and idempotency records go here.
    while True:
        await asyncio.sleep(interval_s)
        try:
            await _cleanup_once(app)
        except PyMongoError as exc:
            log.warning("cleanup failed: %s", exc)


def _services_ctx(
    settings: ContactsSettings,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context that builds upstream clients, repositories and domain services."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        clock = app[CLOCK]
        db = app[DB]
        notifier = _client(settings, clock, "notifier", settings.notifier_url)
        reminders = _client(settings, clock, "reminders", settings.reminders_url)
        await notifier.start()
        await reminders.start()
        app[NOTIFIER] = notifier
        app[REMINDERS] = reminders
        users = UserRepository(db)
        changes = ChangeRepository(db)
        app[CONTACTS_SERVICE] = ContactsService(
            settings=settings,
            clock=clock,
            users=users,
            contacts=ContactRepository(db),
            interactions=InteractionRepository(db),
            referrals=ReferralRepository(db),
            stages=StageRepository(db),
            changes=changes,
            idempotency=IdempotencyRepository(db),
            reminders=reminders,
            notifier=notifier,
        )
        app[AUTH_SERVICE] = AuthService(
            settings=settings,
            clock=clock,
            users=users,
            auth=AuthRepository(db),
            changes=changes,
            notifier=notifier,
            metrics=app[AUTH_METRICS],
        )
        app[IDEMPOTENCY] = IdempotencyStore(
            db[IDEMPOTENCY_COLLECTION], clock, timedelta(seconds=settings.idempotency_ttl_s)
        )
        app[_CLEANUP_TASK] = asyncio.create_task(
            _cleanup_loop(app, settings.cleanup_interval_s), name="contacts-cleanup"
        )
        try:
            yield
        finally:
            await cancel_and_wait([app[_CLEANUP_TASK]])
            await notifier.close()
            await reminders.close()

    return ctx


def create_app(settings: ContactsSettings, *, clock: Clock | None = None) -> web.Application:
    """Build the contacts application."""
    app = create_base_app(settings, clock=clock, index_hooks=(create_indexes,))
    # Metrics are registered once per app, before it starts (the registry refuses duplicates).
    app[AUTH_METRICS] = AuthMetrics(app[METRICS])
    app.cleanup_ctx.append(_services_ctx(settings))
    setup_routes(app)
    app.router.add_get("/openapi.json", openapi_json)
    return app
