"""The fault suite's harness: a stack on a flaky Twilio, a fast seeder, and the end-of-run audit.

Time in the services is controllable, so one run is: seed users, a contact each (its "first
touch" follow-up is due 72 hours later, derived by reminders from the change feed) and one-off
touchpoints at ``START``, move every clock to the morning of the third day, open the 09:00 digest
window, inject the fault, and audit what reached the Twilio side against both databases.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from services.reminders.models import OPEN_STATES
from shared.auth import issue_service_token
from tests.faults.twilio_side import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FlakyTwilio
from tests.support.http import request_json, wait_for
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import INTERNAL_SECRET
from tests.support.stack import Stack

START = "2026-03-02T12:00:00Z"  # Monday 07:00 in New York, where +1 212 numbers live
BEFORE_WINDOW = "2026-03-05T13:00:00Z"  # Thursday 08:00 New York: the schedule moves to 09:00
WINDOW_AT = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)  # Thursday 09:00 New York
OPEN_WINDOW = "2026-03-05T14:00:05Z"
ONE_OFFS_DUE = "2026-03-05T13:30:00Z"
WINDOW_KEY = "2026-03-05T0900"
ITEMS_PER_DIGEST = 20  # daily budget (max 20) with 10 segments fits 20 lines of this length
ACCEPTED = ("sending", "sent", "delivered")

Doc = dict[str, Any]
log = logging.getLogger(__name__)


def fault_env() -> dict[str, dict[str, str]]:
    """Short intervals, leases and timeouts so recovery happens within seconds."""
    return {
        "contacts": {"OTP_MAX_PER_IP": "10000", "CHANGE_FEED_LAG_S": "0.5"},
        "reminders": {
            "SYNC_INTERVAL_S": "0.5",
            "SWEEP_INTERVAL_S": "0.5",
            "RETRY_INTERVAL_S": "1",
            "REAP_INTERVAL_S": "1",
            "CLAIM_STALE_S": "5",
            "DIGEST_MAX_SEGMENTS": "10",
            # Few users at a time (claim batches of four, one in flight): the dispatch lasts long
            # enough to inject a fault into it, and two replicas meet on the burst's batches.
            "SWEEP_CONCURRENCY": "4",
            "SWEEP_CLAIM_BATCH": "4",
        },
        "notifier": {
            "SMS_TRANSPORT": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "SEND_TIMEOUT_S": "2",
            "LEASE_S": "8",
            "RETRY_BASE_S": "0.2",
            "RETRY_MAX_S": "1",
            "POLL_INTERVAL_S": "0.2",
            "REAP_INTERVAL_S": "1",
            "SEND_RATE_PER_SECOND": "15",
            "SEND_BURST": "5",
            "MAX_SEND_ATTEMPTS": "8",
        },
    }


def call(
    url: str, target: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request; a service token for ``target`` unless a user token is given."""
    bearer = token or issue_service_token(INTERNAL_SECRET, "cli", target)
    return request_json(method, url + path, body, {"Authorization": f"Bearer {bearer}"})


@dataclass
class User:
    """A seeded networker."""

    id: str
    phone: str
    token: str


