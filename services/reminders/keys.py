"""Typed application keys of the reminders service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shared.http import ServiceClient
from shared.web.idempotency import IdempotencyStore

if TYPE_CHECKING:
    from services.reminders.jobs import JobRunner
    from services.reminders.repository import RemindersRepository
    from services.reminders.service import RemindersService

CONTACTS_CLIENT: web.AppKey[ServiceClient] = web.AppKey("contacts_client", ServiceClient)
NOTIFIER_CLIENT: web.AppKey[ServiceClient] = web.AppKey("notifier_client", ServiceClient)
REPOSITORY: web.AppKey[RemindersRepository] = web.AppKey("reminders_repository")
SERVICE: web.AppKey[RemindersService] = web.AppKey("reminders_service")
JOBS: web.AppKey[JobRunner] = web.AppKey("reminders_jobs")
IDEMPOTENCY: web.AppKey[IdempotencyStore] = web.AppKey("reminders_idempotency", IdempotencyStore)
