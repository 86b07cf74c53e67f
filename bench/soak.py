"""Bounded soak of the whole system on loopback: mixed API traffic and SMS replies while digests go
out. Reports errors, latency, and growth in memory and open file descriptors per service.

    .venv/bin/python -m bench.soak --seconds 180 --users 20 --workers 8 --write-docs

Everything runs on 127.0.0.1 (the development database of ``shared.devdb``, the three services
in sandbox mode) and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.report import describe
from shared.auth import issue_service_token
from shared.devdb import DevDatabase
from tests.support.settings import INTERNAL_SECRET
from tests.support.stack import Stack

DOC = Path(__file__).resolve().parents[1] / "docs" / "soak.md"
START = datetime(2026, 4, 6, 12, 0, tzinfo=UTC)  # a Monday; 08:00 in New York


@dataclass
class Tally:
    """Latencies and failures per operation."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[dict[str, Any]] = field(default_factory=list)
    digests: int = 0


def _proc_stats(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return rss, fds


class Client:
    """Calls the public and internal APIs, timing each call."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack, tally: Tally) -> None:
        self.session = session
        self.stack = stack
        self.tally = tally

    async def call(
        self,
        op: str,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method == "POST":
            headers["Idempotency-Key"] = f"soak-{random.getrandbits(64):x}"
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None) if resp.status != 204 else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            self.tally.errors[op] += 1
            return None
        self.tally.latencies[op].append(time.perf_counter() - started)
        if status not in expect:
            self.tally.errors[op] += 1
            return None
        return data

    async def internal(
        self, op: str, service: str, method: str, path: str, body: Any = None
    ) -> Any:
        token = issue_service_token(INTERNAL_SECRET, "cli", service)
        return await self.call(op, method, self.stack.url(service) + path, token=token, body=body)


async def _sign_in(client: Client, phone: str) -> str:
    contacts = client.stack.url("contacts")
    started = await client.call(
        "otp_start", "POST", contacts + "/v1/auth/otp/start", body={"phone": phone}
    )
    assert started, "sign-in failed to start"
    for _ in range(100):
        box = await client.internal(
            "outbox", "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=1"
        )
        if box and box["items"]:
            code = re.search(r"\b(\d{6})\b", box["items"][0]["body"])
            if code:
                tokens = await client.call(
                    "otp_verify",
                    "POST",
                    contacts + "/v1/auth/otp/verify",
                    body={"challenge_id": started["challenge_id"], "code": code.group(1)},
                )
                assert tokens, "sign-in failed"
                return str(tokens["access_token"])
        await asyncio.sleep(0.1)
    raise RuntimeError("no sign-in code arrived")


async def _seed(client: Client, users: int, contacts_each: int) -> list[dict[str, Any]]:
    people = []
    base = client.stack.url("contacts")
    for n in range(users):
        phone = f"+1212555{n:04d}"
        token = await _sign_in(client, phone)
        await client.call(
            "patch_me",
            "PATCH",
            base + "/v1/me",
            token=token,
            body={"time_zone": "America/New_York"},
        )
        ids = []
        for c in range(contacts_each):
            created = await client.call(
                "create_contact",
                "POST",
                base + "/v1/contacts",
                token=token,
                body={"name": f"Person {n}-{c}", "tier": "ABC"[c % 3], "company": "Acme"},
            )
            if created:
                ids.append(created["id"])
        people.append({"phone": phone, "token": token, "contacts": ids})
    return people


async def _worker(client: Client, people: list[dict[str, Any]], stop_at: float) -> None:
    contacts, reminders = client.stack.url("contacts"), client.stack.url("reminders")
    while time.monotonic() < stop_at:
        who = random.choice(people)
        token = who["token"]
        roll = random.random()
        if roll < 0.35:
            await client.call(
                "list_contacts", "GET", contacts + "/v1/contacts?limit=20", token=token
            )
        elif roll < 0.5:
            created = await client.call(
                "create_contact",
                "POST",
                contacts + "/v1/contacts",
                token=token,
                body={"name": f"Soak {random.getrandbits(24):x}", "tier": "C"},
            )
            if created:
                who["contacts"].append(created["id"])
        elif roll < 0.65 and who["contacts"]:
            cid = random.choice(who["contacts"])
            await client.call(
                "log_interaction",
                "POST",
                contacts + f"/v1/contacts/{cid}/interactions",
                token=token,
                body={"kind": random.choice(["call", "coffee", "message"])},
            )
        elif roll < 0.8:
            await client.call("touchpoints", "GET", reminders + "/v1/touchpoints", token=token)
        else:
            await client.internal(
                "sms_reply",
                "notifier",
                "POST",
                "/internal/v1/sandbox/inbound",
                body={"from": who["phone"], "text": random.choice(["WHO", "HELP", "1", "SKIP 2"])},
            )


async def _days(client: Client, stop_at: float, period_s: float) -> None:
    """Move every service's clock to the next day's digest time, again and again."""
    day = 0
    while time.monotonic() < stop_at:
        day += 1
        when = (START + timedelta(days=day, hours=1, seconds=30)).isoformat()
        for name in ("contacts", "reminders", "notifier"):
            await client.internal("clock", name, "PUT", "/internal/v1/test/clock", {"now": when})
        await asyncio.sleep(period_s)


async def _sampler(stack: Stack, tally: Tally, stop_at: float, every_s: float) -> None:
    started = time.monotonic()
    while True:
        row: dict[str, Any] = {"t": round(time.monotonic() - started)}
        for name, proc in stack.procs.items():
            if proc.process is not None:
                row[name] = _proc_stats(proc.process.pid)
        tally.samples.append(row)
        if time.monotonic() >= stop_at:
            return
        await asyncio.sleep(every_s)


async def run(args: argparse.Namespace) -> tuple[Tally, dict[str, Any]]:
    """Start everything, seed, soak, count, stop."""
    tally = Tally()
    with (
        tempfile.TemporaryDirectory(prefix="touchbase-soak-") as tmp,
        DevDatabase(data_dir=Path(tmp) / "db", uri="", persistent=False) as db,
    ):
        extra = {
            "contacts": {"OTP_MAX_PER_IP": "100000", "OTP_MAX_PER_PHONE": "1000"},
            "reminders": {"SYNC_INTERVAL_S": "1", "SWEEP_INTERVAL_S": "1"},
            "notifier": {
                "POLL_INTERVAL_S": "0.2",
                "SEND_RATE_PER_SECOND": "100",
                "SEND_BURST": "20",
                "INBOUND_RATE_PER_MINUTE": "10000",
                "INBOUND_BURST": "1000",
            },
        }
        stack = Stack(db.uri, "soak", Path(tmp), extra_env=extra, clock_start=START.isoformat())
        stack.start()
        try:
            timeout = aiohttp.ClientTimeout(total=30)
            connector = aiohttp.TCPConnector(limit=args.workers * 2)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                client = Client(session, stack, tally)
                people = await _seed(client, args.users, args.contacts)
                seeded_errors = sum(tally.errors.values())
                stop_at = time.monotonic() + args.seconds
                await asyncio.gather(
                    _sampler(stack, tally, stop_at, args.sample_s),
                    _days(client, stop_at, args.day_s),
                    *(_worker(client, people, stop_at) for _ in range(args.workers)),
                )
                box = await client.internal(
                    "outbox", "notifier", "GET", "/internal/v1/messages?limit=500"
                )
                items = box.get("items", []) if isinstance(box, dict) else []
                tally.digests = sum(1 for m in items if m.get("purpose") == "nudge")
        finally:
            logs = {name: proc.logs() for name, proc in stack.procs.items()}
            stack.stop()
    tracebacks = {name: text.count("Traceback") for name, text in logs.items()}
    database = describe(db.kind, db.description)
    return tally, {"seed_errors": seeded_errors, "tracebacks": tracebacks, "database": database}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def report(tally: Tally, extra: dict[str, Any], args: argparse.Namespace) -> str:
    """The results as Markdown."""
    total = sum(len(v) for v in tally.latencies.values())
    errors = sum(tally.errors.values())
    lines = [
        f"Command: `.venv/bin/python -m bench.soak --seconds {args.seconds} --users {args.users} "
        f"--contacts {args.contacts} --workers {args.workers}`",
        "",
        f"Machine: {os.cpu_count()} cores, {extra.get('database', 'database')} on loopback, "
        "services in sandbox mode. "
        f"{total} requests, {errors} errors ({extra['seed_errors']} while seeding), "
        f"{tally.digests} digests sent, tracebacks in logs: {extra['tracebacks']}.",
        "",
        "| operation | requests | errors | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for op in sorted(tally.latencies):
        values = tally.latencies[op]
        lines.append(
            f"| {op} | {len(values)} | {tally.errors.get(op, 0)} | {_pct(values, 0.5):.0f} | "
            f"{_pct(values, 0.99):.0f} |"
        )
    lines += [
        "",
        "| service | RSS start MiB | RSS end MiB | RSS max MiB | fds start | fds end | fds max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    # The first sample is taken once seeding is done, so growth is that of the soak itself.
    for name in ("contacts", "reminders", "notifier"):
        series = [row[name] for row in tally.samples if name in row]
        if not series:
            continue
        rss = [kib / 1024 for kib, _ in series]
        fds = [n for _, n in series]
        lines.append(
            f"| {name} | {rss[0]:.0f} | {rss[-1]:.0f} | {max(rss):.0f} | {fds[0]} | {fds[-1]} | "
            f"{max(fds)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the soak and print (and optionally write) the report; exit 1 on any error."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--day-s", type=float, default=10, help="real seconds per simulated day")
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    tally, extra = asyncio.run(run(args))
    text = report(tally, extra, args)
    print(text)
    if args.write_docs:
        header = DOC.read_text().split("<!-- results -->")[0] if DOC.exists() else ""
        DOC.write_text(header + "<!-- results -->\n\n" + text)
    failed = sum(tally.errors.values()) + sum(extra["tracebacks"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