@dataclass
class FaultStack:
    """Contacts, one or more reminders and notifier replicas, and the flaky Twilio they send to."""

    mongodb_uri: str
    prefix: str
    log_dir: Path
    twilio: FlakyTwilio
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    replicas: int = 1
    stack: Stack = field(init=False)
    extra: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    users: list[User] = field(default_factory=list)
    # The open touchpoints due when the window opened, per user (taken by ``open_window``).
    due: dict[str, set[str]] = field(default_factory=dict)
    # Seconds spent seeding and from the window's opening until everything settled.
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = fault_env()
        env["notifier"]["TWILIO_API_BASE_URL"] = self.twilio.url
        for name, values in self.overrides.items():
            env.setdefault(name, {}).update(values)
        self.stack = Stack(self.mongodb_uri, self.prefix, self.log_dir, env, START)
        for name in ("reminders", "notifier"):
            self.extra[name] = []
            for _ in range(self.replicas - 1):
                proc = service_process(name, {}, self.log_dir)
                proc.env = dict(self.stack.procs[name].env)
                self.extra[name].append(proc)
        # Each extra reminders replica sends through its own notifier replica.
        for reminders, notifier in zip(
            self.extra["reminders"], self.extra["notifier"], strict=True
        ):
            reminders.env["NOTIFIER_URL"] = notifier.url
            notifier.env["PUBLIC_BASE_URL"] = notifier.url

    def procs(self, name: str | None = None) -> list[ServiceProcess]:
        """Every process of one service (or of all)."""
        names = [name] if name else ["contacts", "reminders", "notifier"]
        return [p for n in names for p in [self.stack.procs[n], *self.extra.get(n, [])]]

    def start(self) -> None:
        """Start every process."""
        self.stack.start()
        for proc in self.procs():
            if proc.process is None:
                proc.start()

    def stop(self) -> None:
        """Stop every process."""
        for proc in self.procs():
            proc.stop()

    def drop(self) -> None:
        """Drop the three databases of this run."""
        client: MongoClient[Doc] = MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=5000)
        try:
            for name in ("contacts", "reminders", "notifier"):
                client.drop_database(f"{self.prefix}_{name}")
        except PyMongoError as exc:
            # A dedicated server may already be gone, and its data with it.
            log.info("could not drop the fault run's databases: %s", type(exc).__name__)
        finally:
            client.close()

    def db(self, service: str) -> Any:
        """A read-only look at one service's database (a fresh client each time)."""
        client: MongoClient[Doc] = MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=5000)
        return client, client[f"{self.prefix}_{service}"]

    def count(self, service: str, collection: str, query: Doc | None = None) -> int:
        """How many documents of a collection match ``query``."""
        client, db = self.db(service)
        try:
            return int(db[collection].count_documents(query or {}))
        finally:
            client.close()

    def read(self, service: str, collection: str, query: Doc | None = None) -> list[Doc]:
        """Every document of a collection matching ``query``."""
        client, db = self.db(service)
        try:
            return list(db[collection].find(query or {}))
        finally:
            client.close()

    def clock(self) -> str:
        """The contacts service's current time."""
        status, body = call(
            self.stack.url("contacts"), "contacts", "GET", "/internal/v1/test/clock"
        )
        assert status == 200, body
        return str(body["now"])

    def set_clock(self, now: str, procs: Iterable[ServiceProcess] | None = None) -> None:
        """Set the clock of every (or some) running process to the same instant."""
        for proc in procs if procs is not None else self.procs():
            if proc.process is None:
                continue
            status, body = call(proc.url, proc.name, "PUT", "/internal/v1/test/clock", {"now": now})
            assert status == 200, body

    def restart(self, proc: ServiceProcess) -> None:
        """Start a stopped process again on its port, on the fleet's current time."""
        now = self.clock() if proc.name != "contacts" else self._other_clock()
        proc.env["CLOCK_START"] = now
        proc.start()
        self.set_clock(now, [proc])

    def _other_clock(self) -> str:
        notifier = self.stack.procs["notifier"]
        status, body = call(notifier.url, "notifier", "GET", "/internal/v1/test/clock")
        assert status == 200, body
        return str(body["now"])


# -- seeding --------------------------------------------------------------------------------


def _sign_in(fs: FaultStack, phone: str) -> User:
    contacts = fs.stack.url("contacts")
    status, started = call(contacts, "contacts", "POST", "/v1/auth/otp/start", {"phone": phone})
    assert status == 202, started
    code = wait_for(lambda: fs.twilio.latest_code(phone), f"the code for {phone[:5]}", 30)
    status, tokens = call(
        contacts,
        "contacts",
        "POST",
        "/v1/auth/otp/verify",
        {"challenge_id": started["challenge_id"], "code": code},
    )
    assert status == 200, tokens
    token = tokens["access_token"]
    status, prefs = call(
        fs.stack.url("reminders"),
        "reminders",
        "PUT",
        "/v1/preferences",
        {"daily_budget": ITEMS_PER_DIGEST},
        token=token,
    )
    assert status == 200, prefs
    return User(tokens["user"]["id"], phone, token)


def _add_contact(fs: FaultStack, user: User) -> None:
    body = {"name": f"Dana {user.phone[-2:]}", "company": "Lee Insurance"}
    status, created = call(
        fs.stack.url("contacts"), "contacts", "POST", "/v1/contacts", body, token=user.token
    )
    assert status == 201, created


def _add_one_off(fs: FaultStack, user: User, n: int) -> None:
    body = {"contact_name": f"Pat {n:02d}", "reason": "call back", "due_at": ONE_OFFS_DUE}
    status, created = call(
        fs.stack.url("reminders"), "reminders", "POST", "/v1/touchpoints", body, token=user.token
    )
    assert status == 201, created


