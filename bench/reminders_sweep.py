"""Benchmark: a burst of due touchpoints through the whole pipeline, next to one job each.

Data: ``--users`` users (default 5,000) in five time zones, each with ``--per-user`` due
touchpoints (default 10, so 50,000 in all), every user's digest due in the same minute.

* Digest design (what the service does): ``RemindersService.sweep()`` on the real reminders
  app and database hands each user's digest to the real notifier (a separate process, Twilio
  transport, ``SEND_RATE_PER_SECOND`` = ``--send-rate``), which sends it with the real twilio SDK
  to a local stand-in of Twilio's Messages endpoint. Measured: time until the notifier has
  accepted every digest ("handed over"), time until Twilio has them all, touchpoints left out,
  messages per user, SMS segments and encodings, and how far recording (phase 2) gets in
  ``--record-timeout`` seconds. The same design also runs at a tenth of the size, recorded to
  the end, for the scaling figures. With ``--replicas 2`` two reminders apps (two replicas,
  each with its own database and notifier clients, in this process as the single one is) sweep
  the same burst at once, and each one's share of the digests handed over is reported.
* Naive design (the baseline, same run): an ``AsyncIOScheduler`` with one ``DateTrigger`` job
  per touchpoint, all due at once, each posting its own SMS to an in-memory stand-in of the
  notifier (cheaper than the real one, so the comparison favours the baseline). Counted: jobs
  APScheduler reports missed (``misfire_grace_time`` default 1 s), errors, time to send them
  all, segments per touchpoint.

    .venv/bin/python -m bench.reminders_sweep [--users 5000] [--per-user 10] [--replicas 2]
        [--claim-batch 50] [--quick] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from bench.report import (
    database_of,
    median_range,
    mongo_java_server_caveat,
    used_ferretdb,
    used_mongo_java_server,
)
from services.reminders.keys import SERVICE
from services.reminders.main import create_app
from services.reminders.settings import RemindersSettings
from shared.clock import ControllableClock
from shared.config import load_settings
from shared.devdb import DevDatabase, free_port
from shared.http import ServiceClient
from shared.mongo import INDEXES_READY
from shared.sms import count_segments
from tests.support.processes import ServiceProcess, service_process

INTERNAL_SECRET = "bench-internal-secret-0123456789abcdef"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef-xyz"
TWILIO_TOKEN = "bench-twilio-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "d" * 32
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
# Zones where 12:00 UTC is daytime (outside the default 21:00-08:00 quiet hours).
ZONES = ("Europe/London", "Europe/Paris", "Africa/Lagos", "Asia/Dubai", "America/Sao_Paulo")
COMMAND = ".venv/bin/python -m bench.reminders_sweep --users 5000 --per-user 10"


class Notifier:
    """In-memory stand-in for the notifier's POST /internal/v1/messages (naive baseline)."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, Any]] = {}
        self.posts = 0

    def app(self) -> web.Application:
        """The stand-in's routes."""

        async def post(request: web.Request) -> web.Response:
            self.posts += 1
            key = request.headers["Idempotency-Key"]
            if key in self.by_key:
                return web.json_response(self.by_key[key], status=200)
            body = await request.json()
            encoding, segments = count_segments(body["body"])
            message = {"id": key, "segments": segments, "encoding": encoding, **body}
            self.by_key[key] = message
            return web.json_response(message, status=201)

        app = web.Application()
        app.router.add_post("/internal/v1/messages", post)
        return app


