"""Benchmark: one sweep dispatching a burst of due touchpoints, next to one APScheduler job each.

Data: ``--users`` users (default 5,000) in five time zones, each with ``--per-user`` due
touchpoints (default 10, so 50,000 in all), every user's digest due at the same instant.

* Digest design (what the service does): ``RemindersService.sweep()`` on the real app and
  database: batched queries, one unique-key claim per user and window, one notifier call per
  user with an idempotency key, then the touchpoints are marked nudged. Checked afterwards:
  every user got exactly one message, every touchpoint was carried (none missed).
* Naive design: an ``AsyncIOScheduler`` with one ``DateTrigger`` job per touchpoint, all due at
  once, each sending its own SMS to the same notifier stand-in. Counted: jobs scheduled, jobs
  APScheduler reports as missed (``misfire_grace_time`` default 1 s), time to send them all.

Both report SMS segments per touchpoint (``shared.sms.count_segments``). The notifier is a
stand-in that stores messages by idempotency key in memory, in the same process.

    .venv/bin/python -m bench.reminders_sweep [--users 5000] [--per-user 10] [--skip-naive]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from services.reminders.keys import SERVICE
from services.reminders.main import create_app
from services.reminders.settings import RemindersSettings
from shared.clock import ControllableClock
from shared.config import load_settings
from shared.devdb import DevDatabase, free_port
from shared.http import ServiceClient
from shared.mongo import INDEXES_READY
from shared.sms import count_segments

INTERNAL_SECRET = "bench-internal-secret-0123456789abcdef"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef-xyz"
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
# Zones where 12:00 UTC is daytime (outside the default 21:00-08:00 quiet hours).
ZONES = ("Europe/London", "Europe/Paris", "Africa/Lagos", "Asia/Dubai", "America/Sao_Paulo")


class Notifier:
    """Stand-in for the notifier's POST /internal/v1/messages: idempotent, in memory."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.last_arrival = 0.0

    def app(self) -> web.Application:
        async def post(request: web.Request) -> web.Response:
            self.posts += 1
            key = request.headers["Idempotency-Key"]
            if key in self.by_key:
                return web.json_response(self.by_key[key], status=200)
            body = await request.json()
            encoding, segments = count_segments(body["body"])
            message = {
                "id": key,
                "status": "queued",
                "segments": segments,
                "encoding": encoding,
                **body,
            }
            self.by_key[key] = message
            self.last_arrival = time.perf_counter()
            return web.json_response(message, status=201)

        app = web.Application()
        app.router.add_post("/internal/v1/messages", post)
        return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on a free 127.0.0.1 port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def touchpoints(users: int, per_user: int) -> list[dict[str, Any]]:
    """The shared data set: due cadence touchpoints, ``per_user`` for each user."""
    out = []
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


