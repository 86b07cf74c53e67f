"""The OpenAPI 3.1 description of the notifier: internal messages API, sandbox, Twilio webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from services.notifier.models import (
    InboundSms,
    MessageBatchIn,
    MessageIn,
    MessageQuery,
    OutboxQuery,
    Purpose,
    SandboxInbound,
    Status,
    StatusCallback,
    UserDeletionQuery,
)
from shared.web.auth import public
from shared.web.openapi import Operation, build_document


class MessageOut(BaseModel):
    """A stored message and its delivery state."""

    id: str
    user_id: str | None
    to: str
    body: str
    purpose: Purpose
    not_before: str | None
    expires_at: str | None
    status: Status
    possibly_sent: bool = Field(
        description="a send whose outcome Twilio never confirmed (a duplicate is possible)"
    )
    attempts: int
    error_code: str | int | None
    error_message: str | None
    provider_sid: str | None
    segments: int
    encoding: str
    created_at: str | None
    updated_at: str | None


class MessagePage(BaseModel):
    """A list of messages, newest first."""

    items: list[MessageOut]


class Problem(BaseModel):
    """An RFC 9457 problem, as a batch item's error."""

    type: str
    title: str
    status: int
    detail: str | None = None


class MessageBatchResult(BaseModel):
    """The outcome of one item: 201 stored now, 200 replayed (key seen before), 409 key reused
    with a different message (with ``problem``)."""

    idempotency_key: str
    status: int
    message: MessageOut | None = None
    problem: Problem | None = None


class MessageBatchOut(BaseModel):
    """One result per item, in the order of the request."""

    items: list[MessageBatchResult]


class SandboxReply(BaseModel):
    """What the system answered to a simulated inbound text."""

    reply: str | None
    message_sid: str


MODELS: list[type[BaseModel]] = [
    MessageIn,
    MessageOut,
    MessageBatchIn,
    MessageBatchOut,
    MessagePage,
    SandboxInbound,
    SandboxReply,
    InboundSms,
    StatusCallback,
]
QUERIES: dict[str, type[BaseModel]] = {
    "MessageQuery": MessageQuery,
    "OutboxQuery": OutboxQuery,
    "UserDeletionQuery": UserDeletionQuery,
}

OPERATIONS: list[Operation] = [
    Operation(
        "post",
        "/internal/v1/messages",
        "Queue an SMS (Idempotency-Key required; a repeat returns the stored message)",
        "MessageIn",
        "MessageOut",
        "service",
        status=201,
    ),
    Operation(
        "post",
        "/internal/v1/messages:batch",
        "Queue up to 100 SMS, each with its own idempotency_key (per item: 201 stored, 200 the "
        "stored message of a key seen before, 409 a key reused with another message); a bad "
        "item refuses the whole batch with a 422, more than 100 items or 1 MiB with 422/413",
        "MessageBatchIn",
        "MessageBatchOut",
        "service",
    ),
    Operation(
        "get",
        "/internal/v1/messages",
        "Recent messages, for operators",
        None,
        "MessagePage",
        "service",
        query="MessageQuery",
    ),
    Operation(
        "get",
        "/internal/v1/messages/{message_id}",
        "One message's delivery state",
        None,
        "MessageOut",
        "service",
    ),
    Operation(
        "get",
        "/internal/v1/sandbox/outbox",
        "Sandbox transport: what was 'sent'",
        None,
        "MessagePage",
        "service",
        query="OutboxQuery",
    ),
    Operation(
        "post",
        "/internal/v1/sandbox/inbound",
        "Sandbox: a text as the user would send it, through the signed-webhook path",
        "SandboxInbound",
        "SandboxReply",
        "service",
    ),
    Operation(
        "delete",
        "/internal/v1/users/{user_id}",
        "Delete a user's messages and texts, and those of their phone that no user owns",
        security="service",
        status=204,
        query="UserDeletionQuery",
    ),
    Operation(
        "post",
        "/webhooks/twilio/sms",
        "Twilio: an incoming SMS (answered with TwiML)",
        "InboundSms",
        security="signed",
        form=True,
    ),
    Operation(
        "post",
        "/webhooks/twilio/status",
        "Twilio: a message status callback",
        "StatusCallback",
        security="signed",
        form=True,
    ),
]


def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    return build_document("touchbase notifier", MODELS, OPERATIONS, QUERIES)


@public
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(document())
