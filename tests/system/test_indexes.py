"""Every query the services send can use an index they create (docs/indexes.md lists them).

The three real apps run in-process, wired to each other over loopback HTTP, each on its own
database of the real FerretDB, with a PyMongo command listener on their clients. The test drives
each service's main flows (sign-in, contacts, interactions, referrals, the change feed, export
and deletion; sending, webhooks, status callbacks, the reaper; sync, sweep, recovery, replies and
the operator API), then checks every captured query shape against the indexes ``list_indexes()``
reports. Shapes that may scan are allowed only with a reason, in :data:`ALLOWED_SCANS`.

docs/indexes.md is generated from the same data; the test fails with a diff when it is stale.
Regenerate it with ``UPDATE_INDEX_DOC=1 .venv/bin/pytest tests/system/test_indexes.py``.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from pymongo import AsyncMongoClient, monitoring

import shared.mongo
from services.contacts.keys import AUTH_SERVICE, CONTACTS_SERVICE, IDEMPOTENCY
from services.contacts.main import create_app as create_contacts
from services.contacts.settings import ContactsSettings
from services.notifier.keys import WORKER
from services.notifier.main import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.reminders.keys import JOBS, SERVICE
from services.reminders.main import create_app as create_reminders
from services.reminders.settings import RemindersSettings
from services.reminders.sync import ChangeFeedConsumer
from shared.auth import issue_service_token
from shared.clock import ControllableClock
from shared.mongo import INDEXES_READY
from tests.notifier.conftest import SANDBOX_TOKEN, sign
from tests.support.query_shapes import Index, Query, QueryRecorder, serving_indexes
from tests.support.settings import INTERNAL_SECRET, make_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "indexes.md"
SERVICES = ("contacts", "notifier", "reminders")
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, 07:00 in New York
ALICE, BOB, OPERATOR, STRANGER = "+12125550171", "+12125550172", "+12125550100", "+12125550199"

# (service, collection, shape) -> why a collection scan is acceptable there.
ALLOWED_SCANS: dict[tuple[str, str, str], str] = {
    ("reminders", "users", "find {}"): (
        "operator actions over every user (policy change, send-window change, dry run); "
        "rare, and they visit every user anyway"
    ),
}


# --- the stack -----------------------------------------------------------------------------


@dataclass
class Api:
    """A JSON client of one service, as a user, an operator or another service."""

    session: aiohttp.ClientSession
    base: str

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        expect: int | tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        """Send a request; check the status; return the decoded JSON body (or None)."""
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, json=body, headers=sent) as resp:
            text = await resp.text()
            allowed = (expect,) if isinstance(expect, int) else expect
            assert resp.status in allowed, f"{method} {path}: {resp.status} {text}"
            if resp.content_type == "application/json" or text.startswith(("{", "[")):
                return await resp.json(content_type=None)
            return text

    async def call_form(self, path: str, params: dict[str, str], signature: str) -> str:
        """POST a signed Twilio webhook form; return the TwiML answer."""
        async with self.session.post(
            self.base + path, data=params, headers={"X-Twilio-Signature": signature}
        ) as resp:
            text = await resp.text()
            assert resp.status == 200, f"POST {path}: {resp.status} {text}"
            return text


def service_token(caller: str, audience: str) -> str:
    """A token of one service calling another."""
    return issue_service_token(INTERNAL_SECRET, caller, audience)


@dataclass
class Stack:
    """Contacts, notifier and reminders apps, their servers and clients, one shared clock."""

    clock: ControllableClock
    apps: dict[str, web.Application]
    servers: dict[str, TestServer]
    api: dict[str, Api]
    databases: dict[str, str]
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def pump(self) -> None:
        """Let the notifier's worker send everything queued (the sandbox stores it)."""
        worker = self.apps["notifier"][WORKER]
        while await worker.poll_once():
            await worker.drain()
        await worker.drain()

    async def outbox(self, phone: str) -> list[dict[str, Any]]:
        """What the sandbox 'sent' to ``phone``, newest first."""
        await self.pump()
        body = await self.api["notifier"].call(
            "GET",
            f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}",
            token=service_token("contacts", "notifier"),
        )
        items: list[dict[str, Any]] = body["items"]
        return items

    async def sign_in(self, phone: str) -> dict[str, Any]:
        """The OTP flow, with the code read from the sandbox outbox."""
        contacts = self.api["contacts"]
        started = await contacts.call("POST", "/v1/auth/otp/start", {"phone": phone}, expect=202)
        [latest, *_] = await self.outbox(phone)
        code = re.search(r"\b(\d{6})\b", latest["body"])
        assert code
        tokens: dict[str, Any] = await contacts.call(
            "POST",
            "/v1/auth/otp/verify",
            {"challenge_id": started["challenge_id"], "code": code.group(1)},
        )
        self.tokens[phone] = tokens
        return tokens

    def token(self, phone: str) -> str:
        """The access token of a signed-in user."""
        return str(self.tokens[phone]["access_token"])

    async def text(self, phone: str, message: str) -> str | None:
        """An SMS from ``phone``, through the notifier's signed inbound path; the answer."""
        body = await self.api["notifier"].call(
            "POST",
            "/internal/v1/sandbox/inbound",
            {"from": phone, "text": message},
            token=service_token("cli", "notifier"),
        )
        reply: str | None = body["reply"]
        return reply

    async def sync(self) -> int:
        """Drain contacts' change feed into reminders."""
        service = self.apps["reminders"][SERVICE]
        return await ChangeFeedConsumer(service, 500).run_once()


