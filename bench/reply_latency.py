"""Benchmark: reply latency, from an inbound Twilio webhook to the TwiML answer (issue #8).

The subject is the whole system as real processes on loopback (the development database,
contacts, reminders and the notifier in sandbox mode). Signed-in users each have contacts and a
digest that went out through the real pipeline (reminders derives the touchpoints from the
contacts change feed; the test clock opens the 09:00 digest window). Correctly signed webhooks,
each with its own MessageSid, then carry the replies a user sends to a digest ("MET 1 coffee", "1",
"SNOOZE 2 2w", "UNDO", "HELP", a reply naming a contact): the notifier checks the signature,
dedupes, asks contacts who the number belongs to and reminders what the reply means; reminders
resolves it against the digest and logs interactions in contacts. Each answer's latency is
recorded, one client at a time and with several concurrent clients.

The baseline, measured in the same run with the same requests and concurrency: a minimal
aiohttp app in its own process that checks the same Twilio signature with the same
``RequestValidator`` and answers a fixed TwiML body.

    .venv/bin/python -m bench.reply_latency [--webhooks 240] [--concurrency 1 8] [--json PATH]
    .venv/bin/python -m bench.reply_latency --quick --json /tmp/reply.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pymongo import MongoClient
from twilio.request_validator import RequestValidator

from bench.report import (
    database_of,
    engine_label,
    engines,
    mongo_java_server_caveat,
    used_ferretdb,
    used_mongo_java_server,
)
from services.reminders.settings import RemindersSettings
from shared.devdb import DevDatabase, die_with_parent, free_port
from tests.support.http import Http, request_json, wait_for
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
FIGURE = "reply latency"
GOAL_P99_MS = 250.0
# The same instants as the fault suite: users sign in on a Monday 07:00 in New York (+1 212
# numbers live there); each contact's "first touch" follow-up is due 72 hours later, so the
# Thursday 09:00 digest carries them.
START = "2026-03-02T12:00:00Z"
BEFORE_WINDOW = "2026-03-05T13:00:00Z"
WINDOW_AT = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)
OPEN_WINDOW = "2026-03-05T14:00:05Z"
WEBHOOK_TOKEN = "bench-sandbox-auth-token-0123456789abcdef"
# Signs in only to put the reminders job intervals back to production defaults after seeding.
OPERATOR_PHONE = "+12125559000"
SANDBOX_NUMBER = "+15005550006"
WEBHOOK_PATH = "/webhooks/twilio/sms"
CONTACT_NAMES = ("Dana Lee", "Sam Ortiz", "Kim Park", "Alex Chen", "Jo Rivera", "Max Brown")
FIXED_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Logged touch with Dana Lee. '
    "Next check-in in ~30 days. UNDO to revert.</Message></Response>"
)

# The replies each user sends, in this order, again and again. What a correct answer starts
# with (an answer that does not is counted as unexpected; the notifier's "we'll text you back"
# acknowledgement after its reply timeout is counted as deferred).
MIX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("MET 1 coffee", ("Logged 1-2-1 with",)),
    ("1", ("Logged touch with",)),
    ("SNOOZE 2 2w", ("Snoozed ", "Nothing is due for")),
    ("UNDO", ("Undone: ",)),
    ("HELP", ("touchbase: reminders to keep in touch",)),
    ("MET Kim Park lunch", ("Logged 1-2-1 with Kim Park",)),
)
ACK_PREFIX = "Got it. We'll text you back shortly."


# -- the baseline: a fixed TwiML answer behind the same signature check ----------------------


def baseline_app(token: str) -> web.Application:
    """Checks the Twilio signature exactly as the notifier does and answers a fixed TwiML."""
    validator = RequestValidator(token)

    async def webhook(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not validator.validate(url, params, signature):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        return web.Response(text=FIXED_TWIML, content_type="text/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", healthz)
    return app


class BaselineProcess:
    """The baseline app in its own process, like the notifier it stands beside."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"baseline-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Spawn it and wait until it answers."""
        cmd = [sys.executable, "-m", "bench.reply_latency", "--serve-baseline", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the baseline app exited at start: " + self.log_path.read_text())
            try:
                status, _ = request_json("GET", self.url + "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the baseline app did not start")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def serve_baseline(port: int) -> None:
    """Run the baseline app in the foreground (the child process of :class:`BaselineProcess`)."""
    web.run_app(
        baseline_app(WEBHOOK_TOKEN), host="127.0.0.1", port=port, access_log=None, print=None
    )


# -- seeding: users, contacts and a digest, all through the public APIs ----------------------


@dataclass
class User:
    """A signed-in user whose digest went out."""

    id: str
    phone: str
    token: str


def _outbox(stack: Stack, phone: str, purpose: str) -> list[dict[str, Any]]:
    status, body = stack.internal(
        "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=20"
    )
    assert status == 200, body
    return [m for m in body["items"] if m["purpose"] == purpose]


def _sign_in(stack: Stack, phone: str, contacts: int = 0) -> User:
    api = stack.url("contacts")
    status, started = request_json("POST", api + "/v1/auth/otp/start", {"phone": phone})
    assert status == 202, started
    sms = wait_for(lambda: _outbox(stack, phone, "otp"), "the sign-in code", 60)
    code = re.search(r"\b(\d{6})\b", sms[0]["body"])
    assert code, "no code in the sign-in SMS"
    status, tokens = request_json(
        "POST",
        api + "/v1/auth/otp/verify",
        {"challenge_id": started["challenge_id"], "code": code.group(1)},
    )
    assert status == 200, tokens
    http = Http(tokens["access_token"])
    status, me = http("PATCH", api + "/v1/me", {"time_zone": "America/New_York"})
    assert status == 200, me
    for n in range(contacts):
        name = CONTACT_NAMES[n] if n < len(CONTACT_NAMES) else f"Pat Number{n}"
        status, created = http("POST", api + "/v1/contacts", {"name": name, "tier": "ABC"[n % 3]})
        assert status == 201, created
    return User(tokens["user"]["id"], phone, tokens["access_token"])


def _reminders_db(stack: Stack) -> tuple[MongoClient[dict[str, Any]], Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.procs["reminders"].env["MONGODB_URI"], serverSelectionTimeoutMS=5000
    )
    return client, client[stack.procs["reminders"].env["DB_NAME"]]


def progress(text: str) -> None:
    """A progress line on stderr (stdout carries the summary)."""
    print(f"reply_latency: {text}", file=sys.stderr, flush=True)


def seed(stack: Stack, users: int, contacts: int) -> list[User]:
    """Sign users in, give each contacts, and send each a digest through the real pipeline."""
    phones = [f"+1212555{3000 + i:04d}" for i in range(users)]
    with ThreadPoolExecutor(8) as pool:
        seeded = list(pool.map(partial(_sign_in, stack, contacts=contacts), phones))
    progress(f"{users} users signed in with {contacts} contacts each")
    client, db = _reminders_db(stack)
    try:
        ids = [u.id for u in seeded]

        def derived() -> bool:
            found = db.touchpoints.count_documents({"user_id": {"$in": ids}, "source": "followup"})
            return bool(found >= users * contacts)

        wait_for(derived, "reminders to derive every contact's follow-up", 120)
        progress("reminders derived every follow-up")
        stack.set_clock(BEFORE_WINDOW)

        def scheduled() -> bool:
            docs = list(db.users.find({"_id": {"$in": ids}}))
            return len(docs) == users and all(
                d.get("next_digest_at") is not None
                and d["next_digest_at"].replace(tzinfo=UTC) == WINDOW_AT
                for d in docs
            )

        wait_for(scheduled, "every user's next digest at 09:00 local", 120)
        progress("every user's next digest is at 09:00 local; opening the window")
        stack.set_clock(OPEN_WINDOW)

        def recorded() -> bool:
            docs = list(db.users.find({"_id": {"$in": ids}}))
            return len(docs) == users and all(
                len((d.get("last_digest") or {}).get("items") or []) >= 2 for d in docs
            )

        wait_for(recorded, "every user's digest to be recorded", 120)
        progress("every digest recorded")
    finally:
        client.close()
    for user in seeded:
        wait_for(partial(_outbox, stack, user.phone, "nudge"), "the digest SMS", 60)
    return seeded


def production_job_intervals(stack: Stack) -> dict[str, float]:
    """Put reminders' job intervals back to their defaults (seeding ran them every 0.5 s).

    Their background work (change feed sync, digest sweep) competes with replies for the
    database, so the measurement runs at the intervals production runs at.
    """
    operator = _sign_in(stack, OPERATOR_PHONE)
    fields = RemindersSettings.model_fields
    timings = {
        job: float(fields[f"{job}_interval_s"].default)
        for job in ("sync", "sweep", "retry", "reap", "reconcile")
    }
    status, body = Http(operator.token)("PUT", stack.url("reminders") + "/admin/v1/jobs", timings)
    assert status == 200, body
    running: dict[str, float] = body["running"]
    assert all(running[job] == seconds for job, seconds in timings.items() if job in running)
    return running


def collection_sizes(stack: Stack) -> dict[str, int]:
    """Documents in the collections the reply path reads, per service database."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        stack.procs["contacts"].env["MONGODB_URI"], serverSelectionTimeoutMS=5000
    )
    sizes: dict[str, int] = {}
    try:
        for service in ("contacts", "reminders", "notifier"):
            db = client[stack.procs[service].env["DB_NAME"]]
            for name in sorted(db.list_collection_names()):
                sizes[f"{service}.{name}"] = int(db[name].estimated_document_count())
    finally:
        client.close()
    return sizes


