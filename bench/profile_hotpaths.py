"""Benchmark: where the services spend their CPU under load, sampled with py-spy.

Each workload runs on loopback against one database server (``shared.devdb.DevDatabase``) with
the service under study as a real process, while ``py-spy record --pid <service pid> --format
raw`` samples that process (idle stacks left out unless ``--idle``):

* ``contacts_list`` / ``contacts_create``: a book of ``--contacts`` contacts (default 1,000) for
  one user (a few created through the API, the rest copies of one of them in the database);
  then ``--clients`` clients (default 50) list pages of 50 (every page of the book in turn)
  for ``--seconds`` (default 20), then create contacts for as long.
* ``notifier_ingest`` / ``notifier_drain``: up to ``--messages`` messages (default 2,000) queued
  through ``POST /internal/v1/messages`` for at most ``--seconds`` with the worker off; then a
  second notifier process on the same database drains them at ``SEND_RATE_PER_SECOND`` =
  ``--send-rate`` (default 500) through the twilio SDK to a local stand-in of Twilio.
* ``reminders_sweep``: ``--users`` users (default 1,000) with ``--per-user`` due touchpoints; the
  reminders process (test mode, controllable clock) runs its sweep job, triggered by setting the
  job's interval through ``PUT /admin/v1/jobs``, handing digests to a notifier stand-in; sampled
  until every digest is recorded or for at most ``--sweep-seconds`` (default 60).

The collapsed stacks are aggregated into the share of samples per area (database driver, HTTP,
JSON, pydantic, JWT, logging, our own code by module, ...) and the top functions of our own code
(``services/``, ``shared/``) by self and inclusive time. Raw profiles stay in a temporary
directory (``--keep`` prints where and keeps them).

    .venv/bin/python -m bench.profile_hotpaths [--quick] [--json PATH] [--only contacts,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient

from bench.report import (
    database_of,
    median_range,
    mongo_java_server_caveat,
    used_ferretdb,
    used_mongo_java_server,
)
from shared.auth import issue_access_token, issue_service_token
from shared.devdb import DevDatabase, die_with_parent, free_port
from tests.support.processes import ServiceProcess, service_process

ROOT = Path(__file__).resolve().parents[1]
INTERNAL_SECRET = "bench-internal-secret-0123456789abcdef"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef-xyz"
TWILIO_TOKEN = "bench-twilio-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "e" * 32
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
# Zones where 12:00 UTC is daytime (outside the default quiet hours).
ZONES = ("Europe/London", "Europe/Paris", "Africa/Lagos", "Asia/Dubai", "America/Sao_Paulo")
PAGE = 50
COMMAND = ".venv/bin/python -m bench.profile_hotpaths"
WORKLOADS = (
    "contacts_list",
    "contacts_create",
    "notifier_ingest",
    "notifier_drain",
    "reminders_sweep",
)
GROUPS = {"contacts": WORKLOADS[:2], "notifier": WORKLOADS[2:4], "reminders": WORKLOADS[4:]}
TOP = 10

# --- py-spy -----------------------------------------------------------------------------------


def py_spy() -> str:
    """The py-spy executable next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed (it is pinned in constraints.txt)")
    return found


