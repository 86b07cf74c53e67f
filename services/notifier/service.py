"""Notifier domain rules: queueing messages, delivery state, inbound replies and consent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from twilio.request_validator import RequestValidator

from services.notifier import compliance
from services.notifier.metrics import NotifierMetrics
from services.notifier.models import (
    STATUS_RANK,
    TWILIO_STATUS_MAP,
    InboundSms,
    MessageIn,
    StatusCallback,
)
from services.notifier.ratelimit import KeyedLimiter
from services.notifier.repository import (
    InboundRepository,
    MessageRepository,
    SuppressionRepository,
)
from shared.clock import Clock
from shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    UpstreamError,
    ValidationFailed,
)
from shared.http import ServiceClient
from shared.mongo import Document
from shared.sms import count_segments
from shared.web.validation import ModelT, parse_obj

log = logging.getLogger(__name__)

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
ACK_REPLY = "Got it. We'll text you back shortly."
KEY_REUSED = "this Idempotency-Key was used with a different message"
DEFERRED_RETRY_S = 2.0
MAX_DEFERRED_TRIES = 20
# A sign-in code message keeps its text only while the code can be used: what delivery tracking
# needs (number, state, provider sid, segments, times) stays, the text (the code) goes.
SCRUBBED_BODY = "(sign-in code removed)"
# Contacts' codes live at most an hour (OTP_TTL_S); a code without an expiry is kept no longer.
CODE_MAX_AGE = timedelta(hours=1)


def scrubbed_fields(now: datetime) -> Document:
    """The fields that remove a sign-in code from its message (the fingerprint hashes it)."""
    return {"body": SCRUBBED_BODY, "fingerprint": None, "body_scrubbed_at": now}


def keeps_code_once_sent(transport: str) -> bool:
    """Whether a sent sign-in code keeps its text until it expires: only in the sandbox, whose
    outbox (``touchbase sandbox outbox``) is where developers read their codes."""
    return transport == "sandbox"


def _reuses_key(stored: Document, planned: Document) -> bool:
    # A scrubbed message has lost what its fingerprint covered, so a repeat of its key cannot be
    # told from a reuse: it is answered as a repeat (its code went out or expired already).
    if stored.get("body_scrubbed_at") is not None:
        return False
    return bool(stored.get("fingerprint") != planned["fingerprint"])


def status_fields(status: str) -> dict[str, Any]:
    """The stored field that describes ``status`` in a new message (its rank)."""
    return {"status_rank": STATUS_RANK[status]}


def _check_times(data: MessageIn, field: str) -> None:
    if data.not_before and data.expires_at and data.expires_at <= data.not_before:
        raise ValidationFailed(errors=[{"field": field, "message": "must be after not_before"}])


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one item of a batch: 201 stored, 200 replayed, or 409 with the error."""

    idempotency_key: str
    status: int
    message: Document | None
    error: DomainError | None = None


def message_id_for(caller: str, idempotency_key: str) -> str:
    """The deterministic id of the message created by ``caller`` with ``idempotency_key``."""
    digest = hashlib.sha256(f"{caller}\x00{idempotency_key}".encode()).hexdigest()
    return "msg_" + digest[:24]


