"""The notifier's URL map."""

from __future__ import annotations

from aiohttp import web

from services.notifier import handlers
from services.notifier.openapi import openapi_json


def setup_routes(app: web.Application) -> None:
    """Mount the internal API and the Twilio webhooks."""
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_post("/internal/v1/messages", handlers.create_message)
    app.router.add_post("/internal/v1/messages:batch", handlers.create_messages)
    app.router.add_get("/internal/v1/messages", handlers.list_messages)
    app.router.add_get("/internal/v1/messages/{message_id}", handlers.get_message)
    app.router.add_get("/internal/v1/sandbox/outbox", handlers.sandbox_outbox)
    app.router.add_post("/internal/v1/sandbox/inbound", handlers.sandbox_inbound)
    app.router.add_delete("/internal/v1/users/{user_id}", handlers.delete_user)
    app.router.add_post(handlers.SMS_WEBHOOK, handlers.sms_webhook)
    app.router.add_post(handlers.STATUS_WEBHOOK, handlers.status_webhook)