class Recorder:
    """``py-spy record`` attached to one process, writing collapsed stacks until stopped."""

    def __init__(self, pid: int, out: Path, rate: int, idle: bool, cap_s: float) -> None:
        self.out = out
        self.log = out.with_suffix(".log")
        cmd = [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--duration",
            str(int(cap_s)),
            "--full-filenames",
            "-o",
            str(out),
        ]
        if idle:
            cmd.append("--idle")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        self.started = time.monotonic()
        self.seconds = 0.0

    async def attached(self, timeout_s: float = 15.0) -> None:
        """Wait until py-spy says it is sampling."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "Sampling process" in self.log.read_text(errors="replace"):
                self.started = time.monotonic()
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        self.stop()
        raise RuntimeError("py-spy did not attach:\n" + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        """Stop sampling (SIGINT makes py-spy write its file) and wait for it."""
        self.seconds = time.monotonic() - self.started
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def errors(self) -> int:
        """Samples py-spy could not take, from its own summary line."""
        found = re.search(r"Errors: (\d+)", self.log.read_text(errors="replace"))
        return int(found.group(1)) if found else 0


# --- aggregation ------------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*):(?P<line>\d+)\)$")
OURS = re.compile(r"(?:^|/)(?P<mod>(?:services|shared)/[\w/]+)\.py$")
# Areas whose code owns whatever it calls (a JSON decode inside PyJWT is JWT time).
SPECIFIC = (
    "database driver (pymongo, bson)",
    "JWT / auth (PyJWT, hmac)",
    "pydantic validation",
    "logging",
    "JSON encode / decode",
    "twilio SDK",
    "metrics (prometheus_client)",
    "APScheduler",
)
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("/pymongo/", SPECIFIC[0]),
    ("/bson/", SPECIFIC[0]),
    ("/gridfs/", SPECIFIC[0]),
    ("/jwt/", SPECIFIC[1]),
    ("/hmac.py", SPECIFIC[1]),
    ("/cryptography/", SPECIFIC[1]),
    ("/pydantic/", SPECIFIC[2]),
    ("/pydantic_core/", SPECIFIC[2]),
    ("/logging/", SPECIFIC[3]),
    ("/json/", SPECIFIC[4]),
    ("/orjson", SPECIFIC[4]),
    ("/twilio/", SPECIFIC[5]),
    ("/prometheus_client/", SPECIFIC[6]),
    ("/apscheduler/", SPECIFIC[7]),
    ("/aiohttp/", "aiohttp / HTTP parsing"),
    ("/multidict/", "aiohttp / HTTP parsing"),
    ("/yarl/", "aiohttp / HTTP parsing"),
    ("/propcache/", "aiohttp / HTTP parsing"),
    ("/frozenlist/", "aiohttp / HTTP parsing"),
    ("/http/", "aiohttp / HTTP parsing"),
    ("/asyncio/", "asyncio event loop, sockets"),
    ("/selectors.py", "asyncio event loop, sockets"),
    ("/socket.py", "asyncio event loop, sockets"),
    ("/ssl.py", "asyncio event loop, sockets"),
)
EVENT_LOOP = "asyncio event loop, sockets"
ENTRY = {("shared.app", "run_service")}
# Leaf frames of threads blocked in a C call that py-spy's idle detection does not see through
# (the default thread pool waiting for work, the event loop waiting in epoll).
IDLE_LEAVES = {
    ("_worker", "concurrent/futures/thread.py"),
    ("wait", "threading.py"),
    ("select", "selectors.py"),
}
OTHER = "other (stdlib, start-up)"


@dataclass(frozen=True)
class Frame:
    """One frame of a collapsed stack."""

    name: str
    path: str
    line: int

    @property
    def module(self) -> str | None:
        """``services.contacts.service`` for our own code, else None (entry points included)."""
        if "site-packages" in self.path:
            return None
        found = OURS.search(self.path)
        if found is None:
            return None
        module = found.group("mod").replace("/", ".")
        # The process entry point is below every sample; it says nothing about the work.
        if module.endswith(".__main__") or (module, self.name) in ENTRY:
            return None
        return module

    @property
    def function(self) -> str:
        """``services/contacts/service.py:list_contacts`` (our code) or ``name (path)``."""
        mod = self.module
        if mod is not None:
            return f"{mod.replace('.', '/')}.py:{self.name}"
        return f"{self.name} ({self.path})"

    @property
    def area(self) -> str | None:
        """The area of this frame; None for generic standard-library code."""
        mod = self.module
        if mod is not None:
            return "ours: " + mod
        for needle, area in LIBRARIES:
            if needle in self.path:
                return area
        if "site-packages" in self.path:
            package = self.path.split("site-packages/", 1)[1].split("/", 1)[0]
            return "other library: " + package.removesuffix(".py")
        return None


def parse_frame(text: str) -> Frame:
    """A ``name (path:line)`` frame as py-spy writes it."""
    found = FRAME.match(text)
    if found is None:
        return Frame(text, "", 0)
    return Frame(found.group("name"), found.group("path"), int(found.group("line")))


def parse_collapsed(text: str) -> list[tuple[list[Frame], int]]:
    """Stacks (root first) with their sample counts from py-spy's raw output."""
    stacks: list[tuple[list[Frame], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([parse_frame(f) for f in stack.split(";")], int(count)))
    return stacks


def is_idle(frames: list[Frame]) -> bool:
    """Whether a stack is a thread waiting (see ``IDLE_LEAVES``)."""
    leaf = frames[-1]
    return any(leaf.name == name and leaf.path.endswith(path) for name, path in IDLE_LEAVES)


def task_frames(frames: list[Frame]) -> list[Frame]:
    """The frames of the asyncio callback or task a sample is in (the loop's own frames cut).

    Nothing is left of a sample taken in the loop itself (its timer heap, its ready queue).
    """
    starts = [
        i for i, f in enumerate(frames) if f.name == "_run" and f.path.endswith("asyncio/events.py")
    ]
    if starts:
        return frames[starts[-1] + 1 :]
    in_loop = [i for i, f in enumerate(frames) if "/asyncio/" in f.path]
    return frames[in_loop[-1] + 1 :] if in_loop else frames


def sample_area(frames: list[Frame]) -> str:
    """Which area one sample counts for.

    Below the deepest frame of our own code (or from the root when there is none) the first
    library of a specific kind owns the sample (``json.dumps`` inside ``web.json_response`` is
    JSON, a JSON decode inside PyJWT is JWT); otherwise the first library below our code does;
    a sample whose leaf is our code is our module's own time.
    """
    frames = task_frames(frames)
    deepest = max((i for i, f in enumerate(frames) if f.module is not None), default=-1)
    if not frames:
        return EVENT_LOOP
    if deepest == len(frames) - 1:
        return frames[-1].area or OTHER
    below = [f.area for f in frames[deepest + 1 :]]
    for area in below:
        if area in SPECIFIC:
            return area
    named = [a for a in below if a is not None]
    if deepest >= 0:
        return named[0] if named else "ours: " + str(frames[deepest].module)
    outside = [a for a in named if a != EVENT_LOOP]
    if outside:
        return outside[0]
    return EVENT_LOOP if named else OTHER


def pct(count: int, total: int) -> float:
    """``count`` as a percentage of ``total`` samples."""
    return round(100.0 * count / total, 2) if total else 0.0


def aggregate(text: str) -> dict[str, Any]:
    """Area shares and the top functions of our own code from one collapsed-stack file."""
    stacks = parse_collapsed(text)
    idle = sum(count for frames, count in stacks if is_idle(frames))
    stacks = [(frames, count) for frames, count in stacks if not is_idle(frames)]
    total = sum(count for _, count in stacks)
    areas: Counter[str] = Counter()
    inclusive_areas: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    own_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for frames, count in stacks:
        areas[sample_area(frames)] += count
        for area in {f.area for f in task_frames(frames) if f.area is not None}:
            inclusive_areas[area] += count
        ours = [f for f in frames if f.module is not None]
        if not ours:
            continue
        if frames[-1].module is not None:
            self_time[frames[-1].function] += count
        own_time[ours[-1].function] += count
        lines[f"{ours[-1].function}:{ours[-1].line}"] += count
        for name in {f.function for f in ours}:
            inclusive[name] += count

    def table(counter: Counter[str], n: int = TOP) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": c, "pct": pct(c, total)} for name, c in counter.most_common(n)
        ]

    named = {row["name"] for c in (self_time, own_time, inclusive) for row in table(c)}
    return {
        "samples": total,
        "idle_samples_dropped": idle,
        # Every function in one of the top tables, with all three shares.
        "functions": {
            name: {
                "self": pct(self_time[name], total),
                "own": pct(own_time[name], total),
                "inclusive": pct(inclusive[name], total),
            }
            for name in sorted(named)
        },
        "areas": {name: pct(c, total) for name, c in areas.most_common()},
        "areas_inclusive": {name: pct(c, total) for name, c in inclusive_areas.most_common()},
        "ours_pct": pct(sum(c for a, c in areas.items() if a.startswith("ours: ")), total),
        "top_self": table(self_time),
        "top_own": table(own_time),
        "top_inclusive": table(inclusive),
        "top_lines": table(lines),
    }