@pytest.fixture
async def stack(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    mongodb_uri: str,
    db_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Stack, QueryRecorder]]:
    """The three services wired together, their database commands recorded."""
    databases = {f"{db_name}_{name}": name for name in SERVICES}
    recorder = QueryRecorder(databases)
    # Every service client is made by shared.mongo.create_client; give it the listener.
    monkeypatch.setattr(
        shared.mongo,
        "AsyncMongoClient",
        functools.partial(AsyncMongoClient, event_listeners=[recorder]),
    )
    ports = {name: unused_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    db = {name: f"{db_name}_{name}" for name in SERVICES}
    clock = ControllableClock(START, frozen=True)
    apps = {
        "contacts": create_contacts(
            make_settings(
                ContactsSettings,
                mongodb_uri,
                db["contacts"],
                notifier_url=urls["notifier"],
                reminders_url=urls["reminders"],
                operator_phones=OPERATOR,
                change_feed_lag_s=0,
                cleanup_interval_s=86_400,
            ),
            clock=clock,
        ),
        "notifier": create_notifier(
            make_settings(
                NotifierSettings,
                mongodb_uri,
                db["notifier"],
                contacts_url=urls["contacts"],
                reminders_url=urls["reminders"],
                sms_transport="sandbox",
                twilio_sandbox_auth_token=SANDBOX_TOKEN,
                public_base_url=urls["notifier"],
                worker_enabled=False,
                send_rate_per_second=10_000,
                send_burst=1_000,
                retry_base_s=0,
                retry_max_s=0,
                reply_timeout_s=14,
                inbound_rate_per_minute=10_000,
                inbound_burst=1_000,
            ),
            clock=clock,
        ),
        "reminders": create_reminders(
            make_settings(
                RemindersSettings,
                mongodb_uri,
                db["reminders"],
                contacts_url=urls["contacts"],
                notifier_url=urls["notifier"],
                scheduler_enabled=False,
            ),
            clock=clock,
        ),
    }
    servers = {name: await aiohttp_server(app, port=ports[name]) for name, app in apps.items()}
    for app in apps.values():
        await asyncio.wait_for(app[INDEXES_READY].wait(), 20)
    await apps["reminders"][SERVICE].init_defaults()
    async with aiohttp.ClientSession() as session:
        api = {name: Api(session, url) for name, url in urls.items()}
        yield Stack(clock, apps, servers, api, databases), recorder
    for server in servers.values():
        await server.close()
    cleanup: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        for name in db.values():
            await cleanup.drop_database(name)
    finally:
        await cleanup.close()


# --- the flows -----------------------------------------------------------------------------


async def contacts_flows(stack: Stack) -> dict[str, str]:
    """Sign-in, refresh, profile, contacts, interactions, referrals, stats; returns contact ids."""
    contacts = stack.api["contacts"]
    await stack.sign_in(OPERATOR)
    await stack.sign_in(BOB)
    alice = await stack.sign_in(ALICE)
    me = stack.token(ALICE)
    # A wrong code counts an attempt; refresh rotates; a reused refresh token revokes the family.
    started = await contacts.call("POST", "/v1/auth/otp/start", {"phone": ALICE}, expect=202)
    await contacts.call(
        "POST",
        "/v1/auth/otp/verify",
        {"challenge_id": started["challenge_id"], "code": "000000"},
        expect=(400, 401, 422),
    )
    rotated = await contacts.call(
        "POST", "/v1/auth/refresh", {"refresh_token": alice["refresh_token"]}
    )
    await contacts.call(
        "POST", "/v1/auth/refresh", {"refresh_token": alice["refresh_token"]}, expect=401
    )
    bob = await contacts.call(
        "POST", "/v1/auth/refresh", {"refresh_token": stack.tokens[BOB]["refresh_token"]}
    )
    await contacts.call(
        "POST",
        "/v1/auth/logout",
        {"refresh_token": bob["refresh_token"]},
        token=bob["access_token"],
    )
    await contacts.call("POST", "/v1/auth/logout", {"all": True}, token=stack.token(BOB))
    assert rotated["access_token"]
    await contacts.call(
        "PATCH", "/v1/me", {"name": "Pat Rivera", "time_zone": "America/New_York"}, token=me
    )
    await contacts.call("GET", "/v1/me", token=me)

    ids: dict[str, str] = {}
    for name, tier, tags, company in (
        ("Dana Lee", "A", ["insurance"], "Lee Insurance"),
        ("Sam Ortiz", "B", [], None),
        ("Kim Park", "C", ["realty", "bni"], "Park Realty"),
        ("Alex Chen", "A", ["bni"], None),
    ):
        body: dict[str, Any] = {"name": name, "tier": tier, "tags": tags, "birthday": "05-17"}
        if company:
            body["company"] = company
        created = await contacts.call(
            "POST",
            "/v1/contacts",
            body,
            token=me,
            headers={"Idempotency-Key": f"new-{name.replace(' ', '-')}"},
        )
        ids[name] = created["id"]
    # A repeated Idempotency-Key replays the first answer.
    replay = await contacts.call(
        "POST",
        "/v1/contacts",
        {
            "name": "Dana Lee",
            "tier": "A",
            "tags": ["insurance"],
            "birthday": "05-17",
            "company": "Lee Insurance",
        },
        token=me,
        headers={"Idempotency-Key": "new-Dana-Lee"},
    )
    assert replay["id"] == ids["Dana Lee"]

    # Every sort, a second page by cursor, every filter.
    for sort in (
        "name",
        "-name",
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "losing_touch",
    ):
        page = await contacts.call("GET", f"/v1/contacts?sort={sort}&limit=2", token=me)
        assert page["next"], sort
        await contacts.call(
            "GET", f"/v1/contacts?sort={sort}&limit=2&cursor={page['next']}", token=me
        )
    for query in ("tag=bni", "tier=A", "stage=know", "q=park", "deleted=true"):
        await contacts.call("GET", f"/v1/contacts?{query}", token=me)

    dana = f"/v1/contacts/{ids['Dana Lee']}"
    await contacts.call("GET", dana, token=me)
    await contacts.call(
        "PATCH",
        dana,
        {"stage": "like"},
        token=me,
        headers={"If-Match": '"' + "x" * 8 + '"'},
        expect=412,
    )
    await contacts.call("PATCH", dana, {"stage": "like", "tags": ["insurance", "bni"]}, token=me)
    scratch = await contacts.call("POST", "/v1/contacts", {"name": "Old Friend"}, token=me)
    await contacts.call("DELETE", f"/v1/contacts/{scratch['id']}", token=me)
    await contacts.call("POST", f"/v1/contacts/{scratch['id']}/restore", token=me)
    await contacts.call("DELETE", f"/v1/contacts/{scratch['id']}", token=me)

    # Interactions: a 1-2-1 with an agreed action, a call, paging, a deletion.
    one = await contacts.call(
        "POST",
        f"{dana}/interactions",
        {"kind": "one_to_one", "notes": "planning a move", "next_action": "intro to Sam"},
        token=me,
        headers={"Idempotency-Key": "one-to-one"},
    )
    call = await contacts.call("POST", f"{dana}/interactions", {"kind": "call"}, token=me)
    page = await contacts.call("GET", f"{dana}/interactions?limit=1", token=me)
    await contacts.call("GET", f"{dana}/interactions?limit=1&cursor={page['next']}", token=me)
    await contacts.call("DELETE", f"/v1/interactions/{call['id']}", token=me)
    assert one["id"]
    await contacts.call("GET", f"/v1/interactions/{one['id']}", token=me)
    await contacts.call("PATCH", f"/v1/interactions/{one['id']}", {"notes": "moving"}, token=me)
    stages = await contacts.call("GET", f"{dana}/stages?limit=1", token=me)
    await contacts.call("GET", f"{dana}/stages?limit=1&cursor={stages['next']}", token=me)

    # Referrals each way, listed by every filter, moved along, one deleted.
    refs = []
    for direction, who in (
        ("given", "Sam Ortiz"),
        ("received", "Kim Park"),
        ("given", "Alex Chen"),
    ):
        refs.append(
            await contacts.call(
                "POST",
                "/v1/referrals",
                {
                    "direction": direction,
                    "contact_id": ids[who],
                    "description": "kitchen remodel",
                    "for_contact_id": ids["Dana Lee"],
                },
                token=me,
            )
        )
    page = await contacts.call("GET", "/v1/referrals?limit=1", token=me)
    await contacts.call("GET", f"/v1/referrals?limit=1&cursor={page['next']}", token=me)
    for query in ("direction=given", "status=open", f"contact_id={ids['Kim Park']}"):
        await contacts.call("GET", f"/v1/referrals?{query}", token=me)
    await contacts.call("GET", f"/v1/referrals/{refs[0]['id']}", token=me)
    await contacts.call(
        "PATCH", f"/v1/referrals/{refs[0]['id']}", {"status": "contacted"}, token=me
    )
    await contacts.call("DELETE", f"/v1/referrals/{refs[2]['id']}", token=me)
    await contacts.call(
        "PATCH",
        f"/v1/referrals/{refs[0]['id']}",
        {"status": "won", "value": 900, "currency": "USD"},
        token=me,
    )
    await contacts.call("GET", "/v1/stats", token=me)
    await contacts.call("GET", "/v1/stats?period=week&offset=-1", token=me)
    # The mobile delta sync: a full listing in small pages (every kind), then the feed's slice.
    synced = await contacts.call("GET", "/v1/sync?limit=2", token=me)
    while synced["has_more"]:
        synced = await contacts.call("GET", f"/v1/sync?limit=2&since={synced['next']}", token=me)
    await contacts.call("GET", f"/v1/sync?limit=2&since={synced['next']}", token=me)

    # The internal API other services (and the CLI) use.
    internal = service_token("reminders", "contacts")
    user_id = stack.tokens[ALICE]["user"]["id"]
    await contacts.call("GET", f"/internal/v1/users/by-phone?phone=%2B{ALICE[1:]}", token=internal)
    users = await contacts.call("GET", "/internal/v1/users?limit=1", token=internal)
    await contacts.call("GET", f"/internal/v1/users?limit=1&after={users['next']}", token=internal)
    await contacts.call("GET", f"/internal/v1/users/{user_id}", token=internal)
    await contacts.call(
        "GET", f"/internal/v1/users/{user_id}/contacts/match?name=dana", token=internal
    )
    page = await contacts.call(
        "GET", f"/internal/v1/users/{user_id}/contacts?limit=2", token=internal
    )
    await contacts.call(
        "GET",
        f"/internal/v1/users/{user_id}/contacts?limit=2&after={page['next']}",
        token=internal,
    )
    await contacts.call(
        "GET", f"/internal/v1/users/{user_id}/contacts/{ids['Sam Ortiz']}", token=internal
    )
    return ids


async def reminders_flows(stack: Stack, ids: dict[str, str]) -> None:
    """Sync, preferences, one-offs, the sweep and its recovery, replies, operators, dry run."""
    reminders, notifier = stack.api["reminders"], stack.api["notifier"]
    service = stack.apps["reminders"][SERVICE]
    me = stack.token(ALICE)
    ops = stack.token(OPERATOR)
    user_id = stack.tokens[ALICE]["user"]["id"]
    assert await stack.sync() > 0
    assert (await stack.apps["reminders"][JOBS].consumer.reconcile())["users"] >= 3

    await reminders.call("GET", "/v1/preferences", token=me)
    await reminders.call("PUT", "/v1/preferences", {"daily_budget": 4}, token=me)
    await reminders.call(
        "POST",
        "/v1/touchpoints",
        {
            "contact_id": ids["Sam Ortiz"],
            "contact_name": "Sam Ortiz",
            "reason": "send the article",
            "due_at": (START + timedelta(hours=1)).isoformat(),
        },
        token=me,
        expect=201,
    )
    await reminders.call("GET", "/v1/touchpoints", token=me)
    # The app's paged list and actions on its own one-offs (far ahead: the digests below
    # are unchanged).
    await reminders.call("GET", "/v1/touchpoints?view=due&limit=1", token=me)
    page = await reminders.call("GET", "/v1/touchpoints?view=upcoming&limit=1", token=me)
    await reminders.call("GET", f"/v1/touchpoints?cursor={page['next_cursor']}", token=me)
    await reminders.call("GET", f"/v1/touchpoints?contact_id={ids['Sam Ortiz']}", token=me)
    later = (START + timedelta(days=300)).isoformat()
    acted, removed = [
        await reminders.call(
            "POST",
            "/v1/touchpoints",
            {"contact_name": name, "reason": "call back", "due_at": later},
            token=me,
            expect=201,
        )
        for name in ("Jo Bell", "Kim Wu")
    ]
    keyed = {"Idempotency-Key": "snooze-1", "If-Match": acted["etag"]}
    path = f"/v1/touchpoints/{acted['id']}"
    await reminders.call("POST", f"{path}:snooze", {"for": "2w"}, token=me, headers=keyed)
    await reminders.call("POST", f"{path}:snooze", {"for": "2w"}, token=me, headers=keyed)
    await reminders.call("POST", f"{path}:done", token=me)
    await reminders.call(
        "DELETE",
        f"/v1/touchpoints/{removed['id']}",
        token=me,
        headers={"If-Match": removed["etag"]},
        expect=204,
    )
    await stack.apps["reminders"][JOBS].jobs["reconcile"]()  # with the idempotency purge

    # The first digest: the clock moves to Alice's digest time; the sweep hands it over.
    user = await service.repo.get_user(user_id)
    assert user is not None
    stack.clock.set(user["next_digest_at"] + timedelta(seconds=5), frozen=True)
    assert (await service.sweep()).get("sent") == 1
    [digest] = [m for m in await stack.outbox(ALICE) if m["purpose"] == "nudge"]
    # Twilio's status callbacks (signed, with and without our message id), then the follow-up.
    base = stack.api["notifier"].base
    for path, status in (
        (f"/webhooks/twilio/status?message_id={digest['id']}", "sent"),
        ("/webhooks/twilio/status", "delivered"),
    ):
        params = {
            "MessageSid": digest["provider_sid"],
            "MessageStatus": status,
            "AccountSid": "AC" + "0" * 32,
        }
        await notifier.call_form(path, params, sign(SANDBOX_TOKEN, base + path, params))
    await service.recover()

    # Replies by SMS: through the notifier, reminders and contacts.
    for message in (
        "MET 1 coffee",
        "WHO",
        "SNOOZE 1 1w",
        "UNDO",
        "REF Dana > Sam Lee plumber",
        "UNDO",
        "GOT REF from Sam: kitchen remodel",
        "SKIP 1",
        "DONE 2",
        "PAUSE 1w",
        "RESUME",
        "help",
        "blah",
    ):
        assert await stack.text(ALICE, message), message
    await stack.text(STRANGER, "MET 1 coffee")
    await stack.text(BOB, "STOP")
    await stack.text(BOB, "START")
    # A real Twilio webhook, delivered twice.
    params = {
        "MessageSid": "SM" + "7" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": ALICE,
        "To": "+15005550006",
        "Body": "WHO",
        "NumMedia": "0",
    }
    for _ in range(2):
        await notifier.call_form(
            "/webhooks/twilio/sms",
            params,
            sign(SANDBOX_TOKEN, base + "/webhooks/twilio/sms", params),
        )
    await stack.sync()

    # A replica that crashed between handing a digest over and recording it: recovery finishes.
    bob_id = stack.tokens[BOB]["user"]["id"]
    await reminders.call("PUT", "/v1/preferences", {"daily_budget": 3}, token=stack.token(BOB))
    await reminders.call(
        "POST",
        "/v1/touchpoints",
        {"contact_name": "Jo Bell", "reason": "call back", "due_at": stack.clock.now().isoformat()},
        token=stack.token(BOB),
        expect=201,
    )
    bob = await service.repo.get_user(bob_id)
    assert bob is not None
    stack.clock.set(bob["next_digest_at"] + timedelta(seconds=5), frozen=True)
    assert (await service.sweep()).get("sent", 0) >= 1
    [claim] = await service.repo.list_claims(bob_id, None, 5)
    await service.repo.update_claim(claim["_id"], {"state": "dispatched", "updated_at": START})
    assert (await service.recover()).get("recorded") == 1

    # Operators: policy, windows, jobs, pauses, schedules, nudges, dry runs, audit.
    tiers = await reminders.call("GET", "/admin/v1/tiers", token=ops)
    tiers["tiers"]["B"] = {"ideal_days": 7, "max_days": 14}
    await reminders.call("PUT", "/admin/v1/tiers", {"tiers": tiers["tiers"]}, token=ops)
    rules = await reminders.call("GET", "/admin/v1/follow-up-rules", token=ops)
    await reminders.call("PUT", "/admin/v1/follow-up-rules", {"rules": rules["rules"]}, token=ops)
    window = await reminders.call("GET", "/admin/v1/send-window", token=ops)
    await reminders.call("PUT", "/admin/v1/send-window", window, token=ops)
    await reminders.call("GET", "/admin/v1/jobs", token=ops)
    await reminders.call("PUT", "/admin/v1/jobs", {"sweep": 30}, token=ops)
    await reminders.call(
        "PUT", "/admin/v1/pause", {"paused": True, "reason": "incident"}, token=ops
    )
    assert await service.sweep() == {"paused_all": 1}
    await reminders.call("PUT", "/admin/v1/pause", {"paused": False}, token=ops)
    until = (stack.clock.now() + timedelta(days=3)).isoformat()
    await reminders.call("PUT", f"/admin/v1/users/{bob_id}/pause", {"until": until}, token=ops)
    await reminders.call("PUT", f"/admin/v1/users/{bob_id}/pause", {"until": None}, token=ops)
    await reminders.call("GET", f"/admin/v1/users/{user_id}/schedule", token=ops)
    for query in ("", f"?user_id={user_id}", "?status=failed"):
        await reminders.call("GET", f"/admin/v1/nudges{query}", token=ops)
    await reminders.call("GET", "/admin/v1/dry-run?days=7", token=ops)
    await reminders.call("GET", f"/admin/v1/dry-run?days=3&user_id={user_id}", token=ops)
    await reminders.call("GET", "/admin/v1/audit", token=ops)


async def notifier_flows(stack: Stack) -> None:
    """A message queued and sent, operator listings, the reaper's and deferred answers' rounds."""
    notifier = stack.api["notifier"]
    worker = stack.apps["notifier"][WORKER]
    internal = service_token("reminders", "notifier")
    user_id = stack.tokens[ALICE]["user"]["id"]
    created = await notifier.call(
        "POST",
        "/internal/v1/messages",
        {"user_id": user_id, "to": ALICE, "body": "hello", "purpose": "system"},
        token=internal,
        headers={"Idempotency-Key": "hello-1"},
    )
    await notifier.call("GET", f"/internal/v1/messages/{created['id']}", token=internal)
    for query in ("", f"?user_id={user_id}", "?status=queued", f"?user_id={user_id}&status=sent"):
        await notifier.call("GET", f"/internal/v1/messages{query}", token=internal)
    await stack.pump()
    # The reaper, deferred answers, old-claim purge and sign-in code scrub run on the worker's
    # maintenance loop.
    stack.clock.advance(timedelta(hours=1))
    await worker.maintain_once()


async def account_flows(stack: Stack) -> None:
    """Export and account deletion (across all three services), then the cleanup."""
    contacts = stack.api["contacts"]
    await contacts.call("GET", "/v1/me/export", token=stack.token(ALICE))
    await contacts.call("DELETE", "/v1/me", token=stack.token(BOB))
    await stack.sync()
    app = stack.apps["contacts"]
    stack.clock.advance(timedelta(days=60))
    await app[AUTH_SERVICE].purge()
    await app[IDEMPOTENCY].purge()
    await app[CONTACTS_SERVICE].purge_changes(app[CONTACTS_SERVICE].wall_now() - timedelta(days=30))


# --- the check and the document ------------------------------------------------------------


@dataclass
class CollectionReport:
    """One collection: its indexes, the shapes each serves, and the shapes that scan."""

    indexes: list[Index]
    served: dict[str, list[str]] = field(default_factory=dict)
    scans: list[str] = field(default_factory=list)


Report = dict[str, dict[str, CollectionReport]]


async def read_indexes(
    mongodb_uri: str, databases: dict[str, str]
) -> dict[str, dict[str, list[Index]]]:
    """service -> collection -> indexes, as ``list_indexes()`` reports them."""
    out: dict[str, dict[str, list[Index]]] = {}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        for db_name, service in databases.items():
            db = client[db_name]
            out[service] = {}
            for name in sorted(await db.list_collection_names()):
                infos = await (await db[name].list_indexes()).to_list()
                found = [Index.from_info(info) for info in infos]
                # Servers list indexes in different orders (MongoDB and FerretDB by creation,
                # mongo-java-server not); ties between equally good indexes go by this order.
                out[service][name] = sorted(found, key=lambda i: (i.name != "_id_", i.name))
    finally:
        await client.close()
    return out


def analyse(
    queries: dict[tuple[str, str, str], Query], indexes: dict[str, dict[str, list[Index]]]
) -> Report:
    """Which index serves each captured shape, per service and collection."""
    report: Report = {service: {} for service in SERVICES}
    for service, collections in indexes.items():
        for name, found in collections.items():
            report[service][name] = CollectionReport(found)
    for (service, collection, shape), query in sorted(queries.items()):
        entry = report[service].setdefault(
            collection, CollectionReport([Index("_id_", (("_id", 1),))])
        )
        serving = serving_indexes(query.filter, query.sort, entry.indexes)
        for index in serving:
            entry.served.setdefault(index.name, []).append(shape)
        if not serving:
            entry.scans.append(shape)
    return report


def unserved(report: Report) -> list[tuple[str, str, str]]:
    """Every (service, collection, shape) that no index serves."""
    return [
        (service, name, shape)
        for service, collections in report.items()
        for name, entry in collections.items()
        for shape in entry.scans
    ]


def render(report: Report) -> str:
    """The text of docs/indexes.md."""
    lines = [
        "# MongoDB indexes and the queries that use them",
        "",
        "Generated by `tests/system/test_indexes.py`, which runs the three services in-process,",
        "drives their main flows and records every query they send to the database. Regenerate",
        "with `UPDATE_INDEX_DOC=1 .venv/bin/pytest tests/system/test_indexes.py`; the test fails",
        "when this file is stale, or when a new query shape can use no index.",
        "",
        "A shape shows the command, the filter's fields and operators (values left out:",
        "`field` is an equality, `field $op` a comparison) and the sort (`-field` descending).",
        "A shape can use an index when its filter constrains the index's first key (`_id`",
        "always counts), at the top level or inside `$and`; an `$or` can when each branch can;",
        "an empty filter only by walking an index in its sort order. The index listed for a",
        "shape is the one whose key prefix the filter covers best.",
        "",
        "MongoDB uses these indexes. The development and benchmark database, mongo-java-server,",
        "uses `_id` and unique ones and scans for the others; FerretDB on SQLite scans for all.",
        "Collection scans that are accepted are listed with the reason.",
    ]
    for service in SERVICES:
        lines += [
            "",
            f"## {service}",
            "",
            "| collection | index | query shapes using it |",
            "| --- | --- | --- |",
        ]
        for name in sorted(report[service]):
            entry = report[service][name]
            for index in entry.indexes:
                shapes = entry.served.get(index.name, [])
                cell = "<br>".join(f"`{s}`" for s in shapes) or "(no captured query prefers it)"
                lines.append(f"| `{name}` | `{index.describe()}` | {cell} |")
            for shape in entry.scans:
                reason = ALLOWED_SCANS.get((service, name, shape), "NOT ALLOWED")
                lines.append(f"| `{name}` | scan: {reason} | `{shape}` |")
    return "\n".join(lines) + "\n"


async def test_every_query_the_services_send_can_use_an_index(
    stack: tuple[Stack, QueryRecorder], mongodb_uri: str
) -> None:
    running, recorder = stack
    ids = await contacts_flows(running)
    await reminders_flows(running, ids)
    await notifier_flows(running)
    await account_flows(running)

    report = analyse(recorder.queries, await read_indexes(mongodb_uri, running.databases))
    text = render(report)
    print(text)
    for service in SERVICES:
        assert any(q.service == service for q in recorder.queries.values()), service

    scans = unserved(report)
    not_allowed = [scan for scan in scans if scan not in ALLOWED_SCANS]
    assert not not_allowed, "queries no index serves (add the index, or allow with a reason):\n" + (
        "\n".join(map(str, not_allowed))
    )
    stale = [key for key in ALLOWED_SCANS if key not in scans]
    assert not stale, f"allowed scans that no longer happen (remove them): {stale}"

    if os.environ.get("UPDATE_INDEX_DOC"):
        DOC.write_text(text)
    current = DOC.read_text() if DOC.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            "docs/indexes.md",
            "generated",
        )
    )
    assert not diff, "docs/indexes.md is stale; regenerate with UPDATE_INDEX_DOC=1:\n" + diff