async def digest_design(
    uri: str,
    notifier: Notifier,
    notifier_url: str,
    users: int,
    per_user: int,
    data: list[dict[str, Any]],
    concurrency: int,
    dispatch_timeout: float = 300.0,
    record_timeout: float = 60.0,
) -> dict[str, Any]:
    """Load the data into a fresh database and time one sweep."""
    db_name = f"bench_reminders_{os.getpid()}"
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
    settings = load_settings(RemindersSettings, env)
    clock = ControllableClock(T0, frozen=True)
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await app[INDEXES_READY].wait()
        service = app[SERVICE]
        db = service.repo.db
        await db.drop_collection("users")
        await db.drop_collection("touchpoints")
        await db.drop_collection("dispatches")
        await service.init_defaults()
        # Every item fits: a daily budget of ``per_user`` and enough segments for them.
        await service.repo.set_config(
            "policy", {"window": {"daily_budget": per_user, "max_segments": 10}}
        )
        load_start = time.perf_counter()
        await db.users.insert_many(
            [
                {
                    "_id": f"u{u:05d}",
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
        started = time.perf_counter()
        sweep = asyncio.create_task(service.sweep())
        # Phase 1 ends when the notifier holds a digest for every user.
        deadline = started + dispatch_timeout
        while time.perf_counter() < deadline and not sweep.done():
            if sum(1 for k in notifier.by_key if k.startswith("digest:")) >= users:
                break
            await asyncio.sleep(0.05)
        dispatched = sum(1 for k in notifier.by_key if k.startswith("digest:"))
        dispatch_s = notifier.last_arrival - started
        # Phase 2 (schedules and records) is given a bounded time; the reaper finishes the rest.
        stats: dict[str, int] | str
        try:
            stats = await asyncio.wait_for(sweep, timeout=record_timeout)
        except TimeoutError:
            stats = f"recording stopped after {record_timeout:.0f}s"
        sweep_s = time.perf_counter() - started
        messages = list(notifier.by_key.values())
        digest_keys = [m for m in messages if m["id"].startswith("digest:")]
        per_user_count: dict[str, int] = {}
        for m in digest_keys:
            per_user_count[m["user_id"]] = per_user_count.get(m["user_id"], 0) + 1
        nudged = await db.touchpoints.count_documents({"state": "nudged"})
        claims = await db.dispatches.count_documents({"state": "recorded"})
        segments = sum(m["segments"] for m in digest_keys)
        claimed_items = 0
        async for claim in db.dispatches.find({}, {"items": 1}):
            claimed_items += len(claim.get("items", []))
        return {
            "load_s": load_s,
            "dispatched": dispatched,
            "dispatch_s": dispatch_s,
            "claimed_items": claimed_items,
            "sweep_s": sweep_s,
            "stats": stats,
            "users_messaged": len(per_user_count),
            "max_messages_per_user": max(per_user_count.values(), default=0),
            "touchpoints_nudged": nudged,
            "claims_recorded": claims,
            "segments": segments,
            "segments_per_touchpoint": segments / max(nudged, 1),
            "gsm7": sum(1 for m in digest_keys if m["encoding"] == "GSM-7"),
            "sample": digest_keys[0]["body"] if digest_keys else "",
        }
    finally:
        await app[SERVICE].repo.db.client.drop_database(db_name)
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


async def report_digest(
    uri: str, notifier: Notifier, nurl: str, args: Any, data: list[dict[str, Any]]
) -> None:
    """Run the digest design and print what it did."""
    d = await digest_design(
        uri,
        notifier,
        nurl,
        args.users,
        args.per_user,
        data,
        args.concurrency,
        record_timeout=args.record_timeout,
    )
    print("\n== digest design (service sweep) ==")
    print(f"load {d['load_s']:.1f}s")
    print(
        f"phase 1: {d['dispatched']}/{args.users} users' digests at the notifier after "
        f"{d['dispatch_s']:.1f}s, carrying {d['claimed_items']}/{len(data)} touchpoints "
        f"(max {d['max_messages_per_user']} message per user)"
    )
    print(
        f"phase 2: touchpoints marked nudged {d['touchpoints_nudged']}, claims recorded "
        f"{d['claims_recorded']}; whole sweep {d['sweep_s']:.1f}s; outcome {d['stats']}"
    )
    print(
        f"SMS segments {d['segments']} = {d['segments'] / max(d['claimed_items'], 1):.2f} "
        f"per touchpoint; GSM-7 messages {d['gsm7']}/{d['users_messaged']}"
    )
    print("sample digest:\n" + d["sample"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--naive-timeout", type=float, default=180.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-digest", action="store_true")
    parser.add_argument("--record-timeout", type=float, default=60.0)
    # FerretDB's SQLite backend answers SQLITE_BUSY to many concurrent writers; MongoDB does not.
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    # One warning per missed job would bury the results.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    server = DevDatabase()
    uri = server.start()
    notifier = Notifier()
    nrunner, nurl = await serve(notifier.app())
    data = touchpoints(args.users, args.per_user)
    try:
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}"
        )
        print(f"database: {uri.split('@')[-1]}")
        print(f"data: {args.users} users x {args.per_user} = {len(data)} due touchpoints")
        if not args.skip_digest:
            await report_digest(uri, notifier, nurl, args, data)
        if not args.skip_naive:
            # APScheduler's default misfire grace (1 s), then no limit (every job runs late).
            # Then no limit on lateness but at most 50 sends in flight, as the sweep does.
            for grace, limit in ((1, None), (None, None), (None, 50)):
                notifier.by_key = {k: v for k, v in notifier.by_key.items() if k.startswith("d")}
                n = await naive_design(notifier, nurl, data, args.naive_timeout, grace, limit)
                print(
                    f"\n== naive design (one APScheduler job per touchpoint), "
                    f"misfire_grace_time={grace}, sends in flight {limit or 'unlimited'} =="
                )
                print(
                    f"add {len(data)} jobs {n['add_s']:.1f}s; run {n['run_s']:.1f}s"
                    f"{' (timed out)' if n['timed_out'] else ''}; executed {n['executed']}, "
                    f"missed {n['missed']}, errors {n['error']}; SMS sent {n['sent']}"
                )
                print(f"SMS segments per touchpoint {n['segments_per_touchpoint']:.2f}")
    finally:
        await nrunner.cleanup()
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