# --- load helpers -----------------------------------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on a free 127.0.0.1 port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def drive(
    total: int,
    clients: int,
    call: Callable[[aiohttp.ClientSession, int], Awaitable[int]],
    seconds: float | None = None,
) -> dict[str, Any]:
    """Run up to ``total`` calls (for at most ``seconds``) from ``clients`` concurrent workers."""
    counter = iter(range(total))
    errors = 0
    done = 0
    began = time.perf_counter()
    deadline = began + seconds if seconds else float("inf")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def worker() -> None:
            nonlocal errors, done
            for i in counter:
                status = await call(session, i)
                done += 1
                errors += status >= 400
                if time.perf_counter() >= deadline:
                    return

        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {"requests": done, "errors": errors, "seconds": elapsed, "rate": done / elapsed}


@dataclass
class Context:
    """What every workload shares: the database, a scratch directory, the profiler settings."""

    uri: str
    tmp: Path
    rate: int
    idle: bool
    cap_s: float
    log_level: str
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def env(self, db_name: str, **extra: str) -> dict[str, str]:
        """Environment of a service process under study."""
        return {
            "MONGODB_URI": self.uri,
            "DB_NAME": db_name,
            "INTERNAL_AUTH_SECRET": INTERNAL_SECRET,
            "AUTH_JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": self.log_level,
            **extra,
        }

    def recorder(self, name: str, process: ServiceProcess) -> Recorder:
        """Start sampling ``process`` into ``<tmp>/<name>.txt``."""
        assert process.process is not None
        return Recorder(process.process.pid, self.tmp / f"{name}.txt", self.rate, self.idle, 600)

    async def profile(
        self, name: str, process: ServiceProcess, work: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        """Run ``work`` while py-spy samples ``process``; keep the figures under ``name``."""
        recorder = self.recorder(name, process)
        try:
            await recorder.attached()
            figures = await work()
        finally:
            recorder.stop()
        text = recorder.out.read_text() if recorder.out.exists() else ""
        self.profiles[name] = {
            **aggregate(text),
            "seconds": round(recorder.seconds, 2),
            "errors": recorder.errors(),
            "workload": figures,
        }
        print(
            f"{name}: {self.profiles[name]['samples']} samples in {recorder.seconds:.1f} s, "
            f"{figures}",
            flush=True,
        )


# --- contacts ---------------------------------------------------------------------------------


async def contacts(ctx: Context, book: int, seconds: float, clients: int) -> None:
    """List pages of 50 from a full book, then create contacts, sampling the contacts process."""
    db_name = f"prof_contacts_{uuid.uuid4().hex[:8]}"
    service = service_process("contacts", ctx.env(db_name), ctx.tmp)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri, tz_aware=True)
    try:
        service.start(60)
        url = service.url
        user_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        await mongo[db_name]["users"].insert_one(
            {
                "_id": user_id,
                "phone": "+14155550100",
                "name": "Bench",
                "time_zone": "UTC",
                "region": "US",
                "locale": "en",
                "created_at": now,
                "updated_at": now,
            }
        )
        token = issue_access_token(JWT_SECRET, user_id, "networker", ttl=timedelta(hours=2))
        auth = {"Authorization": f"Bearer {token}"}

        def creator(offset: int) -> Callable[[aiohttp.ClientSession, int], Awaitable[int]]:
            async def create(s: aiohttp.ClientSession, i: int) -> int:
                body = {
                    "name": f"Contact {offset + i:05d}",
                    "company": "Acme",
                    "tier": "ABC"[i % 3],
                    "tags": ["bench"],
                }
                async with s.post(url + "/v1/contacts", json=body, headers=auth) as r:
                    await r.read()
                    return r.status

            return create

        # A few contacts through the API; the rest of the book are copies of one of them with
        # their own ids and names, so every document has exactly the shape the service writes.
        seeded = await drive(min(book, clients), clients, creator(0))
        if seeded["errors"]:
            raise RuntimeError(f"seeding the book failed: {seeded}")
        col = mongo[db_name]["contacts"]
        model = await col.find_one({"user_id": user_id})
        assert model is not None
        copies = []
        for i in range(seeded["requests"], book):
            name = f"Contact {i:05d}"
            copies.append({**model, "_id": uuid.uuid4().hex, "name": name})
            copies[-1]["name_norm"] = name.lower()
        if copies:
            await col.insert_many(copies, ordered=False)
        # The cursor of every page, from one walk through the book; the clients then ask for
        # pages all over it, as many users paging at once would.
        cursors: list[str] = [""]
        async with aiohttp.ClientSession() as s:
            while len(cursors) < -(-book // PAGE):
                query = f"?limit={PAGE}&cursor={cursors[-1]}" if cursors[-1] else f"?limit={PAGE}"
                async with s.get(url + "/v1/contacts" + query, headers=auth) as r:
                    nxt = (await r.json()).get("next")
                if not nxt:
                    break
                cursors.append(nxt)

        async def page(s: aiohttp.ClientSession, i: int) -> int:
            cursor = cursors[i % len(cursors)]
            query = f"?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
            async with s.get(url + "/v1/contacts" + query, headers=auth) as r:
                items = (await r.json()).get("items", [])
                return r.status if len(items) > 0 else 599

        async def listing() -> dict[str, Any]:
            out = await drive(10**9, clients, page, seconds)
            return {**out, "book": book, "pages_in_book": len(cursors)}

        await ctx.profile("contacts_list", service, listing)
        await ctx.profile(
            "contacts_create", service, lambda: drive(10**9, clients, creator(book), seconds)
        )
    finally:
        service.stop()
        await mongo.drop_database(db_name)
        await mongo.close()


# --- notifier ---------------------------------------------------------------------------------


class TwilioStandIn:
    """Twilio's Messages endpoint: holds every request until opened, then accepts all."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.open = asyncio.Event()

    def app(self) -> web.Application:
        """The stand-in's routes."""

        async def create(request: web.Request) -> web.Response:
            await request.post()
            await self.open.wait()
            self.arrivals.append(time.monotonic())
            return web.json_response(
                {"sid": "SM" + uuid.uuid4().hex, "status": "queued"}, status=201
            )

        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
        return app


async def notifier(
    ctx: Context,
    messages: int,
    seconds: float,
    send_rate: float,
    send_concurrency: int,
    clients: int,
) -> None:
    """Queue a backlog through the API, then drain it with a fresh worker process."""
    db_name = f"prof_notifier_{uuid.uuid4().hex[:8]}"
    twilio = TwilioStandIn()
    runner, twilio_url = await serve(twilio.app())
    base = ctx.env(
        db_name,
        SMS_TRANSPORT="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=twilio_url,
        SEND_RATE_PER_SECOND=str(send_rate),
        SEND_BURST="1",
        # FerretDB's SQLite backend answers SQLITE_BUSY to many concurrent writers, and every
        # failed record is retried with back-off, which would profile the retries instead.
        SEND_CONCURRENCY=str(send_concurrency),
        POLL_INTERVAL_S="0.2",
        CONTACTS_URL="http://127.0.0.1:9",
        REMINDERS_URL="http://127.0.0.1:9",
    )
    ingest = service_process("notifier", {**base, "WORKER_ENABLED": "false"}, ctx.tmp)
    drain = service_process("notifier", base, ctx.tmp)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri, tz_aware=True)
    try:
        ingest.start(60)

        async def post(s: aiohttp.ClientSession, i: int) -> int:
            token = issue_service_token(INTERNAL_SECRET, "reminders", "notifier")
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"prof-{i}"}
            body = {
                "user_id": f"u{i % 500:04d}",
                "to": f"+1415555{i % 10000:04d}",
                "body": f"touchbase: 2 due\n1) Dana Lee: reconnect\n2) Sam Park {i}: follow up",
                "purpose": "nudge",
            }
            async with s.post(
                ingest.url + "/internal/v1/messages", json=body, headers=headers
            ) as r:
                await r.read()
                return r.status

        await ctx.profile(
            "notifier_ingest", ingest, lambda: drive(messages, clients, post, seconds)
        )
        queued = ctx.profiles["notifier_ingest"]["workload"]["requests"]
        ingest.stop()
        # The worker starts with the process; the stand-in holds its first sends until py-spy
        # is attached, so the profile covers the whole drain.
        drain.start(60)

        async def draining() -> dict[str, Any]:
            began = time.monotonic()
            twilio.open.set()
            deadline = began + queued / send_rate * 2 + 30
            while len(twilio.arrivals) < queued and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - began
            sent = len(twilio.arrivals)
            span = twilio.arrivals[-1] - twilio.arrivals[0] if sent > 1 else 0.0
            return {
                "messages": queued,
                "sent": sent,
                "seconds": seconds,
                "limit": send_rate,
                "rate": (sent - 1) / span if span else 0.0,
            }

        await ctx.profile("notifier_drain", drain, draining)
    finally:
        twilio.open.set()
        ingest.stop()
        drain.stop()
        await runner.cleanup()
        await mongo.drop_database(db_name)
        await mongo.close()


