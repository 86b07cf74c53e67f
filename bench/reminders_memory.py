"""Benchmark: memory of the reminders process as its data grows from 10k to 200k touchpoints.

The reminders service runs as a real process (``python -m services.reminders``, test mode with
a controllable clock, its APScheduler jobs on) against the development database
(``shared.devdb``, whichever engine it runs; the JSON records which). The data grows in steps
(default 10k, 50k, 100k, 200k touchpoints; one user per 10 touchpoints, each with 10 mirrored
contacts and their cadence touchpoints), loaded with ``insert_many`` straight into its database.
At each step the process does its work over the data, each job started through the operator
API (``PUT /admin/v1/jobs`` sets its interval to a second, then back once it has run):

* ``sync``: a few contact changes from a stand-in contacts change feed;
* ``sweep``: a set of users made due, their digests composed, claimed and handed to a stand-in
  notifier; one user's digest is accepted and recorded, the others answered 503 (deferred);
* ``retry`` (the reaper): the deferred claims of every step so far dispatched again, recorded
  digests followed to their delivery state;
* the operator dry run over every user (``GET /admin/v1/dry-run?days=2&limit=5000``: every user
  and every open touchpoint is read; about 5% of users have something due in the window);
* listings: nudges (all and ``status=claimed``), three users' schedules, the audit log.

VmRSS and VmHWM of the process (``/proc/<pid>/status``) are read after each of these and after
an idle pause at the end of the step; growth is against the first (10k) step of the same run.

Why not every user's digest recorded: the sizes were set on FerretDB's SQLite backend, where
every touchpoint update scans the whole collection (about 0.25 s per update at 20k touchpoints,
ten times that at 200k), so recording thousands of digests would take hours; the sweep's reading
and dispatch path is exercised in full for the due users, its recording for one user per step.

    .venv/bin/python -m bench.reminders_memory [--quick] [--json PATH] [--steps 10000,50000,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient, UpdateMany

from bench.report import (
    database_of,
    mongo_java_server_caveat,
    used_ferretdb,
    used_mongo_java_server,
)
from shared.auth import issue_access_token, issue_service_token
from shared.devdb import DevDatabase, free_port
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET, base_env

FIGURE = "Memory: the reminders process from 10k to 200k touchpoints"
GOAL_MB = 50.0
STEPS = (10_000, 50_000, 100_000, 200_000)
QUICK_STEPS = (2_000, 10_000)
PER_USER = 10
# Users with something due in the dry run's window: one in ACTIVE_EVERY.
ACTIVE_EVERY = 20
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday; 12:00 in London, outside quiet hours
ZONE = "Europe/London"
IDLE_JOB_S = 86_400.0
DB_NAME = "bench_reminders_memory"
# The operator the driver calls as; the contacts stand-in knows it as one.
OPERATOR_ID = "bench-operator"


def iso(value: datetime) -> str:
    """An ISO instant with Z."""
    return value.isoformat().replace("+00:00", "Z")


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return {"rss_mb": round(out["VmRSS"], 1), "hwm_mb": round(out["VmHWM"], 1)}


# -- stand-ins for contacts and notifier --------------------------------------------------------
@dataclass
class StandIns:
    """The contacts change feed and the notifier's message API, in this process."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    accept: set[str] = field(default_factory=set)
    posts: int = 0
    accepted: int = 0
    deferred: int = 0
    polled: int = 0

    def app(self) -> web.Application:
        """The aiohttp app serving both stand-ins."""

        async def changes(request: web.Request) -> web.Response:
            after = int(request.query.get("after") or 0)
            limit = int(request.query.get("limit") or 500)
            page = self.changes[after : after + limit]
            nxt = after + len(page)
            return web.json_response(
                {"changes": page, "next": str(nxt), "has_more": nxt < len(self.changes)}
            )

        async def empty_page(request: web.Request) -> web.Response:
            return web.json_response({"items": [], "next": None})

        async def no_user(request: web.Request) -> web.Response:
            # reminders asks contacts for the role of an /admin/ caller on each request.
            if request.match_info["user_id"] == OPERATOR_ID:
                return web.json_response({"id": OPERATOR_ID, "role": "operator"})
            return web.json_response({"title": "not found"}, status=404)

        async def post_message(request: web.Request) -> web.Response:
            self.posts += 1
            body = await request.json()
            if body["user_id"] not in self.accept:
                self.deferred += 1
                # Retry-After 0: the client's retries of this answer do not sleep.
                return web.json_response(
                    {"title": "busy"}, status=503, headers={"Retry-After": "0"}
                )
            self.accepted += 1
            key = request.headers["Idempotency-Key"]
            return web.json_response({"id": key, "status": "queued", **body}, status=201)

        async def get_message(request: web.Request) -> web.Response:
            self.polled += 1
            return web.json_response({"id": request.match_info["id"], "status": "delivered"})

        app = web.Application()
        app.router.add_get("/internal/v1/changes", changes)
        app.router.add_get("/internal/v1/users", empty_page)
        app.router.add_get("/internal/v1/users/{user_id}/contacts", empty_page)
        app.router.add_get("/internal/v1/users/{user_id}", no_user)
        app.router.add_post("/internal/v1/messages", post_message)
        app.router.add_get("/internal/v1/messages/{id}", get_message)
        return app


