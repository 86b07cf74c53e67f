"""The send worker: claims queued messages safely across replicas and sends them at the MPS limit.

Per attempt ``n`` of message ``m`` the worker inserts the claim ``send:m:n``. The insert on a
unique ``_id`` is atomic on MongoDB and FerretDB, so exactly one worker in the fleet makes
attempt ``n``. No lease is written on the message with ``find_one_and_update``: on FerretDB v1
that is read-then-write of the whole document, and a lease written from a stale read was seen to
undo another worker's status update. Replicas spread work by shuffling the due list; the claim
carries its own lease for the reaper. A claim whose owner died is reaped after its lease: the
attempt is counted as used, and if the owner had already called the provider the message is
marked ``possibly_sent`` before it is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from services.notifier.models import SendOutcome
from services.notifier.ratelimit import SenderLimits
from services.notifier.repository import ClaimRepository
from services.notifier.service import InboundService, MessageService, status_fields
from services.notifier.settings import NotifierSettings
from services.notifier.transport import SmsTransport
from shared.clock import Clock
from shared.mongo import Document

log = logging.getLogger(__name__)

RETRY_CODES = frozenset({20429, 21611})  # too many requests; sender's queue is full
OPTED_OUT_CODE = 21610


def classify(outcome: SendOutcome) -> str:
    """The retry policy: sent, retry, retry_possibly_sent, opted_out or permanent."""
    if outcome.accepted:
        return "sent"
    if outcome.connect_failed:
        return "retry"
    if outcome.timed_out:
        return "retry_possibly_sent"
    if outcome.error_code == OPTED_OUT_CODE:
        return "opted_out"
    if outcome.http_status == 429 or outcome.error_code in RETRY_CODES:
        return "retry"
    if outcome.http_status is not None and outcome.http_status >= 500:
        return "retry_possibly_sent"
    return "permanent"


class SendWorker:
    """Sends due messages; one per process, started and stopped by the app's cleanup context."""

    def __init__(
        self,
        *,
        settings: NotifierSettings,
        messages: MessageService,
        inbound: InboundService,
        claims: ClaimRepository,
        transport: SmsTransport,
        limits: SenderLimits,
        clock: Clock,
        wake: asyncio.Event,
        status_callback_base: str | None,
    ) -> None:
        self._settings = settings
        self._messages = messages
        self._repo = messages.messages
        self._inbound = inbound
        self._claims = claims
        self._transport = transport
        self._limits = limits
        self._clock = clock
        self._wake = wake
        self._callback_base = status_callback_base
        self.owner = uuid.uuid4().hex[:12]
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.send_concurrency)
        self.sent = 0

    # -- loops ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll for due messages until cancelled; in-flight sends are awaited on the way out."""
        try:
            while True:
                try:
                    found = await self.poll_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("send worker poll failed")
                    found = 0
                if found == 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
        finally:
            await self.drain()

    async def run_maintenance(self) -> None:
        """Reap expired claims and answer deferred replies, periodically, until cancelled."""
        while True:
            try:
                await self.reap_once()
                await self.answer_deferred_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("send worker maintenance failed")
            await asyncio.sleep(self._settings.reap_interval_s)

    async def drain(self) -> None:
        """Wait for in-flight sends (their claims are finished or reaped later)."""
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- sending -------------------------------------------------------------------------

    async def poll_once(self) -> int:
        """Claim and start sending the due messages this worker has room for."""
        # Claim no more than can be sent well within a lease at the MPS limit, so a claim never
        # expires while it waits for the limiter.
        ahead = max(1, int(self._settings.send_rate_per_second * self._settings.lease_s / 4))
        room = min(self._settings.send_concurrency * 2, ahead) - len(self._inflight)
        if room <= 0:
            await asyncio.sleep(0.05)
            return 1
        now = self._clock.now()
        started = 0
        due = await self._repo.due(now, room)
        # Replicas see the same due list; shuffling spreads them over it, and the claim decides.
        random.shuffle(due)
        for doc in due:
            if doc["_id"] in self._inflight:
                continue
            attempt = int(doc.get("attempts", 0)) + 1
            lease_until = now + timedelta(seconds=self._settings.lease_s)
            claim_id = f"send:{doc['_id']}:{attempt}"
            claimed = await self._claims.claim(
                claim_id,
                {
                    "kind": "send",
                    "message_id": doc["_id"],
                    "attempt": attempt,
                    "owner": self.owner,
                    "state": "claimed",
                    "claimed_at": now,
                    "lease_until": lease_until,
                    "updated_at": now,
                },
            )
            if not claimed:
                continue
            task = asyncio.create_task(self._send(doc["_id"], attempt, claim_id, lease_until))
            self._inflight[doc["_id"]] = task
            task.add_done_callback(self._forget)
            started += 1
        return started

    def _forget(self, task: asyncio.Task[None]) -> None:
        for message_id, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[message_id]

    async def _send(
        self, message_id: str, attempt: int, claim_id: str, lease_until: datetime
    ) -> None:
        async with self._slots:
            try:
                await self._attempt(message_id, attempt, claim_id, lease_until)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The claim stays open and is reaped after its lease.
                log.exception("send attempt failed unexpectedly", extra={"message_id": message_id})

    async def _attempt(
        self, message_id: str, attempt: int, claim_id: str, lease_until: datetime
    ) -> None:
        doc = await self._repo.get(message_id)
        now = self._clock.now()
        if doc is None or doc["status"] != "queued" or int(doc.get("attempts", 0)) != attempt - 1:
            # Someone else moved the message on since we read it; our claim is moot.
            await self._claims.set_state(claim_id, "done", now)
            return
        if doc.get("expires_at") is not None and doc["expires_at"] <= now:
            await self._finish(claim_id, message_id, "expired", attempts=attempt - 1)
            return
        if await self._messages.suppressions.is_suppressed(doc["to"]):
            await self._finish(
                claim_id,
                message_id,
                "suppressed",
                attempts=attempt - 1,
                error_code=OPTED_OUT_CODE,
                error_message="the recipient has opted out",
            )
            return
        now = self._clock.now()
        await self._claims.set_state(claim_id, "calling", now)
        await self._repo.update(
            message_id, {**status_fields("sending"), "attempts": attempt, "updated_at": now}
        )
        # The token is taken last, right before the call, so the spacing the limiter enforces
        # is the spacing Twilio sees.
        await self._limits.take(self._settings.sender)
        if self._clock.now() + timedelta(seconds=self._settings.send_timeout_s + 1) >= lease_until:
            # Too late to finish inside the lease: a reaper may already be handing the message
            # on. The claim goes back to "claimed" (the provider was not called) for the reaper.
            log.warning("send attempt abandoned: its lease ran out while waiting")
            await self._claims.set_state(claim_id, "claimed", self._clock.now())
            return
        outcome = await self._transport.send(
            to=doc["to"],
            body=doc["body"],
            status_callback=self._status_callback(message_id),
            purpose=doc["purpose"],
        )
        await self._record(doc, attempt, claim_id, outcome)

    def _status_callback(self, message_id: str) -> str | None:
        if self._callback_base is None:
            return None
        return f"{self._callback_base}/webhooks/twilio/status?message_id={message_id}"

    async def _record(
        self, doc: Document, attempt: int, claim_id: str, outcome: SendOutcome
    ) -> None:
        message_id = doc["_id"]
        now = self._clock.now()
        verdict = classify(outcome)
        errors = {"error_code": outcome.error_code, "error_message": outcome.error_message}
        if verdict == "sent":
            self.sent += 1
            await self._repo.update(
                message_id,
                {
                    "provider_sid": outcome.provider_sid,
                    "sent_at": now,
                    "updated_at": now,
                    "lease_until": None,
                    "error_code": None,
                    "error_message": None,
                },
            )
            mapped = {"delivered": "delivered", "sent": "sent"}.get(outcome.provider_status or "")
            if mapped:
                await self._repo.advance(message_id, mapped, {"updated_at": now})
            await self._claims.set_state(claim_id, "done", now)
            return
        if verdict == "opted_out":
            await self._messages.suppressions.record(
                doc["to"], opted_out=True, source="twilio_error_21610", keyword=None, at=now
            )
            await self._finish(claim_id, message_id, "suppressed", attempts=attempt, **errors)
            return
        if verdict == "permanent":
            log.warning("message failed permanently: %s", outcome.error_code)
            await self._finish(claim_id, message_id, "failed", attempts=attempt, **errors)
            return
        possibly = bool(doc.get("possibly_sent")) or verdict == "retry_possibly_sent"
        await self._retry_or_give_up(message_id, attempt, possibly, errors)
        await self._claims.set_state(claim_id, "done", now)

    async def _retry_or_give_up(
        self, message_id: str, attempt: int, possibly: bool, errors: dict[str, Any]
    ) -> None:
        now = self._clock.now()
        if attempt >= self._settings.max_send_attempts:
            final = "possibly_sent" if possibly else "failed"
            log.warning("message gave up after %d attempts (%s)", attempt, final)
            await self._repo.update(
                message_id,
                {
                    **status_fields(final),
                    "attempts": attempt,
                    "possibly_sent": possibly,
                    "lease_until": None,
                    "updated_at": now,
                    **errors,
                },
            )
            return
        delay = self.backoff(attempt)
        await self._repo.update(
            message_id,
            {
                **status_fields("queued"),
                "attempts": attempt,
                "possibly_sent": possibly,
                "next_attempt_at": now + timedelta(seconds=delay),
                "lease_until": None,
                "updated_at": now,
                **errors,
            },
        )

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1``."""
        cap = min(self._settings.retry_max_s, self._settings.retry_base_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)

    async def _finish(self, claim_id: str, message_id: str, status: str, **fields: Any) -> None:
        now = self._clock.now()
        await self._repo.update(
            message_id, {**status_fields(status), "lease_until": None, "updated_at": now, **fields}
        )
        await self._claims.set_state(claim_id, "done", now)

    # -- maintenance ---------------------------------------------------------------------

    async def reap_once(self) -> int:
        """Requeue (or give up on) messages whose claim outlived its lease."""
        now = self._clock.now()
        reaped = 0
        for claim in await self._claims.expired(now):
            if claim.get("kind") == "reply":
                # Count the abandoned try so the next one gets a fresh claim id.
                record = await self._inbound.inbound.get(claim["inbound_id"])
                if record is not None and int(record.get("tries", 0)) < int(claim["attempt"]):
                    await self._inbound.inbound.update(
                        claim["inbound_id"], {"tries": int(claim["attempt"]), "next_try_at": now}
                    )
                await self._claims.set_state(claim["_id"], "reaped", now)
                continue
            message_id, attempt = claim["message_id"], int(claim["attempt"])
            doc = await self._repo.get(message_id)
            await self._claims.set_state(claim["_id"], "reaped", now)
            if doc is None or doc["status"] not in ("queued", "sending"):
                continue
            if int(doc.get("attempts", 0)) > attempt or doc.get("provider_sid"):
                continue
            possibly = bool(doc.get("possibly_sent")) or claim.get("state") == "calling"
            log.warning("reaped an abandoned send attempt (possibly sent: %s)", possibly)
            await self._retry_or_give_up(
                message_id,
                attempt,
                possibly,
                {"error_code": None, "error_message": "worker stopped during the attempt"},
            )
            reaped += 1
        await self._claims.purge_done(now - timedelta(days=7))
        return reaped

    async def answer_deferred_once(self) -> int:
        """Retry the inbound texts whose answer was deferred; one replica per try."""
        now = self._clock.now()
        done = 0
        for record in await self._inbound.inbound.deferred(now):
            tries = int(record.get("tries", 0)) + 1
            claimed = await self._claims.claim(
                f"reply:{record['_id']}:{tries}",
                {
                    "kind": "reply",
                    "inbound_id": record["_id"],
                    "attempt": tries,
                    "owner": self.owner,
                    "state": "calling",
                    "claimed_at": now,
                    "lease_until": now + timedelta(seconds=self._settings.lease_s),
                    "updated_at": now,
                },
            )
            if not claimed:
                continue
            if await self._inbound.answer_deferred(record):
                done += 1
            await self._claims.set_state(f"reply:{record['_id']}:{tries}", "done", now)
        if done:
            self._wake.set()
        return done