# --- reminders --------------------------------------------------------------------------------


class NotifierStandIn:
    """The notifier's ``POST /internal/v1/messages`` (and ``:batch``): accepts every digest."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.last = 0.0

    def app(self) -> web.Application:
        """The stand-in's routes."""

        def store(key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            status = 200 if key in self.keys else 201
            self.keys.add(key)
            self.last = time.monotonic()
            now = datetime.now(UTC).isoformat()
            message = {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, key).hex,
                "status": "queued",
                "segments": 1,
                "encoding": "GSM-7",
                "created_at": now,
                "updated_at": now,
                **body,
            }
            return status, message

        async def post(request: web.Request) -> web.Response:
            key = request.headers.get("Idempotency-Key", uuid.uuid4().hex)
            status, message = store(key, await request.json())
            return web.json_response(message, status=status)

        async def batch(request: web.Request) -> web.Response:
            answers = []
            for item in (await request.json())["items"]:
                key = item.pop("idempotency_key")
                status, message = store(key, item)
                answers.append({"idempotency_key": key, "status": status, "message": message})
            return web.json_response({"items": answers})

        app = web.Application()
        app.router.add_post("/internal/v1/messages", post)
        app.router.add_post("/internal/v1/messages:batch", batch)
        return app


def contacts_stand_in(operator: str) -> web.Application:
    """Contacts as reminders asks it for an /admin/ caller's role: ``operator`` is one."""

    async def user(request: web.Request) -> web.Response:
        if request.match_info["user_id"] != operator:
            return web.json_response({"title": "not found"}, status=404)
        return web.json_response({"id": operator, "role": "operator"})

    app = web.Application()
    app.router.add_get("/internal/v1/users/{user_id}", user)
    return app