# -- driving webhooks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One prepared, signed webhook request."""

    kind: str
    round: int  # which pass through the mix (every user sends each reply once per round)
    params: dict[str, str]
    signature: str


def plan(
    phones: list[str], count: int, concurrency: int, url: str, offset: int
) -> list[list[Webhook]]:
    """``count`` signed webhooks split over ``concurrency`` clients.

    Each client owns whole users (one user's texts never overlap, as a person's would not) and
    each user sends the mix in order; request ``i`` goes to user ``i % users``.
    """
    validator = RequestValidator(WEBHOOK_TOKEN)
    per_client: list[list[Webhook]] = [[] for _ in range(concurrency)]
    for i in range(offset, offset + count):
        user = i % len(phones)
        text = MIX[(i // len(phones)) % len(MIX)][0]
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": text,
            "To": SANDBOX_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": phones[user],
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(url, params)
        per_client[user % concurrency].append(
            Webhook(text, (i - offset) // (len(phones) * len(MIX)), params, signature)
        )
    return per_client


@dataclass
class Sample:
    """One answered (or failed) webhook."""

    kind: str
    round: int
    ms: float
    outcome: str  # ok, deferred, unexpected, error


def _outcome(kind: str, status: int, body: str, baseline: bool) -> str:
    if status != 200:
        return "error"
    if baseline:
        return "ok" if body == FIXED_TWIML else "unexpected"
    match = re.search(r"<Message>(.*)</Message>", body, re.S)
    text = match.group(1) if match else ""
    if text.startswith(ACK_PREFIX.replace("'", "&apos;")) or text.startswith(ACK_PREFIX):
        return "deferred"
    expected = dict(MIX)[kind]
    return "ok" if text.startswith(expected) else "unexpected"


async def drive(
    url: str, clients: list[list[Webhook]], baseline: bool
) -> tuple[list[Sample], float]:
    """Post every client's webhooks in order, the clients concurrently; return samples, wall s."""
    samples: list[Sample] = []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=len(clients))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def client(hooks: list[Webhook]) -> None:
            for hook in hooks:
                headers = {"X-Twilio-Signature": hook.signature}
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=hook.params, headers=headers) as resp:
                        body = await resp.text()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status, body = 0, ""
                elapsed = (time.perf_counter() - t0) * 1000
                samples.append(
                    Sample(
                        hook.kind, hook.round, elapsed, _outcome(hook.kind, status, body, baseline)
                    )
                )

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in clients if c))
        wall = time.perf_counter() - started
    return samples, wall


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summarize(samples: list[Sample], wall: float, round_size: int) -> dict[str, Any]:
    """Latency percentiles, throughput and outcome counts of one measured series."""
    ms = [s.ms for s in samples]
    outcomes: dict[str, int] = defaultdict(int)
    for s in samples:
        outcomes[s.outcome] += 1
    by_kind: dict[str, dict[str, float]] = {}
    for kind, _ in MIX:
        values = [s.ms for s in samples if s.kind == kind]
        if values:
            by_kind[kind] = {
                "n": len(values),
                "p50_ms": round(percentile(values, 50), 2),
                "p99_ms": round(percentile(values, 99), 2),
            }
    rounds: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        rounds[s.round].append(s.ms)
    complete = sorted(r for r, values in rounds.items() if len(values) == round_size)
    return {
        "requests": len(samples),
        "ok": outcomes["ok"],
        "deferred": outcomes["deferred"],
        "unexpected": outcomes["unexpected"],
        "errors": outcomes["error"],
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(samples) / wall, 2) if wall > 0 else 0.0,
        # The first and last complete pass through the mix: the data grows as replies are
        # logged, the mix of replies stays the same.
        "rounds": len(complete),
        "first_round_mean_ms": round(statistics.fmean(rounds[complete[0]]), 2)
        if complete
        else None,
        "last_round_mean_ms": round(statistics.fmean(rounds[complete[-1]]), 2)
        if complete
        else None,
        "by_kind": by_kind,
    }


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time a process has used so far (Linux; 0.0 elsewhere)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    subject_url: str,
    baseline_url: str,
    phones: list[str],
    args: argparse.Namespace,
    pids: dict[str, int | None],
    sizes: Callable[[], dict[str, int]],
) -> list[dict[str, Any]]:
    """For each concurrency: the baseline, then the subject, with the same request mix.

    ``pids`` names the processes whose CPU time per reply is reported (None: this process);
    ``sizes`` counts the documents each level starts with (later levels see more data).
    """
    offset = 0
    if args.warmup:
        # Connections, imports and caches in every process warm; not recorded.
        for url, is_base in ((baseline_url, True), (subject_url, False)):
            await drive(url, plan(phones, args.warmup, 1, url, offset), is_base)
        offset += args.warmup
    levels = []
    for concurrency in args.concurrency:
        level: dict[str, Any] = {"concurrency": concurrency, "collections_at_start": sizes()}
        for name, url, is_base in (
            ("baseline", baseline_url, True),
            ("subject", subject_url, False),
        ):
            clients = plan(phones, args.webhooks, concurrency, url, offset)
            cpu_before = {proc: cpu_seconds(pid) for proc, pid in pids.items()}
            samples, wall = await drive(url, clients, is_base)
            level[name] = summarize(samples, wall, len(phones) * len(MIX))
            if not is_base:
                # Where the work goes: CPU milliseconds per reply in each process.
                level[name]["cpu_ms_per_reply"] = {
                    proc: round((cpu_seconds(pid) - cpu_before[proc]) * 1000 / len(samples), 2)
                    for proc, pid in pids.items()
                }
        offset += args.webhooks
        level["ratio_p99"] = round(level["subject"]["p99_ms"] / level["baseline"]["p99_ms"], 2)
        level["ratio_throughput"] = round(
            level["subject"]["throughput_rps"] / level["baseline"]["throughput_rps"], 3
        )
        level["goal_met"] = bool(level["subject"]["p99_ms"] < GOAL_P99_MS)
        levels.append(level)
        progress(_level_line(level))
    return levels


