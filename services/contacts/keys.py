"""Typed application keys of the contacts service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shared.http import ServiceClient
from shared.web.idempotency import IdempotencyStore

if TYPE_CHECKING:
    from services.contacts.otp import AuthMetrics, AuthService
    from services.contacts.service import ContactsService

CONTACTS_SERVICE: web.AppKey[ContactsService] = web.AppKey("contacts_service")
AUTH_SERVICE: web.AppKey[AuthService] = web.AppKey("auth_service")
AUTH_METRICS: web.AppKey[AuthMetrics] = web.AppKey("auth_metrics")
IDEMPOTENCY: web.AppKey[IdempotencyStore] = web.AppKey("idempotency", IdempotencyStore)
NOTIFIER: web.AppKey[ServiceClient] = web.AppKey("notifier_client", ServiceClient)
REMINDERS: web.AppKey[ServiceClient] = web.AppKey("reminders_client", ServiceClient)