async def reminders(
    ctx: Context, users: int, per_user: int, concurrency: int, sweep_seconds: float
) -> None:
    """One sweep over ``users`` due users (at most ``sweep_seconds``), sampling reminders."""
    db_name = f"prof_reminders_{uuid.uuid4().hex[:8]}"
    stand_in = NotifierStandIn()
    runner, notifier_url = await serve(stand_in.app())
    contacts_runner, contacts_url = await serve(contacts_stand_in("ops"))
    env = ctx.env(
        db_name,
        TEST_MODE="true",
        CONTROLLABLE_CLOCK="true",
        CLOCK_START=T0.isoformat().replace("+00:00", "Z"),
        NOTIFIER_URL=notifier_url,
        CONTACTS_URL=contacts_url,
        # Every job waits a day; the sweep is started on demand below.
        SYNC_INTERVAL_S="86400",
        SWEEP_INTERVAL_S="86400",
        RETRY_INTERVAL_S="86400",
        REAP_INTERVAL_S="86400",
        SWEEP_CONCURRENCY=str(concurrency),
        SWEEP_BATCH="1000",
    )
    service = service_process("reminders", env, ctx.tmp)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri, tz_aware=True)
    token = issue_access_token(JWT_SECRET, "ops", "operator", ttl=timedelta(hours=2))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        service.start(60)
        async with aiohttp.ClientSession() as s:
            # Every item fits into one digest (the window defaults are stored before any user).
            window = {"daily_budget": min(per_user, 20), "max_segments": 10}
            for _ in range(100):
                async with s.put(
                    service.url + "/admin/v1/send-window", json=window, headers=auth
                ) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("the reminders service did not accept the send window")
            db = mongo[db_name]
            await db.users.insert_many(
                [
                    {
                        "_id": f"u{u:05d}",
                        "phone": f"+1555{u:07d}",
                        "name": f"User {u}",
                        "time_zone": ZONES[u % len(ZONES)],
                        "prefs": {},
                        "next_digest_at": T0 - timedelta(minutes=1),
                    }
                    for u in range(users)
                ]
            )
            await db.touchpoints.insert_many(touchpoints(users, per_user), ordered=False)

            async def runs() -> int:
                async with s.get(service.url + "/admin/v1/jobs", headers=auth) as r:
                    return int((await r.json())["runs"]["sweep"])

            async def sweep() -> dict[str, Any]:
                began = time.monotonic()
                async with s.put(
                    service.url + "/admin/v1/jobs", json={"sweep": 0.5}, headers=auth
                ) as r:
                    if r.status != 200:
                        raise RuntimeError(f"could not start the sweep: {r.status}")
                deadline = began + sweep_seconds
                # Once the sweep is under way it runs to its end; put the interval back so that
                # the scheduler does not log a skipped run twice a second meanwhile.
                while not stand_in.keys and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                async with s.put(
                    service.url + "/admin/v1/jobs", json={"sweep": 86400}, headers=auth
                ) as r:
                    await r.read()
                # Watched in the database (not through the sampled process) until every digest
                # is recorded or time is up; the job's run count then says whether it ended.
                while time.monotonic() < deadline:
                    if await db.dispatches.count_documents({"state": "recorded"}) >= users:
                        break
                    await asyncio.sleep(1.0)
                done = await runs()
                seconds = time.monotonic() - began
                recorded = await db.dispatches.count_documents({"state": "recorded"})
                return {
                    "users": users,
                    "touchpoints": users * per_user,
                    "handed_over": len(stand_in.keys),
                    "handover_s": stand_in.last - began if stand_in.keys else None,
                    "recorded": recorded,
                    "completed": done >= 1,
                    "seconds": seconds,
                    "rate": len(stand_in.keys) / (stand_in.last - began) if stand_in.keys else 0.0,
                }

            await ctx.profile("reminders_sweep", service, sweep)
    finally:
        service.stop()
        await runner.cleanup()
        await contacts_runner.cleanup()
        await mongo.drop_database(db_name)
        await mongo.close()


def touchpoints(users: int, per_user: int) -> list[dict[str, Any]]:
    """Due cadence touchpoints, ``per_user`` for each user (the dispatch benchmark's shape)."""
    out: list[dict[str, Any]] = []
    for u in range(users):
        for n in range(per_user):
            base = T0 - timedelta(days=20 + n + (u % 7))
            out.append(
                {
                    "_id": f"cad:u{u:05d}:c{n:02d}",
                    "user_id": f"u{u:05d}",
                    "contact_id": f"c{u:05d}{n:02d}",
                    "contact_name": f"Contact{n} Person{u % 97}",
                    "company": "Acme Ltd" if n % 2 else None,
                    "source": "cadence",
                    "reason": "reconnect",
                    "base": base,
                    "has_touch": True,
                    "due_at": base + timedelta(days=14),
                    "max_at": base + timedelta(days=28),
                    "fire_at": base + timedelta(days=14),
                    "state": "scheduled",
                    "nudge_count": 0,
                    "history": [],
                    "created_at": T0,
                    "updated_at": T0,
                }
            )
    return out


# --- the run ----------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """All selected workloads against one database server."""
    database = DevDatabase()
    uri = database.start()
    ctx = Context(uri, tmp, args.rate, args.idle, 600, args.log_level)
    try:
        if "contacts" in args.only:
            await contacts(ctx, args.contacts, args.seconds, args.clients)
        if "notifier" in args.only:
            await notifier(
                ctx,
                args.messages,
                args.seconds,
                args.send_rate,
                args.send_concurrency,
                args.clients,
            )
        if "reminders" in args.only:
            await reminders(ctx, args.users, args.per_user, args.concurrency, args.sweep_seconds)
    finally:
        database.close()
    return {
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": database.kind or "unknown",
            "database_description": database.description,
            "py_spy_rate": args.rate,
            "idle": args.idle,
            "log_level": args.log_level,
            "contacts": args.contacts,
            "seconds": args.seconds,
            "clients": args.clients,
            "messages": args.messages,
            "send_rate": args.send_rate,
            "send_concurrency": args.send_concurrency,
            "users": args.users,
            "per_user": args.per_user,
            "sweep_seconds": args.sweep_seconds,
            "quick": args.quick,
        },
        "workloads": ctx.profiles,
    }


# --- report -----------------------------------------------------------------------------------