class Twilio:
    """Stand-in for Twilio's Messages endpoint: accepts everything, records what arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.bodies: list[str] = []
        self.recipients: list[str] = []

    def app(self) -> web.Application:
        """The stand-in's routes."""

        async def create(request: web.Request) -> web.Response:
            form = await request.post()
            self.arrivals.append(time.perf_counter())
            self.bodies.append(str(form.get("Body", "")))
            self.recipients.append(str(form.get("To", "")))
            sid = "SM" + uuid.uuid4().hex
            return web.json_response({"sid": sid, "status": "queued"}, status=201)

        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
        return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on a free 127.0.0.1 port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def notifier_process(uri: str, twilio_url: str, rate: float, log_dir: Path) -> ServiceProcess:
    """The real notifier as a process, sending through the twilio SDK to ``twilio_url``."""
    env = {
        "MONGODB_URI": uri,
        "DB_NAME": f"bench_notifier_{os.getpid()}",
        "INTERNAL_AUTH_SECRET": INTERNAL_SECRET,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "SMS_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": twilio_url,
        "SEND_RATE_PER_SECOND": str(rate),
        "SEND_BURST": "1",
        "POLL_INTERVAL_S": "0.2",
        "CONTACTS_URL": "http://127.0.0.1:9",
        "REMINDERS_URL": "http://127.0.0.1:9",
        "LOG_LEVEL": "WARNING",
        # The digests expire at the end of their window, in the reminders clock's time.
        "TEST_MODE": "true",
        "CONTROLLABLE_CLOCK": "true",
        "CLOCK_START": T0.isoformat().replace("+00:00", "Z"),
    }
    return service_process("notifier", env, log_dir)


