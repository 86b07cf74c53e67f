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
import functools
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from services.notifier.metrics import NotifierMetrics
from services.notifier.models import TWILIO_STATUS_MAP, SendOutcome
from services.notifier.ratelimit import SenderLimits
from services.notifier.repository import ClaimRepository
from services.notifier.service import (
    InboundService,
    MessageService,
    keeps_code_once_sent,
    scrubbed_fields,
)
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


@dataclass(frozen=True, slots=True)
class _Attempt:
    doc: Document
    attempt: int
    claim_id: str
    lease: datetime
    opted_out: bool


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
        metrics: NotifierMetrics | None = None,
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
        self._metrics = metrics
        self.owner = uuid.uuid4().hex[:12]
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.send_concurrency)
        self._freed = asyncio.Event()
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
        """Run :meth:`maintain_once` every ``REAP_INTERVAL_S`` until cancelled."""
        while True:
            try:
                await self.maintain_once()
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
        # Claim about four seconds of sends ahead (never more than fit well inside a lease): the
        # next poll starts with two seconds of work still queued, so the limiter never starves
        # while a poll scans the queue, and a claim never expires while it waits.
        rate = self._settings.send_rate_per_second
        within_lease = max(1, int(rate * self._settings.lease_s / 4))
        limit = min(max(min(int(rate * 4), 1000), self._settings.send_concurrency), within_lease)
        room = limit - len(self._inflight)
        if room < max(1, limit // 2):
            # Each poll scans the queue; with a backlog, poll again only when half the in-flight
            # sends are done, so polling does not keep the database busy.
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), 0.5)
            return 1
        now = self._clock.now()
        started = 0
        due = [d for d in await self._repo.due(now, room * 2) if d["_id"] not in self._inflight]
        if not due:
            return 0
        # Replicas see the same due list; shuffling spreads them over it, and the claim decides.
        random.shuffle(due)
        # One query for the whole batch; an opt-out arriving after it is caught by Twilio
        # (21610), which is recorded the same way.
        opted_out = await self._messages.suppressions.suppressed_among({d["to"] for d in due})
        batch = due[:room]
        lease_until = now + timedelta(seconds=self._settings.lease_s)
        claims = [
            {
                "_id": f"send:{doc['_id']}:{int(doc.get('attempts', 0)) + 1}",
                "kind": "send",
                "message_id": doc["_id"],
                "attempt": int(doc.get("attempts", 0)) + 1,
                "owner": self.owner,
                "state": "claimed",
                "claimed_at": now,
                "lease_until": lease_until,
                "updated_at": now,
            }
            for doc in batch
        ]
        # One bulk insert for the batch: each document is still claimed atomically by its
        # unique id, and a duplicate only means another replica won that one.
        won = await self._claims.claim_many(claims)
        for doc, claim in zip(batch, claims, strict=True):
            if claim["_id"] not in won:
                continue
            job = _Attempt(doc, claim["attempt"], claim["_id"], lease_until, doc["to"] in opted_out)
            task = asyncio.create_task(self._send(job))
            self._inflight[doc["_id"]] = task
            task.add_done_callback(functools.partial(self._forget, doc["_id"]))
            started += 1
        return started

    def _forget(self, message_id: Any, task: asyncio.Task[None]) -> None:
        # By key: scanning the in-flight map for each finished send is quadratic in a batch.
        if self._inflight.get(message_id) is task:
            del self._inflight[message_id]
        self._freed.set()

    async def _send(self, attempt: _Attempt) -> None:
        try:
            await self._attempt(attempt)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The claim stays open and is reaped after its lease.
            log.exception(
                "send attempt failed unexpectedly", extra={"message_id": attempt.doc["_id"]}
            )

    async def _attempt(self, job: _Attempt) -> None:
        doc, attempt, claim_id = job.doc, job.attempt, job.claim_id
        message_id = doc["_id"]
        now = self._clock.now()
        if attempt > 1:
            # A retry: a status callback from an earlier attempt may have settled the message
            # since the poll read it. (A first attempt has nothing that could have moved it.)
            fresh = await self._repo.get(message_id)
            if (
                fresh is None
                or fresh["status"] != "queued"
                or int(fresh.get("attempts", 0)) != attempt - 1
            ):
                return
            doc = fresh
        # A message whose text was removed (a sign-in code past its use) is never sent.
        expired = doc.get("expires_at") is not None and doc["expires_at"] <= now
        if expired or doc.get("body_scrubbed_at") is not None:
            self._count("expired")
            await self._finish(claim_id, message_id, "expired", attempts=attempt - 1)
            return
        if job.opted_out:
            self._count("suppressed")
            await self._finish(
                claim_id,
                message_id,
                "suppressed",
                attempts=attempt - 1,
                error_code=OPTED_OUT_CODE,
                error_message="the recipient has opted out",
            )
            return
        # Nothing is written between the token and the call, so the spacing the limiter
        # enforces is the spacing Twilio sees. On FerretDB every write costs several ms, so an
        # attempt makes exactly two: the claim and the outcome.
        # Slots bound the concurrent provider calls only; the database writes around them do
        # not hold a slot, or slow writes would throttle sending below the limit. The token is
        # taken inside the slot, right before the call, so the spacing the limiter enforces
        # is the spacing Twilio sees.
        async with self._slots:
            await self._limits.take(self._settings.sender)
            late = self._clock.now() + timedelta(seconds=self._settings.send_timeout_s + 1)
            if late < job.lease:
                outcome = await self._transport.send(
                    to=doc["to"],
                    body=doc["body"],
                    status_callback=self._status_callback(message_id),
                    purpose=doc["purpose"],
                )
        if late >= job.lease:
            # Too late to finish inside the lease: hand the message back, attempt used, unsent.
            log.warning("send attempt abandoned: its lease ran out while waiting")
            await self._finish(
                claim_id, message_id, "queued", attempts=attempt, next_attempt_at=self._clock.now()
            )
            return
        await self._record_durably(doc, attempt, claim_id, outcome, job.lease)

    async def _record_durably(
        self, doc: Document, attempt: int, claim_id: str, outcome: SendOutcome, lease: datetime
    ) -> None:
        # Once Twilio has the message, losing its outcome would make the reaper retry it (a
        # duplicate), so a failed write (e.g. FerretDB's "database is locked") is retried
        # for as long as the claim's lease lasts.
        delay = 0.05
        while True:
            try:
                await self._record(doc, attempt, claim_id, outcome)
                return
            except PyMongoError as exc:
                if self._clock.now() + timedelta(seconds=delay) >= lease:
                    raise
                log.warning("recording a send outcome failed, retrying: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

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
        self._count(verdict)
        errors = {"error_code": outcome.error_code, "error_message": outcome.error_message}
        if verdict == "sent":
            self.sent += 1
            status = TWILIO_STATUS_MAP.get(outcome.provider_status or "", "sending")
            fields: Document = {
                "attempts": attempt,
                "provider_sid": outcome.provider_sid,
                "sent_at": now,
                "updated_at": now,
                "error_code": None,
                "error_message": None,
            }
            if doc["purpose"] == "otp" and not keeps_code_once_sent(self._transport.name):
                # The code is the user's now; the record keeps no copy of it.
                fields.update(scrubbed_fields(now))
            # A status callback may already have recorded a later state (it names the message
            # in its URL); raise_status never moves the state back.
            await self._repo.raise_status(message_id, status, fields)
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

    async def _retry_or_give_up(
        self, message_id: str, attempt: int, possibly: bool, errors: dict[str, Any]
    ) -> None:
        now = self._clock.now()
        if attempt >= self._settings.max_send_attempts:
            final = "possibly_sent" if possibly else "failed"
            self._count("given_up")
            log.warning("message gave up after %d attempts (%s)", attempt, final)
            await self._repo.raise_status(
                message_id,
                final,
                {
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

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.send_attempts.labels(outcome).inc()

    async def _finish(self, claim_id: str, message_id: str, status: str, **fields: Any) -> None:
        # The claim is left as it is: the outcome written on the message is what the reaper
        # reads to tell a finished attempt from an abandoned one.
        fields = {"lease_until": None, "updated_at": self._clock.now(), **fields}
        if status == "queued":
            await self._repo.update(message_id, fields)
        else:
            await self._repo.raise_status(message_id, status, fields)

    # -- maintenance ---------------------------------------------------------------------

    async def maintain_once(self) -> None:
        """Reap expired claims, answer deferred replies, remove sign-in codes no longer needed."""
        await self.reap_once()
        await self.answer_deferred_once()
        await self._messages.scrub_codes()

    async def reap_once(self) -> int:
        """Look at claims past their lease: drop finished ones, retry abandoned attempts."""
        now = self._clock.now()
        reaped = 0
        finished: list[str] = []
        for claim in await self._claims.expired(now, limit=500):
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
            if doc is None or int(doc.get("attempts", 0)) >= attempt or doc["status"] != "queued":
                # The attempt recorded its outcome (or the message is gone or settled).
                finished.append(claim["_id"])
                continue
            # The owner stopped between its claim and recording an outcome. It may have called
            # Twilio, so the message is marked possibly sent before the next attempt.
            log.warning("reaped an abandoned send attempt")
            await self._retry_or_give_up(
                message_id,
                attempt,
                True,
                {"error_code": None, "error_message": "worker stopped during the attempt"},
            )
            await self._claims.set_state(claim["_id"], "reaped", now)
            reaped += 1
        # A finished claim's id is never tried again (the message's attempt count has passed
        # it), so deleting it is safe; FerretDB has no TTL indexes to do this for us.
        await self._claims.delete(finished)
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
                    "state": "claimed",
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