# -- data ---------------------------------------------------------------------------------------
def uid(u: int) -> str:
    """User id of user number ``u``."""
    return f"u{u:06d}"


def active(u: int) -> bool:
    """Whether user ``u`` has touchpoints due (the others' are two months away)."""
    return u % ACTIVE_EVERY == 0


def users_docs(first: int, last: int) -> list[dict[str, Any]]:
    """Users ``first``..``last - 1`` as the reminders service stores them."""
    return [
        {
            "_id": uid(u),
            "phone": f"+1555{u:07d}",
            "name": f"User {u}",
            "time_zone": ZONE,
            "role": "networker",
            "prefs": {},
            "created_at": T0 - timedelta(days=90),
            "next_digest_at": T0 + timedelta(days=1),
        }
        for u in range(first, last)
    ]


def contact_docs(u: int) -> list[dict[str, Any]]:
    """The mirrored contacts of user ``u``."""
    return [
        {
            "_id": f"{uid(u)}:c{u:06d}{n}",
            "user_id": uid(u),
            "contact_id": f"c{u:06d}{n}",
            "name": f"Contact{n} Person{u % 97}",
            "company": "Acme Ltd" if n % 2 else None,
            "tier": "B",
            "cadence_days": None,
            "birthday": None,
            "last_interaction_at": T0 - timedelta(days=40 + n),
            "created_at": T0 - timedelta(days=90),
            "deleted": False,
        }
        for n in range(PER_USER)
    ]


def touchpoint_docs(u: int) -> list[dict[str, Any]]:
    """The cadence touchpoints of user ``u``, with a short history each."""
    out = []
    for n in range(PER_USER):
        base = T0 - timedelta(days=40 + n)
        fire = base + timedelta(days=30) if active(u) else T0 + timedelta(days=60)
        out.append(
            {
                "_id": f"cad:{uid(u)}:c{u:06d}{n}",
                "user_id": uid(u),
                "contact_id": f"c{u:06d}{n}",
                "contact_name": f"Contact{n} Person{u % 97}",
                "company": "Acme Ltd" if n % 2 else None,
                "source": "cadence",
                "reason": "reconnect",
                "base": base,
                "ideal_days": 30.0,
                "has_touch": True,
                "due_at": fire,
                "max_at": base + timedelta(days=60),
                "fire_at": fire,
                "state": "scheduled",
                "nudge_count": 0,
                "history": [
                    {"at": base - timedelta(days=d), "state": "scheduled", "why": "cadence reset"}
                    for d in (60, 30, 0)
                ],
                "created_at": T0 - timedelta(days=90),
                "updated_at": base,
            }
        )
    return out


async def load(db: Any, first: int, last: int) -> None:
    """Insert users ``first``..``last - 1`` with their contacts and touchpoints."""
    if last <= first:
        return
    await db.users.insert_many(users_docs(first, last), ordered=False)
    chunk = 500  # users per insert: 5,000 documents
    for start in range(first, last, chunk):
        stop = min(start + chunk, last)
        await db.contacts.insert_many(
            [c for u in range(start, stop) for c in contact_docs(u)], ordered=False
        )
        await db.touchpoints.insert_many(
            [t for u in range(start, stop) for t in touchpoint_docs(u)], ordered=False
        )


