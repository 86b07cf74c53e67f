"""Notifier data: message input and output, delivery states, inbound replies, consent events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.clock import RANGE_TEXT, parse_instant

E164 = r"^\+[1-9]\d{6,14}$"
MAX_BODY_CHARS = 1600
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
# A batch carries at most this many messages, in a body of at most MAX_BATCH_BYTES (100 bodies
# of 1,600 characters each fit even when every character is escaped in the JSON).
MAX_BATCH_ITEMS = 100
MAX_BATCH_BYTES = 1024 * 1024

Purpose = Literal["nudge", "otp", "reply", "system"]
Status = Literal[
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "suppressed",
    "possibly_sent",
]

# Each state has a rank and the stored rank only ever rises (MongoDB ``$max``), so duplicate or
# out-of-order callbacks are harmless and every update can be a plain write by ``_id``. Among
# end states, proof of delivery outranks a failure report.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "possibly_sent": 3,
    "expired": 4,
    "suppressed": 5,
    "failed": 6,
    "undelivered": 7,
    "delivered": 8,
}
RANK_STATUS: dict[int, str] = {rank: status for status, rank in STATUS_RANK.items()}
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "expired", "suppressed"})

# Twilio's message states mapped onto ours (read/received are not outbound SMS states).
TWILIO_STATUS_MAP: dict[str, str] = {
    "accepted": "sending",
    "scheduled": "sending",
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            raise ValueError(f"must be an ISO-8601 time {RANGE_TEXT}") from None
    return value


class MessageIn(BaseModel):
    """``POST /internal/v1/messages`` body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str | None = Field(default=None, min_length=1, max_length=64)
    to: str = Field(pattern=E164)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    purpose: Purpose
    not_before: datetime | None = None
    expires_at: datetime | None = None

    _times = field_validator("not_before", "expires_at", mode="before")(_instant)


class MessageBatchItem(MessageIn):
    """One message of ``POST /internal/v1/messages:batch``, with its own idempotency key."""

    idempotency_key: str = Field(pattern=IDEMPOTENCY_KEY)

    def message(self) -> MessageIn:
        """The message without its key (what the key's fingerprint covers)."""
        return MessageIn.model_construct(**self.model_dump(exclude={"idempotency_key"}))


class MessageBatchIn(BaseModel):
    """``POST /internal/v1/messages:batch`` body: up to ``MAX_BATCH_ITEMS`` messages."""

    model_config = ConfigDict(extra="forbid")

    items: list[MessageBatchItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class MessageQuery(BaseModel):
    """``GET /internal/v1/messages`` query."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=64)
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=500)


class OutboxQuery(BaseModel):
    """``GET /internal/v1/sandbox/outbox`` query."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(default=None, pattern=E164)
    limit: int = Field(default=50, ge=1, le=500)


class UserDeletionQuery(BaseModel):
    """``DELETE /internal/v1/users/{user_id}`` query: the user's phone, whose messages from
    before the account existed (sign-in codes, answers to an unknown number) go too."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, pattern=E164)


class SandboxInbound(BaseModel):
    """``POST /internal/v1/sandbox/inbound`` body: a text as the user would send it."""

    model_config = ConfigDict(extra="forbid")

    from_: str = Field(alias="from", pattern=E164)
    text: str = Field(max_length=MAX_BODY_CHARS)
    message_sid: str | None = Field(default=None, pattern=r"^SM[0-9a-fA-F]{32}$")


# Twilio's fields, checked after the signature: a signed request with fields outside these is
# refused (422) rather than half-used. Sids are two letters and hex digits at Twilio; any short
# alphanumeric id is taken (they become document ids, so never anything else).
TWILIO_SID = r"^[A-Za-z0-9]{2,64}$"
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
ERROR_CODE = re.compile(r"[0-9]{1,9}")


def _error_code(value: Any) -> Any:
    # Only ASCII digits: ``str.isdigit`` also takes "²" and "٣", which ``int`` then refuses.
    if value == "":
        return None
    if isinstance(value, str) and not ERROR_CODE.fullmatch(value):
        raise ValueError("must be a Twilio error code (1 to 9 ASCII digits)")
    return value


class InboundSms(BaseModel):
    """The fields of Twilio's incoming-message webhook that the notifier uses."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=TWILIO_SID)
    from_: str = Field(alias="From", min_length=1, max_length=64, pattern=ONE_LINE)
    to: str = Field(default="", alias="To", max_length=64, pattern=ONE_LINE)
    body: str = Field(default="", alias="Body", max_length=MAX_BODY_CHARS)


class StatusCallback(BaseModel):
    """The fields of Twilio's message status callback that the notifier uses."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=TWILIO_SID)
    # Any word: a state Twilio adds later is ignored by the service, not refused here.
    message_status: str = Field(alias="MessageStatus", pattern=r"^[A-Za-z_-]{1,32}$")
    error_code: int | None = Field(default=None, alias="ErrorCode", ge=0)

    _code = field_validator("error_code", mode="before")(_error_code)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one transport call did: accepted (with a provider id) or an error to classify."""

    provider_sid: str | None = None
    provider_status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    http_status: int | None = None
    timed_out: bool = False
    connect_failed: bool = False

    @property
    def accepted(self) -> bool:
        """Whether the provider took the message."""
        return self.provider_sid is not None


def message_out(doc: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a stored message."""

    def iso(value: Any) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else None

    return {
        "id": doc["_id"],
        "user_id": doc.get("user_id"),
        "to": doc["to"],
        "body": doc["body"],
        "purpose": doc["purpose"],
        "not_before": iso(doc.get("not_before")),
        "expires_at": iso(doc.get("expires_at")),
        "status": doc["status"],
        "possibly_sent": bool(doc.get("possibly_sent", False)),
        "attempts": doc.get("attempts", 0),
        "error_code": doc.get("error_code"),
        "error_message": doc.get("error_message"),
        "provider_sid": doc.get("provider_sid"),
        "segments": doc["segments"],
        "encoding": doc["encoding"],
        "created_at": iso(doc["created_at"]),
        "updated_at": iso(doc["updated_at"]),
    }