def touchpoints(users: int, per_user: int, prefix: str = "u") -> list[dict[str, Any]]:
    """The shared data set: due cadence touchpoints, ``per_user`` for each user."""
    out: list[dict[str, Any]] = []
    for u in range(users):
        for n in range(per_user):
            base = T0 - timedelta(days=20 + n + (u % 7))
            out.append(
                {
                    "_id": f"cad:{prefix}{u:05d}:c{n:02d}",
                    "user_id": f"{prefix}{u:05d}",
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


async def digest_design(
    uri: str,
    notifier_url: str,
    twilio: Twilio,
    users: int,
    per_user: int,
    concurrency: int,
    record_timeout: float,
    deliver_timeout: float,
    replicas: int = 1,
    claim_batch: int | None = None,
) -> dict[str, Any]:
    """Load the data into a fresh database and time one sweep (of every replica at once)."""
    # Each size has its own users: the notifier must not see a repeated idempotency key.
    prefix = f"s{users}u"
    data = touchpoints(users, per_user, prefix)
    db_name = f"bench_reminders_{os.getpid()}_{users}"
    env = {
        "MONGODB_URI": uri,
        "DB_NAME": db_name,
        "INTERNAL_AUTH_SECRET": INTERNAL_SECRET,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "NOTIFIER_URL": notifier_url,
        "CONTACTS_URL": "http://127.0.0.1:9",
        "SCHEDULER_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "SWEEP_CONCURRENCY": str(concurrency),
        "SWEEP_BATCH": "1000",
    }
    if claim_batch is not None:
        env["SWEEP_CLAIM_BATCH"] = str(claim_batch)
    settings = load_settings(RemindersSettings, env)
    apps = [create_app(settings, clock=ControllableClock(T0, frozen=True)) for _ in range(replicas)]
    runners = [web.AppRunner(app) for app in apps]
    for runner in runners:
        await runner.setup()
    try:
        for app in apps:
            await app[INDEXES_READY].wait()
        services = [app[SERVICE] for app in apps]
        service = services[0]
        db = service.repo.db
        await service.init_defaults()
        # Every item fits: a daily budget of ``per_user`` and enough segments for them.
        await service.repo.set_config(
            "policy", {"window": {"daily_budget": per_user, "max_segments": 10}}
        )
        load_start = time.perf_counter()
        await db.users.insert_many(
            [
                {
                    "_id": f"{prefix}{u:05d}",
                    "phone": f"+1555{u:07d}",
                    "name": f"User {u}",
                    "time_zone": ZONES[u % len(ZONES)],
                    "prefs": {},
                    "next_digest_at": T0,
                }
                for u in range(users)
            ]
        )
        for start in range(0, len(data), 5000):
            await db.touchpoints.insert_many(data[start : start + 5000], ordered=False)
        load_s = time.perf_counter() - load_start

        # When the notifier accepts each digest (the hand-over the goal is about), and which
        # replica handed it over. The sweep hands over in batches (send_many); a single send is
        # the reaper's path and is timed too.
        accepted: list[float] = []
        by_replica = [0] * replicas
        for index, one in enumerate(services):
            gateway = one.notifier
            real_many: Callable[..., Awaitable[Any]] = gateway.send_many
            real_send: Callable[..., Awaitable[Any]] = gateway.send

            async def timed_many(
                items: Any, real: Callable[..., Awaitable[Any]] = real_many, index: int = index
            ) -> Any:
                answers = await real(items)
                taken = sum(1 for answer in answers if isinstance(answer, dict))
                accepted.extend([time.perf_counter()] * taken)
                by_replica[index] += taken
                return answers

            async def timed_send(
                body: Any,
                key: str,
                real: Callable[..., Awaitable[Any]] = real_send,
                index: int = index,
            ) -> Any:
                result = await real(body, key=key)
                accepted.append(time.perf_counter())
                by_replica[index] += 1
                return result

            gateway.send_many = timed_many  # type: ignore[method-assign]
            gateway.send = timed_send  # type: ignore[method-assign]
        arrived_before = len(twilio.arrivals)
        started = time.perf_counter()
        sweep = asyncio.ensure_future(asyncio.gather(*(one.sweep() for one in services)))
        deadline = started + 600
        while len(accepted) < users and not sweep.done() and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        handover_s = (accepted[-1] - started) if accepted else float("nan")
        # Phase 2 (schedules and records) is given a bounded time; the reaper finishes the rest.
        try:
            await asyncio.wait_for(asyncio.shield(sweep), timeout=record_timeout)
            record_done = True
        except TimeoutError:
            record_done = False
        record_s = time.perf_counter() - started - handover_s
        claims_recorded = await db.dispatches.count_documents({"state": "recorded"})
        nudged = await db.touchpoints.count_documents({"state": "nudged"})
        # What each replica's sweep counted (sent, owned_elsewhere, error, ...), when it ended.
        sweep_stats = sweep.result() if sweep.done() and not sweep.exception() else None
        if not sweep.done():
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)
        # Then the notifier drains its queue at its rate limit.
        wait_until = time.perf_counter() + deliver_timeout
        while len(twilio.arrivals) - arrived_before < users and time.perf_counter() < wait_until:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        delivered = twilio.arrivals[arrived_before:]
        bodies = twilio.bodies[arrived_before:]
        at_twilio_per_phone = Counter(twilio.recipients[arrived_before:])
        carried = 0
        per_user_count: dict[str, int] = {}
        async for claim in db.dispatches.find({}, {"items": 1, "user_id": 1}):
            carried += len(claim.get("items", []))
            per_user_count[claim["user_id"]] = per_user_count.get(claim["user_id"], 0) + 1
        encodings = [count_segments(body) for body in bodies]
        segments = sum(n for _, n in encodings)
        return {
            "users": users,
            "touchpoints": len(data),
            "load_s": load_s,
            "handed_over": len(accepted),
            "handover_s": handover_s,
            "carried": carried,
            "missed": len(data) - carried,
            "users_messaged": len(per_user_count),
            # Claims are one per user by construction; what reached Twilio says it was one SMS.
            "max_claims_per_user": max(per_user_count.values(), default=0),
            "max_messages_per_user": max(at_twilio_per_phone.values(), default=0),
            "replicas": replicas,
            "claim_batch": settings.sweep_claim_batch,
            "concurrency": settings.sweep_concurrency,
            "handed_over_by_replica": by_replica,
            "sweep_stats": sweep_stats,
            "share_by_replica": [100 * n / max(len(accepted), 1) for n in by_replica],
            "at_twilio": len(delivered),
            "at_twilio_s": (delivered[-1] - started) if delivered else float("nan"),
            "segments": segments,
            "segments_per_touchpoint": segments / max(carried, 1),
            "ucs2_messages": sum(1 for enc, _ in encodings if enc != "GSM-7"),
            "record_done": record_done,
            "record_s": record_s,
            "claims_recorded": claims_recorded,
            "touchpoints_nudged": nudged,
            "sample": bodies[0] if bodies else "",
        }
    finally:
        await apps[0][SERVICE].repo.db.client.drop_database(db_name)
        for runner in runners:
            await runner.cleanup()


async def naive_design(
    notifier: Notifier,
    notifier_url: str,
    data: list[dict[str, Any]],
    timeout_s: float,
    grace: int | None,
    limit: int | None = None,
) -> dict[str, Any]:
    """One APScheduler job per touchpoint, all due at the same instant."""
    client = ServiceClient(
        base_url=notifier_url,
        caller="reminders",
        audience="notifier",
        secret=INTERNAL_SECRET,
        clock=ControllableClock(T0),
        attempts=1,
    )
    await client.start()
    scheduler = AsyncIOScheduler(timezone="UTC")
    done = {"executed": 0, "missed": 0, "error": 0}
    finished = asyncio.Event()
    total = len(data)

    def listener(event: Any) -> None:
        kind = {
            EVENT_JOB_EXECUTED: "executed",
            EVENT_JOB_MISSED: "missed",
            EVENT_JOB_ERROR: "error",
        }[event.code]
        done[kind] += 1
        if sum(done.values()) >= total:
            finished.set()

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    segments = 0

    gate = asyncio.Semaphore(limit or len(data))

    async def send(tp: dict[str, Any]) -> None:
        async with gate:
            await send_one(tp)

    async def send_one(tp: dict[str, Any]) -> None:
        days = (T0 - tp["base"]).days
        body = (
            f"Time to reconnect with {tp['contact_name']}, last touch {days} days ago. "
            "Reply 1 when done, SNOOZE 1 2w."
        )
        await client.request(
            "POST",
            "/internal/v1/messages",
            idempotency_key=f"tp:{tp['_id']}",
            json_body={
                "user_id": tp["user_id"],
                "to": "+15550000000",
                "body": body,
                "purpose": "nudge",
            },
        )

    add_start = time.perf_counter()
    run_at = datetime.now(UTC) + timedelta(seconds=5)
    for tp in data:
        scheduler.add_job(
            send,
            DateTrigger(run_date=run_at),
            args=[tp],
            id=tp["_id"],
            misfire_grace_time=grace,
        )
        days = (T0 - tp["base"]).days
        segments += count_segments(
            f"Time to reconnect with {tp['contact_name']}, last touch {days} days ago. "
            "Reply 1 when done, SNOOZE 1 2w."
        )[1]
    add_s = time.perf_counter() - add_start
    scheduler.start()
    fire_wait = max((run_at - datetime.now(UTC)).total_seconds(), 0)
    started = time.perf_counter()
    try:
        await asyncio.wait_for(finished.wait(), timeout=timeout_s + fire_wait)
        timed_out = False
    except TimeoutError:
        timed_out = True
    elapsed = time.perf_counter() - started - fire_wait
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0.5)
    await client.close()
    sent = sum(1 for k in notifier.by_key if k.startswith("tp:"))
    return {
        "add_s": add_s,
        "run_s": elapsed,
        "timed_out": timed_out,
        **done,
        "sent": sent,
        "segments_per_touchpoint": segments / max(len(data), 1),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One complete run: the digest design at full and a tenth of the size, then the baseline."""
    server = DevDatabase()
    uri = server.start()
    twilio = Twilio()
    stand_in = Notifier()
    truns, turl = await serve(twilio.app())
    nruns, nurl = await serve(stand_in.app())
    log_dir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    notifier = notifier_process(uri, turl, args.send_rate, log_dir)
    result: dict[str, Any] = {
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": server.kind,
            "database_description": server.description,
            "send_rate": args.send_rate,
            "concurrency": args.concurrency,
            "record_timeout_s": args.record_timeout,
            "replicas": args.replicas,
            "claim_batch": args.claim_batch,
        }
    }
    if args.concurrency is None:
        # FerretDB's SQLite backend answers SQLITE_BUSY to many concurrent writers; the other
        # servers take the service's default.
        args.concurrency = (
            4
            if server.kind == "ferretdb"
            else RemindersSettings.model_fields["sweep_concurrency"].default
        )
        result["meta"]["concurrency"] = args.concurrency
    try:
        notifier.start()
        deliver_timeout = args.users / args.send_rate + 120
        small = max(args.users // 10, 1)
        result["tenth"] = await digest_design(
            uri,
            notifier.url,
            twilio,
            small,
            args.per_user,
            args.concurrency,
            record_timeout=600.0,
            deliver_timeout=deliver_timeout,
            replicas=args.replicas,
            claim_batch=args.claim_batch,
        )
        result["digest"] = await digest_design(
            uri,
            notifier.url,
            twilio,
            args.users,
            args.per_user,
            args.concurrency,
            record_timeout=args.record_timeout,
            deliver_timeout=deliver_timeout,
            replicas=args.replicas,
            claim_batch=args.claim_batch,
        )
        naive = []
        if not args.skip_naive:
            data = touchpoints(args.users, args.per_user)
            # APScheduler's default misfire grace (1 s); then no limit on lateness but at most
            # 50 sends in flight, as the sweep's notifier client allows.
            for grace, limit in ((1, None), (None, 50)):
                stand_in.by_key.clear()
                n = await naive_design(stand_in, nurl, data, args.naive_timeout, grace, limit)
                naive.append({"grace": grace, "limit": limit, **n})
        result["naive"] = naive
    finally:
        notifier.stop()
        await nruns.cleanup()
        await truns.cleanup()
        server.close()
    return result


def _median(runs: list[dict[str, Any]], *path: Any) -> str:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return median_range(values)


def _database_note(runs: list[dict[str, Any]]) -> str:
    """What the database makes of these figures, for the engine the runs used."""
    if used_ferretdb(runs):
        return (
            "On FerretDB every one of those queries reads its whole collection (touchpoints, "
            "dispatches, messages), `_id` lookups included, and the notifier's worker, sending "
            "meanwhile, competes for the same FerretDB process and its two CPUs; the goal's "
            "verdict above is FerretDB's. "
        )
    if used_mongo_java_server(runs):
        return (
            "On mongo-java-server the `_id` and unique lookups are indexed, but the touchpoint "
            "read (by user and state) and every conditional update (by `_id` plus a state) scan "
            "their collection, which is why recording lags the hand-over: on MongoDB each is an "
            "index lookup. "
            + mongo_java_server_caveat("touchpoints by user, conditional claim updates")
            + " "
        )
    return ""


def render(runs: list[dict[str, Any]]) -> str:
    """The Markdown section of docs/BENCHMARKS.md for these runs (medians, min-max)."""
    first = runs[0]
    d, t, meta = first["digest"], first["tenth"], first["meta"]
    replicas = int(d.get("replicas", 1))
    lines = [
        "## Dispatch: a burst of due touchpoints"
        + (f", {replicas} reminders replicas" if replicas > 1 else ""),
        "",
        f"Workload: {d['users']:,} users in five time zones, {d['touchpoints']:,} touchpoints "
        "due in the same minute; the reminders sweep (real app, real database) hands one digest "
        "per user to the real notifier process, which sends them with the twilio SDK to a local "
        f"stand-in of Twilio's Messages endpoint at `SEND_RATE_PER_SECOND={meta['send_rate']:g}`."
        + (
            " Baseline in the same run: one APScheduler `DateTrigger` job per touchpoint, each "
            "posting its own SMS to an in-memory notifier stand-in."
            if any(r["naive"] for r in runs)
            else " (The one-job-per-touchpoint baseline is in the single-replica section.)"
        ),
        "",
        f"Command: `{COMMAND}{f' --replicas {replicas}' if replicas > 1 else ''}` "
        f"({len(runs)} run{'s' if len(runs) != 1 else ''}; median, min-max in brackets); "
        f"database: {database_of(runs)}; claim batches of {meta.get('claim_batch') or 50} users, "
        f"SWEEP_CONCURRENCY={meta.get('concurrency')}.",
        "",
        "| figure | digest sweep | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    missed = max(int(r["digest"]["missed"]) for r in runs)
    tenth_handover = statistics.median(float(r["tenth"]["handover_s"]) for r in runs)
    handover = statistics.median(float(r["digest"]["handover_s"]) for r in runs)
    lines += [
        f"| touchpoints left out of every digest (missed) | {missed} (worst run) | 0 | "
        f"{'yes' if missed == 0 else 'no'} |",
        f"| all {d['users']:,} digests handed over to the notifier (s) | "
        f"{_median(runs, 'digest', 'handover_s')} | <= 60 | {'yes' if handover <= 60 else 'no'} |",
        f"| messages per user (max) | {max(r['digest']['max_messages_per_user'] for r in runs)} "
        "| 1 | |",
        f"| all digests at Twilio (s), limit {meta['send_rate']:g} msg/s | "
        f"{_median(runs, 'digest', 'at_twilio_s')} | | |",
        f"| SMS segments per touchpoint | {_median(runs, 'digest', 'segments_per_touchpoint')}"
        " | <= 0.5 | |",
        f"| UCS-2 digests | {max(r['digest']['ucs2_messages'] for r in runs)} | 0 | |",
        *(
            [
                f"| share of the digests handed over by each of {d['replicas']} reminders "
                "replicas (%) | "
                + " / ".join(
                    _median(runs, "digest", "share_by_replica", i) for i in range(d["replicas"])
                )
                + " | 35-65 each | "
                + (
                    "yes"
                    if all(
                        35 <= share <= 65 for r in runs for share in r["digest"]["share_by_replica"]
                    )
                    else "no"
                )
                + " |"
            ]
            if d.get("replicas", 1) > 1
            else []
        ),
        f"| phase 2: claims recorded within {meta['record_timeout_s']:g} s after hand-over | "
        f"{_median(runs, 'digest', 'claims_recorded')} of {d['users']:,} | | |",
        "",
    ]
    if any(r["naive"] for r in runs):
        lines += [
            "| baseline: one APScheduler job per touchpoint | missed | errors | sent | time (s) "
            "| segments per touchpoint |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for index, variant in enumerate(first["naive"]):
            label = (
                f"misfire_grace_time={variant['grace']}, "
                f"{'at most ' + str(variant['limit']) if variant['limit'] else 'unlimited'}"
                " sends in flight"
            )
            lines.append(
                f"| {label} | {_median(runs, 'naive', index, 'missed')} | "
                f"{_median(runs, 'naive', index, 'error')} | "
                f"{_median(runs, 'naive', index, 'sent')}"
                f" | {_median(runs, 'naive', index, 'run_s')} | "
                f"{variant['segments_per_touchpoint']:.2f} |"
            )
        lines.append("")
    lines += [
        f"Scaling (10x data): at a tenth of the size ({t['users']:,} users, "
        f"{t['touchpoints']:,} touchpoints) the hand-over took "
        f"{_median(runs, 'tenth', 'handover_s')} s "
        f"({1000 * tenth_handover / t['users']:.0f} ms a user) against "
        f"{_median(runs, 'digest', 'handover_s')} s "
        f"({1000 * handover / d['users']:.0f} ms a user) at full size, and recording "
        f"finished {_median(runs, 'tenth', 'record_s')} s after it "
        f"({_median(runs, 'tenth', 'claims_recorded')} claims recorded). The work per user is "
        "the same at both sizes (per batch of users: one read of their claims, one of their "
        "touchpoints, one unordered claim insert, one notifier batch call, a few bulk writes to "
        "record; on the notifier's side one message insert per batch, then its worker's claim "
        "and status writes), so a growing time per user is the database's. " + _database_note(runs),
        "",
        "Recording happens after every digest is out, so its slowness delays bookkeeping, "
        "never an SMS; what a bounded run leaves unrecorded the reaper finishes, and claims "
        "plus idempotency keys make a repeat a no-op.",
        "",
        "The naive baseline holds one job per touchpoint in memory (lost on restart, duplicated "
        "by every replica), and sends one SMS per touchpoint: ten texts at once per user.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run once, print a summary (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--send-rate", type=float, default=100.0, help="notifier msg/s")
    parser.add_argument("--naive-timeout", type=float, default=180.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--record-timeout", type=float, default=30.0)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="SWEEP_CONCURRENCY (default: 4 on FerretDB, the service's default elsewhere)",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="reminders replicas sweeping the burst at once"
    )
    parser.add_argument(
        "--claim-batch", type=int, default=None, help="SWEEP_CLAIM_BATCH (service default 50)"
    )
    parser.add_argument("--quick", action="store_true", help="100 users, for a smoke test")
    parser.add_argument("--json", type=Path, help="write the measurement here")
    args = parser.parse_args()
    if args.quick:
        args.users, args.naive_timeout, args.send_rate = 100, 30.0, 200.0
        args.record_timeout = 5.0
    # One warning per missed job would bury the results.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    result = asyncio.run(measure(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(render([result]))
    print("sample digest:\n" + result["digest"]["sample"])


if __name__ == "__main__":
    main()