# What the analysis of the profiles proposes; each entry names the workload whose samples show
# it, the function(s) whose share is quoted, and the change.
FINDINGS: list[dict[str, Any]] = [
    {
        "where": "1. `shared/sms.py:is_gsm7` / `count_segments`, called by "
        "`services/reminders/digest.py:compose`",
        "workload": "reminders_sweep",
        "section": "areas",
        "key": "ours: shared.sms",
        "text": "The hottest code of our own in the sweep's hand-over. `is_gsm7` tests every "
        "character in a Python generator and `_units` builds a list of widths per character; "
        "`compose` renders and counts the whole body again for every candidate item count and "
        "both footers (2 x n renders of n lines, each line passed through `to_gsm7` again). "
        "Proposed: `is_gsm7` as `GSM7_ALL.issuperset(text)` (one C call, same result); in "
        "`count_segments`, sum the widths first and pack only when the text is longer than one "
        "segment; in `compose`, convert each item's line once before the loop. Expected: most "
        "of this share (several ms of CPU per 100 digests), no change in output.",
    },
    {
        "where": "2. `shared/http.py:ServiceClient._headers` minting a token per call, and "
        "`shared/auth.py:verify_service_token` / `verify_access_token` on every request",
        "workload": "notifier_ingest",
        "section": "top_own",
        "key": "shared/auth.py:verify_service_token",
        "share_note": " verifying; `issue_service_token` is a further few % of the sweep",
        "text": "PyJWT decoding (base64, JSON, HMAC, claim checks) costs about half of what one "
        "database round trip costs the service (compare the repository rows). Proposed: the "
        "client reuses its token until a minute before its expiry (tokens live 5 minutes), and "
        "the verifier keeps a small bounded map of token -> (principal, exp), still checking "
        "exp against the clock on every hit (there is no revocation to honour; a token that "
        "verified once stays valid until it expires). Expected: nearly all of this share on "
        "internal calls, and the JWT share of user requests (contacts create) for clients that "
        "reuse their access token.",
    },
    {
        "where": "3. `services/notifier/ratelimit.py:TokenBucket.take` spinning",
        "workload": "notifier_drain",
        "section": "top_inclusive",
        "key": "services/notifier/ratelimit.py:take",
        "share_note": " inside the limiter, plus the event-loop turns its yields cost",
        "text": "At 500 msg/s the gap between tokens (2 ms) is never above `EARLY_WAKE_S` "
        "(2 ms), so every wait is `asyncio.sleep(0)` in a loop: a busy yield that keeps the loop "
        "spinning (and at 50 msg/s the last 2 ms of every 20 ms). Proposed: schedule against "
        "the theoretical send time (GCRA: the next slot is the previous slot plus 1/rate, not "
        "the wake-up time plus 1/rate), so a late wake-up loses no capacity and the limiter can "
        "sleep once to the slot instead of spinning. Needs the send-rate benchmark re-run "
        "(within 5%, never above) before it is taken; not a one-line change.",
    },
    {
        "where": "4. `services/notifier/worker.py:_forget` is linear in the in-flight sends",
        "workload": "notifier_drain",
        "section": "top_self",
        "key": "services/notifier/worker.py:_forget",
        "text": "Each finished send scans the whole in-flight map to find its own entry; with "
        "batches of up to 1,000 (rate x 4) that is quadratic per batch. Proposed: register the "
        "callback with the message id bound (`functools.partial`) and delete by key. Cheap and "
        "safe; the gain grows with the rate.",
    },
    {
        "where": "5. `services/notifier/worker.py:_record` -> `repository.raise_status`, one "
        "write per send with no bound on concurrency",
        "workload": "notifier_drain",
        "section": "top_inclusive",
        "key": "services/notifier/repository.py:raise_status",
        "text": "The outcome writes of a whole batch run at once. On FerretDB, where this was "
        "found, that produced SQLITE_BUSY ('recording a send outcome failed, retrying' in the "
        "log), the retries backed off, and the drain stalled after the first batch. Proposed: "
        "collect outcomes and write them with one `bulk_write` every few milliseconds (or bound "
        "the concurrent writes with a semaphore). Expected: fewer round trips (the driver is the "
        "largest area of the drain) and no retry storm; correctness is unchanged because the "
        "claim already protects each attempt.",
    },
    {
        "where": "6. `services/contacts/handlers.py:_json` and `service.py:contact_out` on lists",
        "workload": "contacts_list",
        "section": "top_own",
        "key": "services/contacts/handlers.py:_json",
        "share_note": " for the dump; `contact_out` and the JSON area come on top",
        "text": "A page is turned into 50 validated `Contact` models, then "
        "`model_dump(mode='json')` builds dicts, then `web.json_response` encodes them with the "
        "standard library: two passes over the page after validation. Proposed: "
        "`web.Response(body=page.model_dump_json(), content_type='application/json')` "
        "(pydantic-core writes the bytes in one pass; the same JSON). The create handler also "
        "`json.loads` the body it has just encoded to read the id for the ETag; the id is in "
        "`stored.body`. Expected: a few % of list CPU; less on create.",
    },
    {
        "where": "7. Database round trips: `services/contacts/repository.py:get` (the user read "
        "on create), the change-feed insert and the contact insert",
        "workload": "contacts_create",
        "section": "top_own",
        "key": "services/contacts/repository.py:get",
        "share_note": " for the user read alone",
        "text": "Each PyMongo operation costs the service roughly the same CPU (a socket write, "
        "two tasks and an `asyncio.wait` per reply in PyMongo's async network layer), so the "
        "driver is the largest area of every workload and the only lever in our code is the "
        "number of operations per request. The three per create are needed (see the API "
        "overhead section). In the reminders sweep's recording phase, `record()` reads the user "
        "(`get_user`), writes `last_digest` (`update_user`) and `settle` writes "
        "`next_digest_at` (`set_next_digest`) on the same document: folding `last_digest` into "
        "the `set_next_digest` update when the claim is the sweep's own fresh one saves two of "
        "six operations per user (the conditional form would not be pushed down on FerretDB, "
        "so the condition must stay in code).",
    },
]