# -- driving the process ------------------------------------------------------------------------
class Driver:
    """Calls the reminders process as an operator and as the test clock's owner."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    def _headers(self, internal: bool) -> dict[str, str]:
        if internal:
            token = issue_service_token(INTERNAL_SECRET, "cli", "reminders")
        else:
            token = issue_access_token(JWT_SECRET, OPERATOR_ID, "operator")
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; anything but a 2xx is an error."""
        headers = self._headers(path.startswith("/internal/"))
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path} answered {resp.status}: {data}")
            return data

    async def set_clock(self, now: datetime) -> None:
        """Stop the process's clock at ``now``."""
        await self.call("PUT", "/internal/v1/test/clock", {"now": iso(now), "frozen": True})

    async def run_job(self, name: str, timeout_s: float) -> float:
        """Have the scheduler run one system job now; wait until it has run once."""
        before = (await self.call("GET", "/admin/v1/jobs"))["runs"][name]
        started = time.perf_counter()
        await self.call("PUT", "/admin/v1/jobs", {name: 0.2})
        try:
            while time.perf_counter() - started < timeout_s:
                await asyncio.sleep(0.1)
                if (await self.call("GET", "/admin/v1/jobs"))["runs"][name] > before:
                    return time.perf_counter() - started
            raise RuntimeError(f"job {name} did not finish within {timeout_s:.0f}s")
        finally:
            await self.call("PUT", "/admin/v1/jobs", {name: IDLE_JOB_S})


def contact_change(u: int, n: int, at: datetime) -> dict[str, Any]:
    """A change-feed record: contact ``n`` of user ``u`` was touched at ``at``."""
    entity = {
        "id": f"c{u:06d}{n}",
        "user_id": uid(u),
        "name": f"Contact{n} Person{u % 97}",
        "company": "Acme Ltd" if n % 2 else None,
        "tier": "B",
        "cadence_days": None,
        "birthday": None,
        "last_interaction_at": iso(at),
        "created_at": iso(T0 - timedelta(days=90)),
        "deleted": False,
    }
    return {
        "cursor": "",
        "kind": "contact",
        "op": "upsert",
        "user_id": uid(u),
        "entity_id": entity["id"],
        "at": iso(at),
        "entity": entity,
    }


