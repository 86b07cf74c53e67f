"""What each ``touchbase`` command does: one async function per command, returning its data."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from typing import Any

from rich.progress import Progress

from cli.api import Api, CliError, NotSignedIn
from cli.output import console, success, table

SERVICES = ("contacts", "reminders", "notifier")


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        items = body.get("items")
        if isinstance(items, list):
            return items
    return body if isinstance(body, list) else []


async def status(api: Api, args: argparse.Namespace) -> Any:
    """Readiness of each service; exit code 3 when any is not ready."""
    answers = await asyncio.gather(*(api.ready(name) for name in SERVICES), return_exceptions=True)
    rows = []
    for name, answer in zip(SERVICES, answers, strict=True):
        if isinstance(answer, BaseException):
            rows.append({"service": name, "ready": False, "detail": str(answer)})
            continue
        code, body = answer
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        detail = ", ".join(
            f"{check}: {info.get('status')}"
            + (f" ({info['reason']})" if info.get("reason") else "")
            for check, info in checks.items()
        )
        rows.append({"service": name, "ready": code == 200, "detail": detail})
    if not args.json:
        table(rows, [("service", "service"), ("ready", "ready"), ("detail", "checks")])
    if not all(row["ready"] for row in rows):
        from cli.api import Unavailable

        raise Unavailable("not every service is ready")
    return rows


async def login(api: Api, args: argparse.Namespace) -> Any:
    """Ask for a code by SMS, then exchange it for tokens kept in the credentials file."""
    started = await api.public("POST", "contacts", "/v1/auth/otp/start", {"phone": args.phone})
    code = args.code
    if not code:
        if args.json:
            raise CliError("--code is required with --json")
        code = console.input("Code from the SMS: ").strip()
    tokens = await api.public(
        "POST",
        "contacts",
        "/v1/auth/otp/verify",
        {"challenge_id": started["challenge_id"], "code": code},
    )
    api.credentials.save(tokens)
    if not args.json:
        success("signed in")
    return {"signed_in": True}


async def logout(api: Api, args: argparse.Namespace) -> Any:
    """Revoke the refresh token and forget the stored tokens."""
    stored = api.credentials.load()
    if stored and stored.get("refresh_token"):
        with contextlib.suppress(NotSignedIn):
            await api.user(
                "POST",
                "contacts",
                "/v1/auth/logout",
                json_body={"refresh_token": stored["refresh_token"]},
            )
    api.credentials.clear()
    if not args.json:
        success("signed out")
    return {"signed_in": False}


async def me(api: Api, args: argparse.Namespace) -> Any:
    """The signed-in user's profile."""
    body = await api.user("GET", "contacts", "/v1/me")
    if not args.json:
        table([{"field": k, "value": v} for k, v in body.items()], [("field", ""), ("value", "")])
    return body


async def contacts_list(api: Api, args: argparse.Namespace) -> Any:
    """List contacts with optional filters."""
    params = {
        key: str(value)
        for key in ("tag", "tier", "stage", "sort", "limit")
        if (value := getattr(args, key, None)) is not None
    }
    if getattr(args, "search", None):
        params["q"] = args.search
    body = await api.user("GET", "contacts", "/v1/contacts", params=params)
    items = _items(body)
    if not args.json:
        table(
            items,
            [
                ("id", "id"),
                ("name", "name"),
                ("company", "company"),
                ("tier", "tier"),
                ("stage", "stage"),
                ("last_interaction_at", "last interaction"),
            ],
            title="contacts",
        )
    return body