class MessageService:
    """Outbound messages: stored before any send, state moved only forward."""

    def __init__(
        self,
        *,
        messages: MessageRepository,
        suppressions: SuppressionRepository,
        clock: Clock,
        transport_name: str,
        on_queued: asyncio.Event | None = None,
    ) -> None:
        self.messages = messages
        self.suppressions = suppressions
        self._clock = clock
        self._transport_name = transport_name
        self._on_queued = on_queued

    async def create(
        self, caller: str, idempotency_key: str | None, data: MessageIn
    ) -> tuple[Document, bool]:
        """Store a message (queued, or suppressed for an opted-out number); a repeat returns it."""
        if idempotency_key is None or not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ValidationFailed(
                "an Idempotency-Key header (1-200 printable characters) is required",
                [{"field": "Idempotency-Key", "message": "missing or invalid"}],
            )
        _check_times(data, "expires_at")
        suppressed = await self.suppressions.is_suppressed(data.to)
        doc = self._document(caller, idempotency_key, data, self._clock.now(), suppressed)
        stored, created = await self.messages.insert_new(doc)
        if not created and _reuses_key(stored, doc):
            raise Conflict(KEY_REUSED)
        if created and not suppressed and self._on_queued is not None:
            self._on_queued.set()
        return stored, created

    async def create_many(
        self, caller: str, items: Sequence[tuple[str, MessageIn]]
    ) -> list[BatchResult]:
        """Store a batch of messages, each under its own idempotency key, in one insert.

        Each item behaves as :meth:`create` would: a key seen before (in an earlier batch, on the
        single endpoint, or earlier in this batch) returns the stored message, or a 409 result
        when it came with a different message. Results are in the order of ``items``. A bad
        item (``expires_at`` not after ``not_before``) refuses the whole batch before any write.
        """
        for index, (_, data) in enumerate(items):
            _check_times(data, f"items.{index}.expires_at")
        now = self._clock.now()
        opted_out = await self.suppressions.suppressed_among({data.to for _, data in items})
        planned = [
            self._document(caller, key, data, now, data.to in opted_out) for key, data in items
        ]
        # One document per id: a key repeated within the batch is a replay of its first use.
        unique = list({doc["_id"]: doc for doc in reversed(planned)}.values())
        stored, created = await self.messages.insert_many_new(unique)
        results: list[BatchResult] = []
        answered: set[str] = set()
        for (key, _), doc in zip(items, planned, strict=True):
            message = stored[doc["_id"]]
            if _reuses_key(message, doc):
                results.append(BatchResult(key, 409, None, Conflict(KEY_REUSED)))
                continue
            fresh = doc["_id"] in created and doc["_id"] not in answered
            answered.add(doc["_id"])
            results.append(BatchResult(key, 201 if fresh else 200, message))
        queued = any(stored[i].get("status") == "queued" for i in created)
        if queued and self._on_queued is not None:
            self._on_queued.set()
        return results

    def _document(
        self, caller: str, idempotency_key: str, data: MessageIn, now: Any, suppressed: bool
    ) -> Document:
        """The message to store for ``data`` sent by ``caller`` under ``idempotency_key``."""
        fingerprint = hashlib.sha256(
            json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()
        encoding, segments = count_segments(data.body)
        return {
            "_id": message_id_for(caller, idempotency_key),
            "caller": caller,
            "fingerprint": fingerprint,
            "user_id": data.user_id,
            "to": data.to,
            "body": data.body,
            "purpose": data.purpose,
            "not_before": data.not_before,
            "expires_at": data.expires_at,
            **status_fields("suppressed" if suppressed else "queued"),
            "possibly_sent": False,
            "attempts": 0,
            "error_code": 21610 if suppressed else None,
            "error_message": "the recipient has opted out" if suppressed else None,
            "provider_sid": None,
            "segments": segments,
            "encoding": encoding,
            "transport": self._transport_name,
            "next_attempt_at": data.not_before or now,
            "lease_until": None,
            "created_at": now,
            "updated_at": now,
        }

    async def get(self, message_id: str) -> Document:
        """One message, or NotFound."""
        doc = await self.messages.get(message_id)
        if doc is None:
            raise NotFound("no such message")
        return doc

    async def delete_user(self, user_id: str, phone: str | None) -> None:
        """Account deletion: the user's messages, and those to their phone that no user owns
        (the first sign-in code goes out before the account exists)."""
        await self.messages.delete_user(user_id)
        if phone is not None:
            await self.messages.delete_unowned_to(phone)

    async def scrub_codes(self) -> int:
        """Remove the code from sign-in messages that no longer need it: expired, older than
        ``CODE_MAX_AGE``, or settled outside the sandbox (the worker already does this when the
        provider takes one; this catches failures, expiries and sandbox codes)."""
        now = self._clock.now()
        return await self.messages.scrub_codes(
            now=now,
            created_before=now - CODE_MAX_AGE,
            keep_settled_on="sandbox",
            fields=scrubbed_fields(now),
        )

    async def apply_callback(self, message_id: str | None, event: StatusCallback) -> bool:
        """Apply a Twilio status callback; repeats and out-of-order callbacks change nothing."""
        doc = await self.messages.get(message_id) if message_id else None
        if doc is None:
            doc = await self.messages.by_provider_sid(event.message_sid)
        if doc is None:
            log.info("status callback for an unknown message (%s)", event.message_status)
            return False
        status = TWILIO_STATUS_MAP.get(event.message_status.lower())
        if status is None:
            return False
        now = self._clock.now()
        code = event.error_code
        fields: Document = {"updated_at": now}
        if doc.get("provider_sid") is None:
            # The callback can beat the worker's own record of the send.
            fields["provider_sid"] = event.message_sid
        changed = STATUS_RANK[status] > STATUS_RANK[doc["status"]]
        if code is not None and changed:
            fields["error_code"] = code
        await self.messages.raise_status(doc["_id"], status, fields)
        if code == 21610:
            await self.suppressions.record(
                doc["to"], opted_out=True, source="twilio_error_21610", keyword=None, at=now
            )
        return changed


@dataclass(frozen=True, slots=True)
class InboundResult:
    """The answer to one inbound text (None: reply with nothing)."""

    reply: str | None
    state: str


class InboundService:
    """Inbound texts: signature check, dedupe, compliance, then the user's reply via reminders."""

    def __init__(
        self,
        *,
        inbound: InboundRepository,
        suppressions: SuppressionRepository,
        messages: MessageService,
        contacts: ServiceClient,
        reminders: ServiceClient,
        clock: Clock,
        auth_token: str,
        program_name: str,
        help_contact: str,
        reply_timeout_s: float,
        limiter: KeyedLimiter,
        metrics: NotifierMetrics | None = None,
    ) -> None:
        self.inbound = inbound
        self.suppressions = suppressions
        self._messages = messages
        self._contacts = contacts
        self._reminders = reminders
        self._clock = clock
        self._validator = RequestValidator(auth_token)
        self._program = program_name
        self._help_contact = help_contact
        self._reply_timeout_s = reply_timeout_s
        self._limiter = limiter
        self._metrics = metrics

    async def delete_user(self, user_id: str, phone: str | None) -> None:
        """Account deletion: the user's texts, and those from their phone tied to no user."""
        await self.inbound.delete_user(user_id)
        if phone is not None:
            await self.inbound.delete_unowned_from(phone)

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The X-Twilio-Signature for ``url`` and ``params`` (used by the sandbox)."""
        return str(self._validator.compute_signature(url, dict(params)))

    def verify(self, url: str, params: Mapping[str, str], signature: str | None) -> None:
        """Raise Forbidden unless ``signature`` is Twilio's signature of this request."""
        if not signature or not self._validator.validate(url, dict(params), signature):
            log.warning("rejected a webhook with an invalid signature")
            if self._metrics is not None:
                self._metrics.rejected_webhooks.inc()
            raise Forbidden("invalid Twilio signature")

    def verified(
        self, url: str, params: Mapping[str, str], signature: str | None, model: type[ModelT]
    ) -> ModelT:
        """Check the signature (403), then validate the signed fields as ``model`` (422)."""
        self.verify(url, params, signature)
        try:
            return parse_obj(dict(params), model)
        except ValidationFailed as exc:
            fields = ", ".join(str(e.get("field")) for e in exc.extra.get("errors", []))
            log.warning("refused a signed webhook with invalid fields: %s", fields)
            raise

    async def receive(
        self, url: str, params: Mapping[str, str], signature: str | None
    ) -> InboundResult:
        """Handle one signed incoming-message webhook and decide the TwiML reply."""
        sms = self.verified(url, params, signature, InboundSms)
        now = self._clock.now()
        record, created = await self.inbound.insert_new(
            {
                "_id": sms.message_sid,
                "from": sms.from_,
                "to": sms.to,
                "body": sms.body,
                "user_id": None,
                "state": "processing",
                "reply": None,
                "tries": 0,
                "received_at": now,
                "updated_at": now,
            }
        )
        if not created and record.get("state") != "error":
            return await self._repeat(record)
        # New, or a Twilio retry of a text whose first handling failed (every step is
        # idempotent: consent changes are states, reminders dedupes by message_sid).
        try:
            result = await self._decide(sms)
        except Exception:
            # Leave a record that answers a Twilio retry instead of a stuck "processing" one.
            await self.inbound.update(sms.message_sid, {"state": "error", "updated_at": now})
            raise
        return result

    async def _repeat(self, record: Document) -> InboundResult:
        # A redelivered webhook gets the first answer; if the first is still being worked on,
        # wait for it a little rather than acting twice.
        for _ in range(50):
            if record.get("state") != "processing":
                return InboundResult(record.get("reply"), "duplicate")
            await asyncio.sleep(0.1)
            fresh = await self.inbound.get(record["_id"])
            if fresh is None:
                break
            record = fresh
        return InboundResult(record.get("reply"), "duplicate")

    async def _finish(
        self, sid: str, state: str, reply: str | None, **fields: Any
    ) -> InboundResult:
        await self.inbound.update(
            sid, {"state": state, "reply": reply, "updated_at": self._clock.now(), **fields}
        )
        if self._metrics is not None:
            self._metrics.inbound.labels(state).inc()
        return InboundResult(reply, state)

    async def _decide(self, sms: InboundSms) -> InboundResult:
        now = self._clock.now()
        keyword = compliance.match_keyword(sms.body)
        if keyword is not None:
            if keyword.action == "opt_out":
                await self.suppressions.record(
                    sms.from_, opted_out=True, source="sms", keyword=keyword.word, at=now
                )
                reply = compliance.opt_out_reply(self._program)
            elif keyword.action == "opt_in":
                await self.suppressions.record(
                    sms.from_, opted_out=False, source="sms", keyword=keyword.word, at=now
                )
                reply = compliance.opt_in_reply(self._program)
            else:
                reply = compliance.help_reply(self._program, self._help_contact)
            return await self._finish(sms.message_sid, "compliance", reply, keyword=keyword.word)
        if await self.suppressions.is_suppressed(sms.from_):
            # Nothing but a START confirmation ever goes to an opted-out number.
            return await self._finish(sms.message_sid, "opted_out", None)
        if not self._limiter.allow(sms.from_):
            log.warning("inbound rate limit hit for %s", sms.from_)
            return await self._finish(sms.message_sid, "rate_limited", None)
        try:
            async with asyncio.timeout(self._reply_timeout_s):
                user = await self._lookup_user(sms.from_)
                if user is None:
                    reply = compliance.unknown_number_reply(self._program)
                    return await self._finish(sms.message_sid, "unknown_number", reply)
                await self.inbound.update(sms.message_sid, {"user_id": user})
                answer = await self._ask_reminders(user, sms.from_, sms.body, sms.message_sid)
        except (TimeoutError, UpstreamError) as exc:
            log.warning("reply deferred: %s", type(exc).__name__)
            return await self._finish(
                sms.message_sid,
                "deferred",
                ACK_REPLY,
                next_try_at=now + timedelta(seconds=DEFERRED_RETRY_S),
            )
        return await self._finish(sms.message_sid, "answered", answer)

    async def _lookup_user(self, phone: str) -> str | None:
        resp = await self._contacts.request(
            "GET", "/internal/v1/users/by-phone", params={"phone": phone}
        )
        if resp.status == 404:
            return None
        if resp.status != 200 or not isinstance(resp.body, dict) or "id" not in resp.body:
            raise UpstreamError(f"contacts answered {resp.status}", upstream_status=resp.status)
        return str(resp.body["id"])

    async def _ask_reminders(self, user_id: str, phone: str, text: str, sid: str) -> str | None:
        resp = await self._reminders.request(
            "POST",
            "/internal/v1/replies",
            json_body={"user_id": user_id, "from": phone, "text": text, "message_sid": sid},
            idempotency_key=f"reply:{sid}",
        )
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise UpstreamError(f"reminders answered {resp.status}", upstream_status=resp.status)
        reply = resp.body.get("reply")
        return str(reply) if reply else None

    async def answer_deferred(self, record: Document) -> bool:
        """Try again to answer a deferred text; queue the answer as an outbound message."""
        sid = record["_id"]
        now = self._clock.now()
        tries = int(record.get("tries", 0)) + 1
        try:
            async with asyncio.timeout(self._reply_timeout_s * 2):
                user = record.get("user_id") or await self._lookup_user(record["from"])
                if user is None:
                    answer: str | None = compliance.unknown_number_reply(self._program)
                else:
                    answer = await self._ask_reminders(user, record["from"], record["body"], sid)
        except (TimeoutError, UpstreamError) as exc:
            if tries >= MAX_DEFERRED_TRIES:
                log.warning("giving up on a deferred reply after %d tries", tries)
                await self.inbound.update(
                    sid, {"state": "failed", "tries": tries, "updated_at": now}
                )
                return False
            delay = min(DEFERRED_RETRY_S * 2**tries, 300.0)
            log.info(
                "deferred reply still pending (%s); next try in %.0fs", type(exc).__name__, delay
            )
            await self.inbound.update(
                sid,
                {"tries": tries, "next_try_at": now + timedelta(seconds=delay), "updated_at": now},
            )
            return False
        if answer:
            await self._messages.create(
                "notifier",
                f"inbound-reply:{sid}",
                MessageIn(user_id=user, to=record["from"], body=answer, purpose="reply"),
            )
        await self.inbound.update(
            sid,
            {
                "state": "answered_later",
                "later_reply": answer,
                "user_id": user,
                "tries": tries,
                "updated_at": now,
            },
        )
        return True