WHAT_WAS_DONE = (
    "What was done (the profile above was taken after these changes):\n\n"
    "- Finding 1, applied (9831e5f): the composer converts each line once (cached) and "
    "`is_gsm7` is one set operation; `count_segments` packs only texts longer than one segment. "
    "A 10-item compose went from 282 us to 152 us (same machine, `timeit`), with identical "
    "output.\n"
    "- Finding 4, applied (98d43e0): a finished send is forgotten by its message id.\n"
    "- Finding 6, applied in part (1f7f221): contacts responses are encoded in one pass with "
    "`model_dump_json`; the ETag read on create was left as it is.\n"
    "- From the reply-latency profile, applied (b1d197f): recomputing a contact after a logged "
    "touch no longer scans the user's open touchpoints for a birthday; the contact's copy "
    "names its birthday touchpoint.\n"
    "- Not taken: finding 2 (token caches: a verifier cache is security-sensitive and wants "
    "its own change and tests), finding 3 (the limiter's schedule: the send-rate figure would "
    "have to be re-validated), finding 5 (bounding outcome writes: the `SQLITE_BUSY` storm is "
    "FerretDB's single writer; on MongoDB the writes run in parallel) and the record-phase "
    "folding of finding 7."
)


def share_range(values: list[float]) -> str:
    """Median share with one decimal and its range when runs differ: ``12.3 (11.0-14.2)``."""
    mid, low, high = statistics.median(values), min(values), max(values)
    if len(values) > 1 and f"{low:.1f}" != f"{high:.1f}":
        return f"{mid:.1f} ({low:.1f}-{high:.1f})"
    return f"{mid:.1f}"


def _median_share(runs: list[dict[str, Any]], workload: str, section: str, key: str) -> str:
    values = []
    column = {"top_self": "self", "top_own": "own", "top_inclusive": "inclusive"}.get(section)
    for run in runs:
        profile = run["workloads"].get(workload)
        if profile is None:
            continue
        if column and "functions" in profile:
            values.append(float(profile["functions"].get(key, {}).get(column, 0.0)))
            continue
        found = profile[section]
        if isinstance(found, dict):
            values.append(float(found.get(key, 0.0)))
        else:
            values.append(next((float(r["pct"]) for r in found if r["name"] == key), 0.0))
    return share_range(values) if values else "-"


def _ranked(runs: list[dict[str, Any]], workload: str, section: str, n: int) -> list[str]:
    """Names in ``section`` ordered by their median share across runs."""
    shares: dict[str, list[float]] = {}
    present = [run["workloads"][workload] for run in runs if workload in run["workloads"]]
    for profile in present:
        found = profile[section]
        items = found.items() if isinstance(found, dict) else [(r["name"], r["pct"]) for r in found]
        for name, value in items:
            shares.setdefault(name, []).append(float(value))
    for values in shares.values():
        values.extend([0.0] * (len(present) - len(values)))
    return sorted(shares, key=lambda k: -statistics.median(shares[k]))[:n]


def _workload_line(name: str, figures: dict[str, Any]) -> str:
    if name == "contacts_list":
        return (
            f"{figures['requests']:,} pages of {PAGE} listed from a {figures['book']:,}-contact "
            f"book (all {figures['pages_in_book']} of its pages in turn)"
        )
    if name == "contacts_create":
        return f"{figures['requests']:,} contacts created"
    if name == "notifier_ingest":
        return f"{figures['requests']:,} messages queued through the API"
    if name == "notifier_drain":
        return (
            f"{figures['sent']:,} of {figures['messages']:,} messages sent at a limit of "
            f"{figures['limit']:g} msg/s"
        )
    ended = "the sweep ended" if figures.get("completed") else "the sweep was still recording"
    return (
        f"{figures['users']:,} due users, {figures['touchpoints']:,} touchpoints; "
        f"{figures['handed_over']:,} digests handed over to the notifier in "
        f"{figures.get('handover_s') or 0:.0f} s, {figures['recorded']:,} recorded after "
        f"{figures['seconds']:.0f} s ({ended})"
    )


RATE_UNIT = {
    "contacts_list": "req/s",
    "contacts_create": "req/s",
    "notifier_ingest": "req/s",
    "notifier_drain": "msg/s at Twilio",
    "reminders_sweep": "digests handed over/s",
}


def _reading(runs: list[dict[str, Any]], name: str) -> str:
    """A short reading of one workload's profile from its medians."""
    areas = _ranked(runs, name, "areas", 3)
    ours = statistics.median(
        float(r["workloads"][name]["ours_pct"]) for r in runs if name in r["workloads"]
    )
    own = _ranked(runs, name, "top_own", 2)
    parts = [
        f"Our own code is the leaf of {ours:.0f}% of the samples; the largest areas are "
        + ", ".join(f"{a} ({_median_share(runs, name, 'areas', a)}%)" for a in areas)
        + "."
    ]
    loop = statistics.median(
        float(r["workloads"][name]["areas"].get(EVENT_LOOP, 0.0))
        for r in runs
        if name in r["workloads"]
    )
    if loop >= 25:
        parts.append(
            f"The event loop's own share ({loop:.0f}%) is high because the service mostly "
            "waits on the database here: PyMongo's async network layer starts two tasks and an "
            "`asyncio.wait` per reply, and the loop's scheduling of them is what is left when "
            "little else runs."
        )
    if own:
        parts.append(
            "Counting each of our functions with the library calls it makes directly, the "
            "hottest are "
            + " and ".join(f"`{f}` ({_median_share(runs, name, 'top_own', f)}%)" for f in own)
            + "."
        )
    return " ".join(parts)