async def step(
    driver: Driver,
    proc: ServiceProcess,
    db: Any,
    stand: StandIns,
    index: int,
    first: int,
    users: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Grow the data to ``users`` users, run every job and operator read, record memory."""
    assert proc.process is not None
    pid = proc.process.pid
    memory: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    counts: dict[str, Any] = {}
    now = T0 + timedelta(minutes=10 * index)
    await driver.set_clock(now)

    started = time.perf_counter()
    await load(db, first, users)
    seconds["load"] = time.perf_counter() - started
    memory["loaded"] = proc_memory(pid)

    # Sync: a few contact changes from the feed (each recomputes a cadence touchpoint).
    for n in range(args.changes):
        stand.changes.append(contact_change((n * 7 + index) % users, n % PER_USER, now))
    seconds["sync"] = await driver.run_job("sync", args.job_timeout)
    counts["changes_served"] = len(stand.changes)
    memory["sync"] = proc_memory(pid)

    # Sweep: some active users of the new data become due; one digest is accepted and recorded.
    new_active = [uid(u) for u in range(first, users) if active(u)]
    due = new_active[: args.due]
    stand.accept = set(due[:1])
    await db.users.bulk_write(
        [
            UpdateMany(
                {"_id": {"$in": due}}, {"$set": {"next_digest_at": now - timedelta(minutes=1)}}
            )
        ]
    )
    posts, accepted = stand.posts, stand.accepted
    seconds["sweep"] = await driver.run_job("sweep", args.job_timeout)
    counts["due_users"] = len(due)
    counts["sweep_posts"] = stand.posts - posts
    counts["sweep_accepted"] = stand.accepted - accepted
    counts["nudged_total"] = await db.touchpoints.count_documents({"state": "nudged"})
    memory["sweep"] = proc_memory(pid)

    # The reaper: deferred claims of every step so far are due again ten minutes later.
    await driver.set_clock(now + timedelta(minutes=9))
    posts = stand.posts
    seconds["retry"] = await driver.run_job("retry", args.job_timeout)
    counts["retry_posts"] = stand.posts - posts
    counts["claims"] = await db.dispatches.count_documents({})
    memory["retry"] = proc_memory(pid)
    await driver.set_clock(now)

    # The operator dry run over every user and every open touchpoint.
    started = time.perf_counter()
    plan = await driver.call("GET", "/admin/v1/dry-run?days=2&limit=5000")
    seconds["dry_run"] = time.perf_counter() - started
    counts["dry_run_digests"] = len(plan["digests"])
    counts["dry_run_users"] = len({d["user_id"] for d in plan["digests"]})
    counts["dry_run_truncated"] = bool(plan.get("truncated"))
    del plan
    memory["dry_run"] = proc_memory(pid)

    # Listings: nudges, a few schedules, the audit log.
    started = time.perf_counter()
    nudges = await driver.call("GET", "/admin/v1/nudges?limit=500")
    claimed = await driver.call("GET", "/admin/v1/nudges?status=claimed&limit=500")
    counts["nudges_listed"] = len(nudges["items"])
    counts["claimed_listed"] = len(claimed["items"])
    scheduled = 0
    for u in (0, users // 2, users - 1):
        scheduled += len(
            (await driver.call("GET", f"/admin/v1/users/{uid(u)}/schedule"))["touchpoints"]
        )
    counts["schedule_touchpoints"] = scheduled
    await driver.call("GET", "/admin/v1/audit?limit=500")
    seconds["listings"] = time.perf_counter() - started
    memory["listings"] = proc_memory(pid)

    await asyncio.sleep(args.idle)
    memory["idle"] = proc_memory(pid)
    return {
        "touchpoints": users * PER_USER,
        "users": users,
        "memory": memory,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "counts": counts,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the database, the stand-ins and the reminders process; grow the data step by
    step."""
    stand = StandIns()
    runner = web.AppRunner(stand.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stand_url = f"http://127.0.0.1:{port}"
    steps: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="touchbase-memory-") as tmp,
        DevDatabase(data_dir=Path(tmp) / "db", uri="", persistent=False) as database,
    ):
        env = base_env(
            database.uri,
            DB_NAME,
            controllable_clock="true",
            clock_start=iso(T0),
            contacts_url=stand_url,
            notifier_url=stand_url,
            scheduler_enabled="true",
            log_level="WARNING",
            sync_interval_s=IDLE_JOB_S,
            sweep_interval_s=IDLE_JOB_S,
            retry_interval_s=30,
            reap_interval_s=IDLE_JOB_S,
            reconcile_interval_s=7 * IDLE_JOB_S,
            sweep_concurrency=4,
            # One digest per notifier call: this stand-in answers a 503 per user (one accepted,
            # the rest deferred) and has no batch endpoint, so the sweep's 404 fallback sends
            # each item alone, as the figures of this benchmark assume.
            sweep_claim_batch=1,
        )
        proc = service_process("reminders", env, Path(tmp))
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database.uri)
        db = client[DB_NAME]
        try:
            proc.start(timeout_s=60)
            assert proc.process is not None
            # The retry job's stored interval is the fast one; idle it like the others.
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
                driver = Driver(session, proc.url)
                await driver.call("PUT", "/admin/v1/jobs", {"retry": IDLE_JOB_S})
                started_memory = proc_memory(proc.process.pid)
                first = 0
                for index, size in enumerate(args.steps):
                    users = size // PER_USER
                    result = await step(driver, proc, db, stand, index, first, users, args)
                    first = users
                    steps.append(result)
                    m = result["memory"]
                    print(
                        f"{size:>7} touchpoints, {users:>6} users: idle RSS "
                        f"{m['idle']['rss_mb']:.1f} MiB, peak (VmHWM) {m['idle']['hwm_mb']:.1f} "
                        f"MiB; dry run {result['seconds']['dry_run']:.1f}s "
                        f"({result['counts']['dry_run_digests']} digests), sweep "
                        f"{result['seconds']['sweep']:.1f}s, load {result['seconds']['load']:.1f}s",
                        flush=True,
                    )
        finally:
            logs = proc.logs()
            proc.stop()
            await client.close()
            await runner.cleanup()
    base, last = steps[0]["memory"]["idle"], steps[-1]["memory"]["idle"]
    growth = {
        "rss_mb": round(last["rss_mb"] - base["rss_mb"], 1),
        "hwm_mb": round(last["hwm_mb"] - base["hwm_mb"], 1),
    }
    return {
        "figure": FIGURE,
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": database.kind,
            "database_description": database.description,
        },
        "config": {
            "steps": list(args.steps),
            "per_user": PER_USER,
            "active_every": ACTIVE_EVERY,
            "due_per_step": args.due,
            "changes_per_step": args.changes,
            "idle_s": args.idle,
        },
        "started": started_memory,
        "steps": steps,
        "baseline": base,
        "growth": growth,
        "goal_mb": GOAL_MB,
        "goal_met": growth["rss_mb"] < GOAL_MB and growth["hwm_mb"] < GOAL_MB,
        "stand_ins": {
            "posts": stand.posts,
            "accepted": stand.accepted,
            "deferred": stand.deferred,
            "delivery_polls": stand.polled,
        },
        "tracebacks": logs.count("Traceback"),
    }


