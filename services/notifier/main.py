"""App factory of the notifier service, used by production and tests alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.notifier.keys import (
    CONTACTS_CLIENT,
    INBOUND_SERVICE,
    MESSAGE_SERVICE,
    REMINDERS_CLIENT,
    TRANSPORT,
    WORKER,
    WORKER_TASKS,
)
from services.notifier.metrics import NotifierMetrics
from services.notifier.ratelimit import KeyedLimiter, SenderLimits
from services.notifier.repository import (
    ClaimRepository,
    InboundRepository,
    MessageRepository,
    SuppressionRepository,
    create_indexes,
)
from services.notifier.routes import setup_routes
from services.notifier.service import InboundService, MessageService
from services.notifier.settings import NotifierSettings
from services.notifier.transport import SandboxTransport, SmsTransport, TwilioTransport
from services.notifier.worker import SendWorker
from shared.app import create_base_app
from shared.clock import Clock
from shared.http import ServiceClient
from shared.tasks import cancel_and_wait
from shared.web.keys import CLOCK, DB, METRICS

log = logging.getLogger(__name__)


def build_transport(settings: NotifierSettings) -> SmsTransport:
    """The configured transport: Twilio with credentials, else the sandbox."""
    if settings.effective_transport == "twilio":
        assert settings.twilio_account_sid is not None
        assert settings.twilio_auth_token is not None
        return TwilioTransport(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            base_url=settings.twilio_api_base_url,
            timeout_s=settings.send_timeout_s,
        )
    return SandboxTransport()


def create_app(
    settings: NotifierSettings,
    *,
    clock: Clock | None = None,
    transport: SmsTransport | None = None,
) -> web.Application:
    """Build the notifier application (``transport`` replaces the configured one in tests)."""
    app = create_base_app(settings, clock=clock, index_hooks=(create_indexes,))
    setup_routes(app)
    metrics = NotifierMetrics.create(app[METRICS])

    async def components_ctx(app: web.Application) -> AsyncIterator[None]:
        clock = app[CLOCK]
        secret = settings.internal_auth_secret.get_secret_value()
        clients = {
            name: ServiceClient(
                base_url=url,
                caller="notifier",
                audience=name,
                secret=secret,
                clock=clock,
                timeout_s=settings.http_timeout_s,
            )
            for name, url in (
                ("contacts", settings.contacts_url),
                ("reminders", settings.reminders_url),
            )
        }
        for client in clients.values():
            await client.start()
        app[CONTACTS_CLIENT] = clients["contacts"]
        app[REMINDERS_CLIENT] = clients["reminders"]
        sms = transport or build_transport(settings)
        if sms.name == "twilio" and not settings.public_base_url:
            log.warning(
                "PUBLIC_BASE_URL is not set: no status callbacks will be requested, and webhook "
                "signatures are checked against the URL this process sees"
            )
        app[TRANSPORT] = sms
        wake = asyncio.Event()
        messages = MessageService(
            messages=MessageRepository(app[DB]),
            suppressions=SuppressionRepository(app[DB]),
            clock=clock,
            transport_name=sms.name,
            on_queued=wake,
        )
        inbound = InboundService(
            inbound=InboundRepository(app[DB]),
            suppressions=messages.suppressions,
            messages=messages,
            contacts=clients["contacts"],
            reminders=clients["reminders"],
            clock=clock,
            auth_token=settings.webhook_auth_token(),
            program_name=settings.program_name,
            help_contact=settings.help_contact,
            reply_timeout_s=settings.reply_timeout_s,
            limiter=KeyedLimiter(settings.inbound_rate_per_minute, settings.inbound_burst),
            metrics=metrics,
        )
        app[MESSAGE_SERVICE] = messages
        app[INBOUND_SERVICE] = inbound
        app[WORKER] = SendWorker(
            settings=settings,
            messages=messages,
            inbound=inbound,
            claims=ClaimRepository(app[DB]),
            transport=sms,
            limits=SenderLimits(settings.send_rate_per_second, settings.send_burst),
            clock=clock,
            wake=wake,
            status_callback_base=(
                settings.public_base_url.rstrip("/") if settings.public_base_url else None
            ),
            metrics=metrics,
        )
        try:
            yield
        finally:
            await sms.close()
            for client in clients.values():
                await client.close()

    async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if settings.worker_enabled:
            worker = app[WORKER]
            tasks.append(asyncio.create_task(worker.run(), name="notifier-send"))
            tasks.append(asyncio.create_task(worker.run_maintenance(), name="notifier-maint"))
        app[WORKER_TASKS] = tasks
        try:
            yield
        finally:
            await cancel_and_wait(tasks)

    app.cleanup_ctx.append(components_ctx)
    app.cleanup_ctx.append(worker_ctx)
    return app