def render(runs: list[dict[str, Any]]) -> str:
    """The profiling section of docs/BENCHMARKS.md: medians (min-max) of shares over ``runs``."""
    meta = runs[0]["meta"]
    lines = [
        "## Hot paths: where the services spend their CPU",
        "",
        f"Workloads (loopback, one database server ({database_of(runs)}), each service a real "
        "process sampled by "
        f"`py-spy record --pid <pid> --format raw --rate {meta['py_spy_rate']}`"
        f"{'' if meta['idle'] else ', idle stacks left out'}; services log at "
        f"{meta['log_level']}): the contacts API with {meta['clients']} clients listing pages "
        f"of {PAGE} from a {meta['contacts']:,}-contact book for {meta['seconds']:g} s, then "
        f"creating contacts for {meta['seconds']:g} s; the notifier queueing up to "
        f"{meta['messages']:,} messages through its API (at most {meta['seconds']:g} s), then "
        f"draining them at {meta['send_rate']:g} msg/s through the twilio "
        f"SDK to a Twilio stand-in; the reminders sweep of {meta['users']:,} due users with "
        f"{meta['per_user']} touchpoints each, handing digests to a notifier stand-in.",
        "",
        f"Command: `{COMMAND}` ({len(runs)} run{'s' if len(runs) > 1 else ''}; median share "
        "of samples in %, min-max in brackets). There is no baseline or goal for a profile: "
        "the figures say where time goes, and the findings below say what is worth changing.",
        "",
        "Areas: a sample counts for the first library of a specific kind below our deepest frame "
        "(driver, JWT, pydantic, logging, JSON, twilio, metrics, APScheduler), else for the "
        "first library below it, else for our module when our code is the leaf. *Inclusive* "
        "counts every sample with a frame in the area, so those shares overlap.",
        "",
    ]
    for name in WORKLOADS:
        present = [r for r in runs if name in r["workloads"]]
        if not present:
            continue
        profiles = [r["workloads"][name] for r in present]
        samples = median_range([float(p["samples"]) for p in profiles], ".0f")
        rate = median_range([float(p["workload"]["rate"]) for p in profiles], ".1f")
        lines += [
            f"### {name}",
            "",
            f"{_workload_line(name, profiles[0]['workload'])}; {rate} {RATE_UNIT[name]} while "
            f"sampled; {samples} samples.",
            "",
            "| area | share (%) | inclusive (%) |",
            "| --- | ---: | ---: |",
        ]
        for area in _ranked(present, name, "areas", 14):
            lines.append(
                f"| {area} | {_median_share(present, name, 'areas', area)} | "
                f"{_median_share(present, name, 'areas_inclusive', area)} |"
            )
        lines += [
            "",
            "| our function | self (%) | with its direct library calls (%) | inclusive (%) |",
            "| --- | ---: | ---: | ---: |",
        ]
        names = _ranked(present, name, "top_inclusive", TOP)
        for extra in _ranked(present, name, "top_own", TOP) + _ranked(
            present, name, "top_self", TOP
        ):
            if extra not in names:
                names.append(extra)
        for function in names:
            lines.append(
                f"| `{function}` | {_median_share(present, name, 'top_self', function)} | "
                f"{_median_share(present, name, 'top_own', function)} | "
                f"{_median_share(present, name, 'top_inclusive', function)} |"
            )
        lines += ["", _reading(present, name), ""]
    if FINDINGS:
        lines += ["### Findings", ""]
        if not used_ferretdb(runs):
            lines += [
                "The findings were drawn from profiles taken on FerretDB 1.24 (SQLite); the "
                "shares quoted are this run's.",
                "",
            ]
        for finding in FINDINGS:
            share = _median_share(runs, finding["workload"], finding["section"], finding["key"])
            lines.append(
                f"- **{finding['where']}** ({finding['workload']}: {share}% of samples"
                f"{finding.get('share_note', '')}). {finding['text']}"
            )
        lines.append("")
    lines += [
        WHAT_WAS_DONE,
        "",
        "Scaling (10x data): not measured at another size here. What grows inside the "
        "services with the data is per-item work: a sweep's digests and claims grow linearly "
        "with the due users, a list page stays 50 documents. " + _database_growth(runs),
        "",
    ]
    if used_ferretdb(runs):
        lines += [
            "FerretDB caveat: its SQLite backend scans whole collections (a lone `_id` equality "
            "in SQLite, anything else in Go), so the services wait longer on the database than "
            "they would on "
            "MongoDB; idle waiting is not sampled, so the shares describe CPU inside the service, "
            "which is what MongoDB would leave as the bottleneck.",
            "",
        ]
    if used_mongo_java_server(runs):
        lines += [
            mongo_java_server_caveat("a user's contacts page, due messages, due touchpoints")
            + " The services wait longer on it than they would on MongoDB; idle waiting is not "
            "sampled, so the shares describe CPU inside the service.",
            "",
        ]
    return "\n".join(lines)


def _database_growth(runs: list[dict[str, Any]]) -> str:
    """Where the database's own growth with the data goes, on the engine the runs used."""
    if used_ferretdb(runs):
        scans, process = "The database's scans grow with the collections on FerretDB", "FerretDB"
    elif used_mongo_java_server(runs):
        scans = (
            "Queries on non-unique indexes scan in memory and grow with the collections on "
            "mongo-java-server"
        )
        process = "mongo-java-server"
    else:
        return "The database's own work is spent in its process, which is not sampled."
    return (
        f"{scans}, but that time is spent in the {process} process, which is not sampled; the "
        "service waits longer, which raises the event loop's share (PyMongo's per-reply tasks) "
        "more than any code of ours."
    )


def main() -> None:
    """Run the selected workloads once under py-spy and print the section."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1000, help="contacts in the book")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a timed workload")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000, help="notifier backlog")
    parser.add_argument("--send-rate", type=float, default=500.0, help="notifier msg/s")
    parser.add_argument("--send-concurrency", type=int, default=4, help="SEND_CONCURRENCY")
    parser.add_argument("--users", type=int, default=1000, help="due users in the sweep")
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument(
        "--sweep-seconds", type=float, default=60.0, help="how long the sweep is profiled at most"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="SWEEP_CONCURRENCY")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--idle", action="store_true", help="also sample idle stacks")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    parser.add_argument("--only", default="contacts,notifier,reminders")
    parser.add_argument("--keep", action="store_true", help="keep the raw profiles")
    parser.add_argument("--json", type=Path, help="write this run's figures here")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.seconds, args.clients = 100, 3.0, 10
        args.messages, args.users, args.per_user, args.sweep_seconds = 150, 60, 3, 40.0
    args.only = {part.strip() for part in args.only.split(",")}
    tmp = Path(tempfile.mkdtemp(prefix="touchbase-profile-"))
    try:
        result = asyncio.run(measure(args, tmp))
    finally:
        if args.keep:
            print(f"raw profiles and service logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(render([result]))


if __name__ == "__main__":
    main()