# -- report -------------------------------------------------------------------------------------
def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}"


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def scaling(runs: list[dict[str, Any]], sizes: list[int]) -> str:
    """The "Scaling (10x data)" paragraph, from the steps measured (10x apart if there are)."""
    a, b = 0, len(sizes) - 1
    for i, small in enumerate(sizes):
        ten = next((j for j, big in enumerate(sizes) if big >= 10 * small), None)
        if ten is not None:
            a, b = i, ten
            break

    def grown(phase: str, key: str) -> float:
        return float(
            statistics.median(
                r["steps"][b]["memory"][phase][key] - r["steps"][a]["memory"][phase][key]
                for r in runs
            )
        )

    def ratio(key: str) -> float:
        return float(
            statistics.median(
                r["steps"][b]["seconds"][key] / max(r["steps"][a]["seconds"][key], 1e-9)
                for r in runs
            )
        )

    measured = (
        f"Scaling (10x data): from {sizes[a]:,} to {sizes[b]:,} touchpoints "
        f"({sizes[b] / sizes[a]:.0f}x) the idle RSS grew {grown('idle', 'rss_mb'):.1f} MiB and "
        f"the peak {grown('idle', 'hwm_mb'):.1f} MiB, while the dry run took "
        f"{ratio('dry_run'):.1f}x and the sweep {ratio('sweep'):.1f}x as long. "
    )
    if max(grown("idle", "rss_mb"), grown("idle", "hwm_mb")) >= GOAL_MB:
        return measured + (
            "Memory follows the data here: some path holds it all at once (the per-phase "
            "readings in the JSON show which step raised the peak)."
        )
    return measured + (
        "Memory does not follow the data because nothing holds it all: the dry run streams "
        "users and open "
        "touchpoints in user id order (one user's touchpoints at a time, without their history), "
        "the sweep reads a page of users and their due touchpoints at a time and keeps only what "
        "recording needs (at most 5,000 users' worth), walks over every user page by 500. What "
        "grows is time: the dry run reads every open touchpoint once" + _query_cost(runs)
    )


def _query_cost(runs: list[dict[str, Any]]) -> str:
    """How the queries' cost grows with the data on the engine the runs used."""
    if used_ferretdb(runs):
        return ", and on FerretDB every query scans its collection."
    if used_mongo_java_server(runs):
        return (
            ", and mongo-java-server scans in memory for every query on a non-unique index "
            "(by user, due time or state), which it does not build."
        )
    return "."