def seed(fs: FaultStack, users: int, one_offs: int, workers: int = 8) -> int:
    """Sign in ``users`` networkers and give each touchpoints due in the same digest window.

    Everything goes through the public APIs. Each user signs in by SMS code, adds one contact
    in contacts (reminders derives its "first touch" follow-up, due 72 hours later, from the
    change feed) and ``one_offs`` one-off touchpoints in reminders. Deriving a thousand
    contacts through the feed takes minutes on FerretDB, one-offs take seconds. Returns the
    number of touchpoints due in the window, once reminders holds all of them.
    """
    began = time.monotonic()
    phones = [f"+1212555{100 + i:04d}" for i in range(users)]
    with ThreadPoolExecutor(workers) as pool:
        fs.users = list(pool.map(lambda p: _sign_in(fs, p), phones))
        list(pool.map(lambda u: _add_contact(fs, u), fs.users))
        jobs = [(u, n) for n in range(one_offs) for u in fs.users]
        list(pool.map(lambda job: _add_one_off(fs, *job), jobs))
    expected = users * (one_offs + 1)

    def derived() -> bool:
        return (
            fs.count("reminders", "touchpoints", {"source": {"$in": ["followup", "oneoff"]}})
            >= expected
        )

    wait_for(derived, f"reminders to hold {expected} touchpoints", 150)
    fs.timings["seed_s"] = round(time.monotonic() - began, 1)
    return expected


def open_window(fs: FaultStack) -> None:
    """Move every clock to just before the window, let schedules settle, then open it."""
    fs.set_clock(BEFORE_WINDOW)
    ids = {u.id for u in fs.users}

    def scheduled() -> bool:
        docs = fs.read("reminders", "users", {"_id": {"$in": list(ids)}})
        at = [d.get("next_digest_at") for d in docs]
        return len(docs) == len(ids) and all(
            a is not None and a.replace(tzinfo=UTC) == WINDOW_AT for a in at
        )

    wait_for(scheduled, "every user's next digest at 09:00 local", 120)
    opening = datetime.fromisoformat(OPEN_WINDOW)
    for tp in fs.read("reminders", "touchpoints", {"user_id": {"$in": list(ids)}}):
        if tp["state"] in OPEN_STATES and tp["fire_at"].replace(tzinfo=UTC) <= opening:
            fs.due.setdefault(tp["user_id"], set()).add(tp["_id"])
    fs.set_clock(OPEN_WINDOW)
    fs.timings["opened_at"] = time.monotonic()


def dispatched(fs: FaultStack) -> int:
    """How many digests of the window have been claimed so far."""
    return len(fs.read("reminders", "dispatches", {"window": WINDOW_KEY}))


def nudges_at_twilio(fs: FaultStack) -> int:
    """How many digests the Twilio side has accepted so far."""
    return sum(1 for r in fs.twilio.snapshot() if r.accepted and r.body.startswith("touchbase: "))


def settled(fs: FaultStack) -> bool:
    """Every user has a finished claim and every nudge has left the queue."""
    claims = fs.read("reminders", "dispatches", {"window": WINDOW_KEY})
    if len(claims) < len(fs.users):
        return False
    if any(c["state"] not in ("recorded", "failed", "expired") for c in claims):
        return False
    messages = fs.read("notifier", "messages", {"purpose": "nudge"})
    return all(m["status_rank"] != 0 for m in messages)


def wait_settled(fs: FaultStack, timeout_s: float = 60) -> None:
    """Wait until the window's dispatch has finished everywhere."""
    wait_for(lambda: settled(fs), "every digest of the window to be dispatched and sent", timeout_s)
    fs.timings["window_s"] = round(time.monotonic() - fs.timings.get("opened_at", 0.0), 1)


# -- the audit ------------------------------------------------------------------------------


