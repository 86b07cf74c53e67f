"""``touchbase``: sign in, manage contacts, see what is due, operate the service, try SMS locally.

Exit codes: 0 done; 1 the service refused the request (the message says why); 2 wrong usage;
3 a service is down or failing; 4 not signed in.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from cli import commands
from cli.api import Api, CliError
from cli.config import Credentials, Endpoints
from cli.output import emit_json, error

Handler = Callable[[Api, argparse.Namespace], Awaitable[Any]]


def _add(
    sub: Any, name: str, handler: Handler, help_text: str, **kwargs: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, **kwargs)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full command tree."""
    parser = argparse.ArgumentParser(
        prog="touchbase", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add(top, "status", commands.status, "readiness of the three services")

    p = _add(top, "login", commands.login, "sign in with your phone number and a code sent by SMS")
    p.add_argument("--phone", required=True, help="your mobile number, e.g. +14155550123")
    p.add_argument("--code", help="the code from the SMS (asked for when omitted)")
    _add(top, "logout", commands.logout, "sign out and forget the stored tokens")
    _add(top, "me", commands.me, "your profile")

    contacts = _add(top, "contacts", commands.contacts_list, "list your contacts")
    csub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION")
    p = _add(csub, "list", commands.contacts_list, "list your contacts")
    p.add_argument("--tag")
    p.add_argument("--tier")
    p.add_argument("--stage")
    p.add_argument("--search", help="text search on name and company")
    p.add_argument("--sort", help="e.g. name, -created_at, losing_touch")
    p.add_argument("--limit", type=int, default=50)
    p = _add(csub, "add", commands.contacts_add, "add a contact")
    p.add_argument("name")
    p.add_argument("--phone")
    p.add_argument("--email")
    p.add_argument("--company")
    p.add_argument("--profession")
    p.add_argument("--tier", default="B", help="A, B or C")
    p.add_argument("--stage", help="know, like, trust, referral_partner")
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--met-how", dest="met_how", help="how you met, e.g. 'BNI visitor day'")
    p.add_argument("--met-where", dest="met_where", help="where you met")

    p = _add(top, "log", commands.log_interaction, "log an interaction with a contact")
    p.add_argument("contact_id")
    p.add_argument(
        "--kind",
        default="one_to_one",
        help="one_to_one, coffee, call, meeting, event, message, email, note",
    )
    p.add_argument("--notes")
    p.add_argument("--next-action", dest="next_action")
    p.add_argument("--when", help="ISO-8601 time (default: now)")

    _add(top, "upcoming", commands.upcoming, "your touchpoints coming due")

    admin = _add(top, "admin", commands.admin_help, "operator commands")
    asub = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    p = _add(
        asub,
        "grant-operator",
        commands.grant_operator,
        "grant the operator role to a user (talks to the contacts database directly)",
    )
    p.add_argument("phone")
    p.add_argument("--revoke", action="store_true", help="take the role away instead")
    _add(asub, "settings", commands.admin_settings, "tier cadences, send windows, quiet hours")
    p = _add(asub, "cadence", commands.admin_cadence, "set a tier's cadence")
    p.add_argument("tier")
    p.add_argument("days", type=int)
    p.add_argument("--max-days", type=int, dest="max_days")
    _add(asub, "jobs", commands.admin_jobs, "system jobs and their timing")
    p = _add(asub, "job", commands.admin_job, "change a system job's interval")
    p.add_argument("name")
    p.add_argument("--every", type=float, required=True, help="seconds between runs")
    p = _add(asub, "pause", commands.admin_pause, "pause nudges for one user or everyone")
    p.add_argument("user_id", nargs="?", help="omit to pause every nudge until resumed")
    p.add_argument("--until", help="ISO-8601 time with offset (needed for one user)")
    p = _add(asub, "resume", commands.admin_resume, "resume nudges")
    p.add_argument("user_id", nargs="?", help="omit to resume everything")
    p = _add(asub, "dry-run", commands.admin_dry_run, "what would be sent in the next days")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--user", dest="user_id")
    p = _add(asub, "nudges", commands.admin_nudges, "recent digests and failures")
    p.add_argument("--failed", action="store_true", help="only failed dispatches")
    p.add_argument("--limit", type=int, default=50)
    p = _add(asub, "audit", commands.admin_audit, "the audit log of operator changes")
    p.add_argument("--limit", type=int, default=50)
    p = _add(asub, "schedule", commands.admin_schedule, "one user's schedule and recent nudges")
    p.add_argument("user_id")

    sandbox = _add(top, "sandbox", commands.sandbox_outbox, "the sandbox SMS transport")
    ssub = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION")
    p = _add(ssub, "outbox", commands.sandbox_outbox, "messages the system 'sent'")
    p.add_argument("--to", help="only messages to this number")
    p.add_argument("--limit", type=int, default=20)
    p = _add(
        ssub,
        "reply",
        commands.sandbox_reply,
        "text the system as a user would (through the signed-webhook path)",
    )
    p.add_argument("--from", dest="from_", required=True, help="the user's phone number")
    p.add_argument("text", nargs="+")

    clock = _add(top, "clock", commands.clock_show, "the services' clocks (test mode only)")
    ksub = clock.add_subparsers(dest="clock_command", metavar="ACTION")
    _add(ksub, "show", commands.clock_show, "each service's current time")
    p = _add(ksub, "set", commands.clock_set, "set every service's clock")
    p.add_argument("now", help="ISO-8601 instant with offset")
    p = _add(ksub, "advance", commands.clock_advance, "move every service's clock forward")
    p.add_argument("amount", help="e.g. 90s, 15m, 2h, 3d")
    return parser


async def _run(args: argparse.Namespace) -> Any:
    async with Api(Endpoints.from_env(), Credentials()) as api:
        return await args.handler(api, args)


def main(argv: list[str] | None = None) -> int:
    """Parse, run one command, print its result, and return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(_run(args))
    except CliError as exc:
        if args.json:
            emit_json({"error": str(exc), "problem": exc.problem or None})
        else:
            error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    if args.json and result is not None:
        emit_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