async def contacts_add(api: Api, args: argparse.Namespace) -> Any:
    """Create a contact."""
    body: dict[str, Any] = {"name": args.name, "tier": args.tier}
    if args.phone:
        body["phones"] = [args.phone]
    if args.email:
        body["emails"] = [args.email]
    for key in ("company", "profession", "stage"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    met = {k: v for k, v in (("how", args.met_how), ("where", args.met_where)) if v}
    if met:
        body["met"] = met
    if args.tags:
        body["tags"] = args.tags
    created = await api.user("POST", "contacts", "/v1/contacts", json_body=body)
    if not args.json:
        success(f"added {created.get('name')} ({created.get('id')})")
    return created


async def log_interaction(api: Api, args: argparse.Namespace) -> Any:
    """Log an interaction with a contact."""
    body: dict[str, Any] = {"kind": args.kind}
    for key in ("notes", "next_action"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.when:
        body["occurred_at"] = args.when
    created = await api.user(
        "POST", "contacts", f"/v1/contacts/{args.contact_id}/interactions", json_body=body
    )
    if not args.json:
        success(f"logged {args.kind} ({created.get('id')})")
    return created


async def upcoming(api: Api, args: argparse.Namespace) -> Any:
    """Touchpoints coming due for the signed-in user."""
    body = await api.user("GET", "reminders", "/v1/touchpoints")
    if not args.json:
        table(
            _items(body),
            [("due_at", "due"), ("contact_name", "contact"), ("reason", "why"), ("state", "state")],
            title="upcoming touchpoints",
        )
    return body


async def admin_help(api: Api, args: argparse.Namespace) -> Any:
    """Without an action, show the operator settings."""
    return await admin_settings(api, args)


async def grant_operator(api: Api, args: argparse.Namespace) -> Any:
    """Grant (or revoke) the operator role, writing to the contacts database directly."""
    from cli.operators import set_operator_role

    user = await set_operator_role(args.phone, operator=not args.revoke)
    if not args.json:
        success(f"{'revoked' if args.revoke else 'granted'} operator role for user {user}")
    return {"user_id": user, "operator": not args.revoke}


async def admin_settings(api: Api, args: argparse.Namespace) -> Any:
    """The scheduling policy operators can change: tiers, follow-up rules, send window."""
    tiers, rules, window = await asyncio.gather(
        api.user("GET", "reminders", "/admin/v1/tiers"),
        api.user("GET", "reminders", "/admin/v1/follow-up-rules"),
        api.user("GET", "reminders", "/admin/v1/send-window"),
    )
    body = {"tiers": tiers, "follow_up_rules": rules, "send_window": window}
    if not args.json:
        table(
            [{"tier": name, **policy} for name, policy in tiers.get("tiers", {}).items()],
            [("tier", "tier"), ("ideal_days", "ideal (days)"), ("max_days", "max (days)")],
            title="tier cadences",
        )
        console.print_json(data={"send_window": window, "follow_up_rules": rules})
    return body


async def admin_cadence(api: Api, args: argparse.Namespace) -> Any:
    """Change one tier's cadence (the other tiers stay as they are)."""
    current = await api.user("GET", "reminders", "/admin/v1/tiers")
    tiers: dict[str, Any] = dict(current.get("tiers", {}))
    previous = tiers.get(args.tier, {})
    max_days = args.max_days or max(float(previous.get("max_days", 0)), 2.0 * args.days)
    tiers[args.tier] = {"ideal_days": args.days, "max_days": max_days}
    body = await api.user("PUT", "reminders", "/admin/v1/tiers", json_body={"tiers": tiers})
    if not args.json:
        success(f"tier {args.tier}: due after {args.days} days, escalated after {max_days:g}")
    return body


async def admin_jobs(api: Api, args: argparse.Namespace) -> Any:
    """System jobs: stored interval, what this replica runs, and how often each ran."""
    body = await api.user("GET", "reminders", "/admin/v1/jobs")
    if not args.json:
        timings = body.get("timings", {})
        running = body.get("running", {})
        runs = body.get("runs", {})
        table(
            [
                {
                    "job": name,
                    "every": timings.get(name),
                    "running": running.get(name),
                    "runs": runs.get(name),
                }
                for name in sorted(set(timings) | set(running))
            ],
            [
                ("job", "job"),
                ("every", "every (s)"),
                ("running", "running every (s)"),
                ("runs", "runs"),
            ],
            title="system jobs",
        )
    return body


async def admin_job(api: Api, args: argparse.Namespace) -> Any:
    """Change a job's interval; every replica applies it without a restart."""
    body = await api.user("PUT", "reminders", "/admin/v1/jobs", json_body={args.name: args.every})
    if not args.json:
        success(f"{args.name} now runs every {args.every:g}s")
    return body


async def admin_pause(api: Api, args: argparse.Namespace) -> Any:
    """Pause one user's nudges until a time, or every nudge until resumed."""
    if args.user_id:
        if not args.until:
            raise CliError("pausing one user needs --until (e.g. 2026-12-31T00:00:00Z)")
        result = await api.user(
            "PUT",
            "reminders",
            f"/admin/v1/users/{args.user_id}/pause",
            json_body={"until": args.until},
        )
    else:
        result = await api.user("PUT", "reminders", "/admin/v1/pause", json_body={"paused": True})
    if not args.json:
        success(f"paused {args.user_id or 'every nudge'}")
    return result


async def admin_resume(api: Api, args: argparse.Namespace) -> Any:
    """Resume one user's nudges, or every nudge."""
    if args.user_id:
        result = await api.user(
            "PUT", "reminders", f"/admin/v1/users/{args.user_id}/pause", json_body={"until": None}
        )
    else:
        result = await api.user("PUT", "reminders", "/admin/v1/pause", json_body={"paused": False})
    if not args.json:
        success(f"resumed {args.user_id or 'every nudge'}")
    return result


async def admin_dry_run(api: Api, args: argparse.Namespace) -> Any:
    """What would be sent to whom in the next days, without sending."""
    params = {"days": str(args.days)}
    if args.user_id:
        params["user_id"] = args.user_id
    with Progress(transient=True, disable=args.json) as progress:
        progress.add_task("computing the dry run...", total=None)
        body = await api.user("GET", "reminders", "/admin/v1/dry-run", params=params)
    if not args.json:
        console.print_json(data=body)
    return body


async def admin_nudges(api: Api, args: argparse.Namespace) -> Any:
    """Recent digests and their dispatch state (``--failed`` for failures only)."""
    params = {"limit": str(args.limit)}
    if args.failed:
        params["status"] = "failed"
    body = await api.user("GET", "reminders", "/admin/v1/nudges", params=params)
    if not args.json:
        table(
            _items(body),
            [
                ("window", "window"),
                ("user_id", "user"),
                ("state", "state"),
                ("items", "items"),
                ("segments", "segments"),
                ("attempts", "attempts"),
            ],
            title="recent nudges",
        )
    return body


async def admin_audit(api: Api, args: argparse.Namespace) -> Any:
    """Operator changes: who, when, before and after."""
    body = await api.user("GET", "reminders", "/admin/v1/audit", params={"limit": str(args.limit)})
    if not args.json:
        console.print_json(data=body)
    return body


async def admin_schedule(api: Api, args: argparse.Namespace) -> Any:
    """One user's schedule, recent nudges and failures."""
    body = await api.user("GET", "reminders", f"/admin/v1/users/{args.user_id}/schedule")
    if not args.json:
        console.print_json(data=body)
    return body


async def sandbox_outbox(api: Api, args: argparse.Namespace) -> Any:
    """Messages the sandbox transport 'sent', newest first."""
    params = {"limit": str(getattr(args, "limit", 20))}
    if getattr(args, "to", None):
        params["to"] = args.to
    body = await api.internal("GET", "notifier", "/internal/v1/sandbox/outbox", params=params)
    if not args.json:
        table(
            _items(body),
            [
                ("created_at", "at"),
                ("to", "to"),
                ("purpose", "purpose"),
                ("status", "status"),
                ("body", "message"),
            ],
            title="sandbox outbox",
        )
    return body


async def sandbox_reply(api: Api, args: argparse.Namespace) -> Any:
    """Send an SMS into the system as a user would, and show the answer."""
    text = " ".join(args.text)
    body = await api.internal(
        "POST",
        "notifier",
        "/internal/v1/sandbox/inbound",
        json_body={"from": args.from_, "text": text},
    )
    if not args.json:
        reply = body.get("reply") if isinstance(body, dict) else None
        console.print(f"[bold]you:[/bold] {text}", highlight=False)
        console.print(f"[bold]touchbase:[/bold] {reply or '(no reply)'}", highlight=False)
    return body


async def clock_show(api: Api, args: argparse.Namespace) -> Any:
    """Each service's clock (services in test mode only)."""
    rows = []
    for name in SERVICES:
        body = await api.internal("GET", name, "/internal/v1/test/clock")
        rows.append({"service": name, **body})
    if not args.json:
        table(rows, [("service", "service"), ("now", "now"), ("frozen", "frozen")])
    return rows


async def clock_set(api: Api, args: argparse.Namespace) -> Any:
    """Set every service's clock."""
    for name in SERVICES:
        await api.internal("PUT", name, "/internal/v1/test/clock", json_body={"now": args.now})
    return await clock_show(api, args)


_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


async def clock_advance(api: Api, args: argparse.Namespace) -> Any:
    """Move every service's clock forward by an amount like ``3d``."""
    match = _AMOUNT.match(args.amount.strip().lower())
    if not match:
        raise CliError("amount must look like 90s, 15m, 2h, 3d or 1w")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    for name in SERVICES:
        await api.internal(
            "PUT", name, "/internal/v1/test/clock", json_body={"advance_seconds": seconds}
        )
    return await clock_show(api, args)