@dataclass
class Audit:
    """What the end-of-run audit found."""

    due: int = 0
    in_digests: int = 0
    left_out: int = 0
    failed_digests: int = 0
    sms_at_twilio: int = 0
    possibly_sent: int = 0
    extra_sms: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the test output and docs."""
        return (
            f"due={self.due} in_digests={self.in_digests} left_out={self.left_out} "
            f"failed_digests={self.failed_digests} sms_at_twilio={self.sms_at_twilio} "
            f"possibly_sent={self.possibly_sent} extra_sms={self.extra_sms} "
            f"statuses={dict(self.statuses)} timings={self.timings}"
        )


def audit(fs: FaultStack) -> Audit:
    """Check nothing was lost and nothing duplicated; raise AssertionError naming the breach.

    For every seeded user and the window:
    - reminders holds exactly one digest claim; it is ``recorded`` (and then every due
      touchpoint is in its items, or counted in ``left_out``, and each item is nudged by this
      claim only) or it is ``failed``/``expired`` with its reason;
    - the notifier holds exactly one nudge for the user, the one the claim names, in an
      accepted state, or ``failed``/``possibly_sent`` with an error message;
    - the Twilio side accepted exactly one SMS with that body for that number; more than one
      only for a message flagged ``possibly_sent`` (a send whose answer never came back), and
      never more than its number of attempts.
    """
    from services.notifier.models import RANK_STATUS

    # On FerretDB an update rewrites the whole document (read, then write), so a reaper's lease
    # racing the sweep's record can put a finished claim back to "claimed" for a moment; the
    # reaper then finishes it again (same idempotency key). Audit a settled state, not that gap.
    wait_for(lambda: settled(fs), "the window to settle again before the audit", 60)
    result = Audit(timings={k: v for k, v in fs.timings.items() if k != "opened_at"})
    prefix = "touchbase: "
    by_phone: dict[str, list[Any]] = {}
    for request in fs.twilio.snapshot():
        if request.accepted and request.body.startswith(prefix):
            by_phone.setdefault(request.to, []).append(request)
    user_ids = [u.id for u in fs.users]
    claims = {c["user_id"]: c for c in fs.read("reminders", "dispatches", {"window": WINDOW_KEY})}
    touchpoints = {
        tp["_id"]: tp for tp in fs.read("reminders", "touchpoints", {"user_id": {"$in": user_ids}})
    }
    messages: dict[str, list[Doc]] = {}
    for message in fs.read("notifier", "messages", {"purpose": "nudge"}):
        message["status"] = RANK_STATUS[int(message["status_rank"])]
        messages.setdefault(message["user_id"], []).append(message)
    seen_items: Counter[str] = Counter()
    for user in fs.users:
        due = fs.due.get(user.id, set())
        result.due += len(due)
        claim = claims.get(user.id)
        assert claim is not None, f"user {user.id}: no digest claimed for the window (lost)"
        items = [i["touchpoint_id"] for i in claim["items"]]
        seen_items.update(items)
        assert set(items) <= set(due), f"user {user.id}: a digest item that was not due"
        assert len(items) + int(claim["left_out"]) == len(due), (
            f"user {user.id}: {len(due)} due, {len(items)} in the digest, "
            f"{claim['left_out']} left out"
        )
        result.left_out += int(claim["left_out"])
        if claim["state"] != "recorded":
            assert claim["state"] in ("failed", "expired"), claim["state"]
            assert claim.get("error") or claim["state"] == "expired", claim
            result.failed_digests += 1
            continue
        result.in_digests += len(items)
        for tp_id in items:
            tp = touchpoints[tp_id]
            assert tp["state"] == "nudged", tp_id
            assert tp.get("last_claim") == claim["_id"], tp_id
            assert tp.get("nudge_count") == 1, f"{tp_id} nudged {tp.get('nudge_count')} times"
        sent = messages.get(user.id, [])
        assert len(sent) == 1, f"user {user.id}: {len(sent)} nudges queued for one window"
        message = sent[0]
        assert message["_id"] == claim.get("message_id"), "the claim names another message"
        result.statuses[message["status"]] += 1
        at_twilio = [r for r in by_phone.get(user.phone, []) if r.body == message["body"]]
        assert len(by_phone.get(user.phone, [])) == len(at_twilio), "another digest reached them"
        result.sms_at_twilio += len(at_twilio)
        if message.get("possibly_sent"):
            result.possibly_sent += 1
            assert message.get("error_message") or message["status"] in ACCEPTED, message
            assert len(at_twilio) <= int(message["attempts"]), (
                f"user {user.id}: {len(at_twilio)} SMS for {message['attempts']} attempts"
            )
            result.extra_sms += max(0, len(at_twilio) - 1)
        elif message["status"] in ACCEPTED:
            assert len(at_twilio) == 1, (
                f"user {user.id}: {len(at_twilio)} SMS at Twilio for one {message['status']} "
                "message that was never in doubt"
            )
        else:
            assert message["status"] == "failed", message
            assert message.get("error_message"), message
            assert at_twilio == [], f"user {user.id}: a failed message reached the handset"
    assert not [t for t, n in seen_items.items() if n > 1], "a touchpoint in two digests"
    return result
