"""HTTP handlers of the notifier: parse the request, call the service, serialize the answer."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from services.notifier.keys import INBOUND_SERVICE, MESSAGE_SERVICE
from services.notifier.models import (
    MAX_BATCH_BYTES,
    MessageBatchIn,
    MessageIn,
    MessageQuery,
    OutboxQuery,
    SandboxInbound,
    StatusCallback,
    UserDeletionQuery,
    message_out,
)
from services.notifier.settings import NotifierSettings
from shared.errors import DomainError, NotFound
from shared.web.auth import principal, public
from shared.web.keys import SETTINGS
from shared.web.problems import problem_body
from shared.web.validation import parse_body, parse_query, read_form

log = logging.getLogger(__name__)

SMS_WEBHOOK = "/webhooks/twilio/sms"
STATUS_WEBHOOK = "/webhooks/twilio/status"


def _settings(request: web.Request) -> NotifierSettings:
    settings = request.app[SETTINGS]
    assert isinstance(settings, NotifierSettings)
    return settings


def public_url(request: web.Request, raw_path: str | None = None) -> str:
    """The URL Twilio used for this request: PUBLIC_BASE_URL + path behind a proxy."""
    path = raw_path if raw_path is not None else request.raw_path
    base = _settings(request).public_base_url
    if base:
        return base.rstrip("/") + path
    return f"{request.scheme}://{request.host}{path}"


def twiml(reply: str | None) -> web.Response:
    """A TwiML answer with one message, or an empty one."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return web.Response(text=str(response.to_xml()), content_type="text/xml")


async def create_message(request: web.Request) -> web.Response:
    """Queue an SMS; a repeated Idempotency-Key returns the stored message."""
    data = await parse_body(request, MessageIn)
    caller = principal(request).subject
    doc, created = await request.app[MESSAGE_SERVICE].create(
        caller, request.headers.get("Idempotency-Key"), data
    )
    return web.json_response(message_out(doc), status=201 if created else 200)


async def create_messages(request: web.Request) -> web.Response:
    """Queue up to 100 SMS in one call, each under its own idempotency key; one result each."""
    data = await parse_body(request, MessageBatchIn, max_bytes=MAX_BATCH_BYTES)
    caller = principal(request).subject
    results = await request.app[MESSAGE_SERVICE].create_many(
        caller, [(item.idempotency_key, item.message()) for item in data.items]
    )
    items = []
    for result in results:
        item: dict[str, object] = {
            "idempotency_key": result.idempotency_key,
            "status": result.status,
        }
        if result.message is not None:
            item["message"] = message_out(result.message)
        if result.error is not None:
            error = result.error
            item["problem"] = problem_body(
                error.status, title=error.title, detail=error.detail, slug=error.slug
            )
        items.append(item)
    return web.json_response({"items": items})


async def get_message(request: web.Request) -> web.Response:
    """The delivery state of one message."""
    doc = await request.app[MESSAGE_SERVICE].get(request.match_info["message_id"])
    return web.json_response(message_out(doc))


async def list_messages(request: web.Request) -> web.Response:
    """Recent messages, filtered by user and status, for operators."""
    query = parse_query(request, MessageQuery)
    docs = await request.app[MESSAGE_SERVICE].messages.recent(
        user_id=query.user_id, status=query.status, limit=query.limit
    )
    return web.json_response({"items": [message_out(d) for d in docs]})


def _require_sandbox(request: web.Request) -> None:
    if _settings(request).effective_transport != "sandbox":
        raise NotFound("the sandbox is available only with SMS_TRANSPORT=sandbox")


async def sandbox_outbox(request: web.Request) -> web.Response:
    """What the sandbox transport would have sent, newest first."""
    _require_sandbox(request)
    query = parse_query(request, OutboxQuery)
    docs = await request.app[MESSAGE_SERVICE].messages.outbox(to=query.to, limit=query.limit)
    return web.json_response({"items": [message_out(d) for d in docs]})


async def sandbox_inbound(request: web.Request) -> web.Response:
    """Inject a reply as the user would send it, signed and handled like a Twilio webhook."""
    _require_sandbox(request)
    data = await parse_body(request, SandboxInbound)
    settings = _settings(request)
    params = {
        "MessageSid": data.message_sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": data.from_,
        "To": settings.sandbox_number,
        "Body": data.text,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    service = request.app[INBOUND_SERVICE]
    url = public_url(request, SMS_WEBHOOK)
    result = await service.receive(url, params, service.sign(url, params))
    return web.json_response({"reply": result.reply, "message_sid": params["MessageSid"]})


async def delete_user(request: web.Request) -> web.Response:
    """Delete a user's messages and texts, and their phone's from before the account (account
    deletion); opt-outs are kept."""
    query = parse_query(request, UserDeletionQuery)
    user_id = request.match_info["user_id"]
    await request.app[MESSAGE_SERVICE].delete_user(user_id, query.phone)
    await request.app[INBOUND_SERVICE].delete_user(user_id, query.phone)
    return web.Response(status=204)


async def _form(request: web.Request) -> dict[str, str]:
    # Twilio signs the URL and the sorted form parameters, so the body is parsed first (strictly:
    # 400/413/415, nothing stored) and the signature is checked over what was parsed.
    try:
        return await read_form(request)
    except DomainError as exc:
        log.warning("refused a webhook body: %s", exc.detail)
        raise


@public
async def sms_webhook(request: web.Request) -> web.Response:
    """Twilio's incoming-message webhook (signature-checked); answers with TwiML."""
    params = await _form(request)
    result = await request.app[INBOUND_SERVICE].receive(
        public_url(request), params, request.headers.get("X-Twilio-Signature")
    )
    return twiml(result.reply)


@public
async def status_webhook(request: web.Request) -> web.Response:
    """Twilio's message status callback (signature-checked)."""
    params = await _form(request)
    event = request.app[INBOUND_SERVICE].verified(
        public_url(request), params, request.headers.get("X-Twilio-Signature"), StatusCallback
    )
    await request.app[MESSAGE_SERVICE].apply_callback(request.query.get("message_id"), event)
    return twiml(None)