def _level_line(level: dict[str, Any]) -> str:
    s, b = level["subject"], level["baseline"]
    return (
        f"c={level['concurrency']}: reply p50/p95/p99 {s['p50_ms']:.0f}/{s['p95_ms']:.0f}/"
        f"{s['p99_ms']:.0f} ms, {s['throughput_rps']:.1f}/s "
        f"(ok {s['ok']}, deferred {s['deferred']}, unexpected {s['unexpected']}, "
        f"errors {s['errors']}); fixed TwiML p50/p99 {b['p50_ms']:.1f}/{b['p99_ms']:.1f} ms, "
        f"{b['throughput_rps']:.0f}/s; p99 ratio {level['ratio_p99']:.1f}x; "
        f"CPU ms per reply {s['cpu_ms_per_reply']}"
    )


def stack_env() -> dict[str, dict[str, str]]:
    """Service settings for the run: production defaults except what seeding needs.

    Reminders runs its jobs every 0.5 s while seeding (until :func:`production_job_intervals`);
    the notifier's limits are raised because each user texts far more than any person would.
    """
    return {
        "contacts": {
            # Every user signs in from the one loopback address.
            "OTP_MAX_PER_IP": "100000",
            "OTP_MAX_PER_PHONE": "1000",
            "OPERATOR_PHONES": OPERATOR_PHONE,
            "CHANGE_FEED_LAG_S": "0.5",
        },
        "reminders": {"SYNC_INTERVAL_S": "0.5", "SWEEP_INTERVAL_S": "0.5"},
        "notifier": {
            "TWILIO_SANDBOX_AUTH_TOKEN": WEBHOOK_TOKEN,
            "SANDBOX_NUMBER": SANDBOX_NUMBER,
            "INBOUND_RATE_PER_MINUTE": "10000",
            "INBOUND_BURST": "10000",
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One complete measurement: start everything, seed, measure, stop everything."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="touchbase-reply-") as tmp:
        logs = Path(tmp)
        db = DevDatabase(data_dir=logs / "db", persistent=False)
        stack: Stack | None = None
        baseline = BaselineProcess(logs)
        try:
            uri = db.start()
            prefix = f"bench_reply_{uuid.uuid4().hex[:8]}"
            stack = Stack(uri, prefix, logs, extra_env=stack_env(), clock_start=START)
            stack.start()
            baseline.start()
            seed_began = time.monotonic()
            users = seed(stack, args.users, args.contacts)
            intervals = production_job_intervals(stack)
            progress(f"reminders jobs back to production intervals: {intervals}")
            seed_s = time.monotonic() - seed_began
            before = collection_sizes(stack)
            phones = [u.phone for u in users]
            subject_url = stack.url("notifier") + WEBHOOK_PATH
            baseline_url = baseline.url + WEBHOOK_PATH
            pids: dict[str, int | None] = {
                name: proc.process.pid if proc.process else None
                for name, proc in stack.procs.items()
            }
            pids["database"] = db.process.pid if db.process else None
            pids["benchmark client"] = None
            levels = asyncio.run(
                measure(
                    subject_url, baseline_url, phones, args, pids, partial(collection_sizes, stack)
                )
            )
            after = collection_sizes(stack)
            tracebacks = {n: p.logs().count("Traceback") for n, p in stack.procs.items()}
        finally:
            baseline.stop()
            if stack is not None:
                stack.stop()
            db.close()
    return {
        "figure": FIGURE,
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": db.kind,
            "database_description": db.description,
        },
        "config": {
            "webhooks": args.webhooks,
            "concurrency": list(args.concurrency),
            "users": args.users,
            "contacts": args.contacts,
            "warmup": args.warmup,
            "quick": bool(args.quick),
            "mix": [text for text, _ in MIX],
            "reminders_job_intervals_s": intervals,
        },
        "command": command_line(args),
        "goal_p99_ms": GOAL_P99_MS,
        "levels": levels,
        "goal_met": all(level["goal_met"] for level in levels),
        "collections_before": before,
        "collections_after": after,
        "tracebacks": tracebacks,
        "seed_s": round(seed_s, 1),
        "total_s": round(time.monotonic() - began, 1),
    }


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    if args.quick:
        return ".venv/bin/python -m bench.reply_latency --quick"
    return (
        f".venv/bin/python -m bench.reply_latency --webhooks {args.webhooks} --concurrency "
        f"{' '.join(str(c) for c in args.concurrency)} --users {args.users} "
        f"--contacts {args.contacts}"
    )


# -- the Markdown section ---------------------------------------------------------------------


# The reply path's lookups that use a non-unique index (built by MongoDB, not by
# mongo-java-server).
REPLY_SCANS = "a contact's open touchpoints, the latest UNDO"


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _cell(values: list[float], digits: int = 0) -> str:
    """Median and, over several runs, the min-max range."""
    text = f"{_median(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    return text


def render(runs: list[dict[str, Any]]) -> str:
    """The Markdown section for docs/BENCHMARKS.md from one or more runs of this module."""
    first = runs[0]
    cfg, meta = first["config"], first["meta"]
    lines = [
        f"## Reply latency: inbound webhook to TwiML ({len(runs)} run{'s' * (len(runs) > 1)})",
        "",
        f"Workload: {cfg['users']} signed-in users with {cfg['contacts']} contacts each and a "
        "digest sent through the real pipeline; per concurrency level "
        f"{cfg['webhooks']} correctly signed webhooks (each its own MessageSid) after "
        f"{cfg['warmup']} unrecorded warm-up requests. Each user sends, in order: "
        + ", ".join(f"`{m}`" for m in cfg["mix"])
        + ". Each client owns whole users; the clients run concurrently. The levels run one "
        "after the other on the same data, so later levels start with more of it (see "
        "Scaling). Subject: contacts, "
        "reminders and the notifier (sandbox transport) as separate processes on "
        f"{' / '.join(engine_label(kind) for kind in engines(runs))}. "
        "Baseline, same run, same requests: an aiohttp app in its own process that checks the "
        "same signature with twilio's `RequestValidator` and answers a fixed TwiML.",
        "",
        f"Command: `{first['command']}`  ",
        f"Machine: {meta['machine']}, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"database {database_of(runs)}. Figures: median of the runs (min-max).",
        "",
        "| clients | reply p50 ms | p95 ms | p99 ms | replies/s | fixed TwiML p50 ms | p99 ms "
        "| /s | p99 ratio | goal p99 < 250 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    concurrencies = [level["concurrency"] for level in first["levels"]]
    for index, concurrency in enumerate(concurrencies):
        levels = [r["levels"][index] for r in runs]
        subj = [lv["subject"] for lv in levels]
        base = [lv["baseline"] for lv in levels]
        p99 = _median([s["p99_ms"] for s in subj])
        met = "met" if p99 < GOAL_P99_MS else "**not met**"
        lines.append(
            f"| {concurrency} | {_cell([s['p50_ms'] for s in subj])} | "
            f"{_cell([s['p95_ms'] for s in subj])} | {_cell([s['p99_ms'] for s in subj])} | "
            f"{_cell([s['throughput_rps'] for s in subj], 1)} | "
            f"{_cell([b['p50_ms'] for b in base], 1)} | {_cell([b['p99_ms'] for b in base], 1)} | "
            f"{_cell([b['throughput_rps'] for b in base])} | "
            f"{_cell([lv['ratio_p99'] for lv in levels], 1)}x | {met} |"
        )
    bad = {
        key: sum(lv["subject"][key] for r in runs for lv in r["levels"])
        for key in ("deferred", "unexpected", "errors")
    }
    lines += ["", _verdict(runs, concurrencies)]
    lines += [
        "",
        f"Answers across all runs: {bad['errors']} errors, {bad['deferred']} deferred (the "
        "notifier's acknowledgement when reminders has not answered within its reply timeout, "
        "8 s by default; such an answer's latency is the timeout, which caps the tail), "
        f"{bad['unexpected']} unexpected texts.",
        "",
        "p99 by reply (ms, median of runs):",
        "",
        "| clients | " + " | ".join(f"`{m}`" for m in cfg["mix"]) + " |",
        "| ---: | " + " | ".join("---:" for _ in cfg["mix"]) + " |",
    ]
    for index, concurrency in enumerate(concurrencies):
        cells = []
        for kind in cfg["mix"]:
            values = [
                r["levels"][index]["subject"]["by_kind"][kind]["p99_ms"]
                for r in runs
                if kind in r["levels"][index]["subject"]["by_kind"]
            ]
            cells.append(_cell(values))
        lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
    procs = list(first["levels"][0]["subject"].get("cpu_ms_per_reply", {}))
    if procs:
        lines += [
            "",
            "Where the work goes: CPU milliseconds per reply in each process (median of runs; "
            "background jobs running meanwhile included):",
            "",
            "| clients | " + " | ".join(procs) + " |",
            "| ---: | " + " | ".join("---:" for _ in procs) + " |",
        ]
        for index, concurrency in enumerate(concurrencies):
            cells = [
                _cell([r["levels"][index]["subject"]["cpu_ms_per_reply"][p] for r in runs], 1)
                for p in procs
            ]
            lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
    lines += ["", "### Scaling (10x data)", "", _scaling(runs), ""]
    if used_ferretdb(runs):
        lines += [
            "FerretDB caveat: these runs use FerretDB v1 on SQLite, which scans a whole "
            "collection for every query (a lone `_id` equality scans in SQLite, the rest in Go). "
            "The lookups the reply path makes by "
            "user, contact or phone (a contact's open touchpoints, the latest UNDO, a contact by "
            "user and id, the user by phone) therefore cost time in proportion to the whole "
            "collection, every user's documents included; on MongoDB they use the services' "
            "indexes and cost the same at any size.",
            "",
        ]
    if used_mongo_java_server(runs):
        lines += [
            mongo_java_server_caveat(REPLY_SCANS)
            + " The user by phone (a unique index) and lookups by `_id` stay indexed; on "
            "MongoDB every lookup of the reply path uses the services' indexes and costs the "
            "same at any size.",
            "",
        ]
    return "\n".join(lines)


def _verdict(runs: list[dict[str, Any]], concurrencies: list[int]) -> str:
    """Whether the goal is met and, where not, what the measurements say about why."""
    missed = []
    for index, concurrency in enumerate(concurrencies):
        subj = [r["levels"][index]["subject"] for r in runs]
        p99 = _median([s["p99_ms"] for s in subj])
        if p99 < GOAL_P99_MS:
            continue
        rps = _median([s["throughput_rps"] for s in subj])
        db = [s.get("cpu_ms_per_reply", {}).get("database") for s in subj]
        db_ms = _median([v for v in db if v is not None])
        missed.append(
            f"with {concurrency} client(s) p99 is {p99:.0f} ms; the system answered "
            f"{rps:.1f} replies/s"
            + (
                f", so {concurrency} clients each waiting for their answer see about "
                f"{concurrency / rps * 1000:.0f} ms on average (clients / throughput)"
                if concurrency > 1 and rps > 0
                else ""
            )
            + (f", and the database server spent {db_ms:.0f} CPU ms on each reply" if db else "")
        )
    if not missed:
        return f"Goal p99 < {GOAL_P99_MS:.0f} ms: met at every concurrency measured."
    return (
        f"Goal p99 < {GOAL_P99_MS:.0f} ms: **not met** - "
        + "; ".join(missed)
        + ". The fixed-TwiML baseline shows that the webhook, its signature check and the HTTP "
        "stack cost a few milliseconds; the rest is the reply's work in contacts, reminders and "
        "above all the database."
    )


def _scaling(runs: list[dict[str, Any]]) -> str:
    last = runs[-1]
    before, after = last["collections_before"], last["collections_after"]
    grown = sorted(
        ((after[k] - before.get(k, 0), k) for k in after if after[k] > before.get(k, 0)),
        reverse=True,
    )
    growth = ", ".join(f"{k} {before.get(k, 0)} -> {after[k]}" for _, k in grown[:5])
    drift = []
    for level in last["levels"]:
        s = level["subject"]
        if s["rounds"] >= 2:
            drift.append(
                f"{level['concurrency']} client(s): {s['first_round_mean_ms']:.0f} ms in the "
                f"first pass, {s['last_round_mean_ms']:.0f} ms in the last of {s['rounds']}"
            )
    keys = ("reminders.touchpoints", "reminders.undo", "contacts.changes", "notifier.inbound")
    starts = "; ".join(
        f"{level['concurrency']} client(s): "
        + ", ".join(f"{k} {level['collections_at_start'].get(k, 0)}" for k in keys)
        for level in last["levels"]
        if "collections_at_start" in level
    )
    cpu = last["levels"][0]["subject"].get("cpu_ms_per_reply", {})
    total = sum(cpu.values())
    share = (
        f"The database server used {cpu['database']:.0f} of the {total:.0f} CPU ms each reply "
        f"cost at {last['levels'][0]['concurrency']} client(s) "
        f"({cpu['database'] / total:.0%}), so database work dominates the latency. "
        if total and "database" in cpu
        else ""
    )
    return (
        "Each reply makes a fixed number of database round trips and internal HTTP calls, so "
        "on MongoDB with the services' indexes its cost does not depend on how many users, "
        "contacts or past replies exist. "
        + _scan_growth(runs)
        + share
        + f"The run itself adds data as replies are logged ({growth}); mean latency per pass "
        "through the same mix of replies: "
        + ("; ".join(drift) or "too few passes in this run to tell")
        + (f". Documents when each level started: {starts}" if starts else "")
        + ". Ten times the users and contacts means about ten times the documents in the "
        "touchpoint, contact, undo and change-feed collections each scan reads, so expect the "
        "scanning part of each reply's database work to grow about tenfold"
        + (" on FerretDB" if used_ferretdb(runs) else "")
        + (" on mongo-java-server" if used_mongo_java_server(runs) else "")
        + " (and throughput to fall accordingly), while the HTTP hops and Python work stay the "
        "same; `--users 80` measures it directly (a run of well over ten minutes on this "
        "machine)."
    )


def _scan_growth(runs: list[dict[str, Any]]) -> str:
    """Which of the reply path's queries scan on the engine the runs used."""
    if used_ferretdb(runs):
        return (
            "On FerretDB every query scans its whole collection (a lone `_id` equality in "
            "SQLite, the rest in Go), so the cost grows with the data of all users. "
        )
    if used_mongo_java_server(runs):
        return (
            "On mongo-java-server the lookups by user or contact (a contact's open touchpoints, "
            "the latest UNDO) scan their collection in memory, since it builds no non-unique "
            "secondary index, so their cost grows with the data of all users. "
        )
    return ""


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    parser.add_argument("--json", type=Path, help="write the results as one JSON object here")
    parser.add_argument("--webhooks", type=int, default=None, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--contacts", type=int, default=6, help="per user (at least 3)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.webhooks is None:
        # Five passes of the mix for 8 users: a full run stays near three minutes on the
        # 2-core machine (the data, and so each reply's cost, grows as the run goes on).
        args.webhooks = 30 if args.quick else 240
    if args.warmup is None:
        args.warmup = 12 if args.quick else 48
    if args.quick and args.users == 8:
        args.users = 4
    if args.quick:
        args.concurrency = [c for c in args.concurrency if c <= 4] or [1]
        args.concurrency = sorted({*args.concurrency, min(4, args.users)})
    if args.contacts < 3:
        # The replies refer to digest items 1 and 2 and name the third contact.
        parser.error("--contacts must be at least 3")
    if max(args.concurrency) > args.users:
        parser.error("--users must be at least the largest --concurrency (a client owns users)")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one measurement, print a summary, optionally write JSON; exit 1 on failed replies."""
    args = parse_args(argv)
    # A SIGTERM (a timeout, the orchestrator giving up) unwinds like Ctrl-C, so every process
    # started here is stopped and the temporary data removed.
    signal.signal(signal.SIGTERM, _terminate)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    try:
        result = run(args)
    except KeyboardInterrupt:
        progress("interrupted; everything it started is stopped")
        return 130
    print(render([result]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    failed = sum(lv["subject"]["errors"] + lv["baseline"]["errors"] for lv in result["levels"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