def render(runs: list[dict[str, Any]]) -> str:
    """A Markdown section with the medians across runs of each step's memory."""
    first = runs[0]
    sizes = [s["touchpoints"] for s in first["steps"]]
    meta = first["meta"]
    lines = [
        f"## {FIGURE}",
        "",
        f"Workload: the reminders process (real process, its jobs started through "
        f"`PUT /admin/v1/jobs`) as its data grows through {', '.join(f'{n:,}' for n in sizes)} "
        f"touchpoints ({first['config']['per_user']} per user, each with a mirrored contact; "
        f"one user in {first['config']['active_every']} has them due). At each size: a sync of "
        f"{first['config']['changes_per_step']} contact changes, a sweep of "
        f"{first['config']['due_per_step']} due users (one digest recorded, the others deferred "
        "by a 503), the reaper retrying every deferred claim so far, the operator dry run over "
        "every user and open touchpoint (`days=2&limit=5000`), the nudges, schedule and audit "
        "listings, then an idle pause.",
        "",
        "Command: `.venv/bin/python -m bench.reminders_memory` "
        f"({len(runs)} run(s); machine {meta['machine']}, {meta['cpus']} CPUs, Python "
        f"{meta['python']}, database {database_of(runs)}).",
        "",
        "| touchpoints | users | idle RSS MiB (median, min-max) | peak VmHWM MiB | growth vs "
        "first step, RSS / peak MiB | dry run s | dry-run digests |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, size in enumerate(sizes):
        rss = [r["steps"][i]["memory"]["idle"]["rss_mb"] for r in runs]
        hwm = [r["steps"][i]["memory"]["idle"]["hwm_mb"] for r in runs]
        g_rss = [r["steps"][i]["memory"]["idle"]["rss_mb"] - r["baseline"]["rss_mb"] for r in runs]
        g_hwm = [r["steps"][i]["memory"]["idle"]["hwm_mb"] - r["baseline"]["hwm_mb"] for r in runs]
        dry = [r["steps"][i]["seconds"]["dry_run"] for r in runs]
        digests = [r["steps"][i]["counts"]["dry_run_digests"] for r in runs]
        lines.append(
            f"| {size:,} | {first['steps'][i]['users']:,} | {_median(rss)} ({_span(rss)}) | "
            f"{_median(hwm)} ({_span(hwm)}) | {_median(g_rss)} / {_median(g_hwm)} | "
            f"{_median(dry)} | {statistics.median(digests):.0f} |"
        )
    growth_rss = [r["growth"]["rss_mb"] for r in runs]
    growth_hwm = [r["growth"]["hwm_mb"] for r in runs]
    met = statistics.median(growth_rss) < GOAL_MB and statistics.median(growth_hwm) < GOAL_MB
    lines += [
        "",
        f"Baseline: the same process at {sizes[0]:,} touchpoints, in the same run. Goal: growth "
        f"< {GOAL_MB:.0f} MB at {sizes[-1]:,}. Measured: **{_median(growth_rss)} MiB idle RSS, "
        f"{_median(growth_hwm)} MiB peak** (median of {len(runs)}): goal "
        f"{'met' if met else 'NOT met'}.",
        "",
        scaling(runs, sizes),
    ]
    if used_ferretdb(runs):
        lines += [
            "",
            "FerretDB caveat: FerretDB's SQLite backend scans whole collections for every query "
            "and update (even `_id` lookups here), so the times above grow with the collections; "
            "on MongoDB the same queries use the indexes in docs/indexes.md. For the same reason "
            "only one digest per step is recorded (each touchpoint update scans every "
            "touchpoint).",
        ]
    if used_mongo_java_server(runs):
        lines += [
            "",
            mongo_java_server_caveat("touchpoints by user, due time or state; users by next digest")
            + " On MongoDB the same queries use the indexes in docs/indexes.md. "
            "Only one digest per step is recorded, a size set for the slowest development "
            "database; the sweep's reading and dispatch path runs in full.",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k touchpoints")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument(
        "--steps", help="comma-separated touchpoint counts (default 10000,50000,100000,200000)"
    )
    parser.add_argument("--due", type=int, default=20, help="users made due at each step")
    parser.add_argument("--changes", type=int, default=2, help="feed changes at each step")
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds before the reading")
    parser.add_argument("--job-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.steps:
        args.steps = tuple(int(s) for s in args.steps.split(","))
    else:
        args.steps = QUICK_STEPS if args.quick else STEPS
    if args.quick:
        args.due, args.changes, args.idle = min(args.due, 3), min(args.changes, 1), 0.5
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one measurement, print the summary (and write JSON)."""
    args = parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(render([result]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
