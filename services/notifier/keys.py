"""Typed application keys of the notifier service."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from services.notifier.service import InboundService, MessageService
    from services.notifier.transport import SmsTransport
    from services.notifier.worker import SendWorker
    from shared.http import ServiceClient

MESSAGE_SERVICE: web.AppKey[MessageService] = web.AppKey("message_service")
INBOUND_SERVICE: web.AppKey[InboundService] = web.AppKey("inbound_service")
TRANSPORT: web.AppKey[SmsTransport] = web.AppKey("transport")
CONTACTS_CLIENT: web.AppKey[ServiceClient] = web.AppKey("contacts_client")
REMINDERS_CLIENT: web.AppKey[ServiceClient] = web.AppKey("reminders_client")
WORKER: web.AppKey[SendWorker] = web.AppKey("send_worker")
WORKER_TASKS: web.AppKey[list[asyncio.Task[None]]] = web.AppKey("worker_tasks", list)