# --- the rule itself -----------------------------------------------------------------------

USERS_INDEXES = [
    Index("_id_", (("_id", 1),)),
    Index("user_id_1_state_1", (("user_id", 1), ("state", 1))),
    Index("user_id_1_created_at_-1", (("user_id", 1), ("created_at", -1))),
    Index("at_-1", (("at", -1),)),
]


@pytest.mark.parametrize(
    ("flt", "sort", "expected"),
    [
        ({"_id": "x", "other": 1}, None, ["_id_"]),
        ({"_id": {"$gt": "x"}}, None, ["_id_"]),
        ({"state": "open", "user_id": "u"}, None, ["user_id_1_state_1"]),
        ({"user_id": "u"}, {"created_at": -1}, ["user_id_1_created_at_-1"]),
        ({"$and": [{"user_id": "u"}, {"state": {"$in": ["a"]}}]}, None, ["user_id_1_state_1"]),
        ({"$or": [{"_id": "x"}, {"at": {"$lt": 1}}]}, None, ["_id_", "at_-1"]),
        ({"$or": [{"_id": "x"}, {"state": "open"}]}, None, []),
        ({"state": "open"}, None, []),
        ({}, {"at": -1}, ["at_-1"]),
        ({}, {"state": 1}, []),
        ({}, None, []),
    ],
)
def test_which_filters_can_use_an_index(
    flt: dict[str, Any], sort: dict[str, Any] | None, expected: list[str]
) -> None:
    assert [i.name for i in serving_indexes(flt, sort, USERS_INDEXES)] == expected


def test_the_recorder_keeps_each_query_of_a_bulk_command_by_shape() -> None:
    recorder = QueryRecorder({"db": "svc"})
    command = {
        "update": "touchpoints",
        "updates": [
            {"q": {"_id": "a", "state": {"$in": ["x"]}}, "u": {}},
            {"q": {"_id": "b", "state": {"$in": ["y"]}}, "u": {}},
        ],
    }
    recorder.started(monitoring.CommandStartedEvent(command, "db", 1, ("127.0.0.1", 1), None))
    [query] = recorder.queries.values()
    assert (query.service, query.collection, query.shape, query.count) == (
        "svc",
        "touchpoints",
        "update {_id, state $in}",
        2,
    )
