"""In-memory fakes of the contacts and notifier internal APIs (docs/internal-api.md).

They stand in for the real services until those apps can be wired into these tests; they check
service tokens and idempotency keys and keep the documented shapes.
"""

from __future__ import annotations

import itertools
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.contacts.models import (
    InternalInteractionCreate,
    MatchQuery,
    ReferralCreate,
    normalize_text,
)
from shared.auth import verify_service_token
from shared.clock import Clock
from tests.support.settings import INTERNAL_SECRET

Json = dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fold(text: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(ch)
    )


def _auth(request: web.Request, audience: str, clock: Clock) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise web.HTTPUnauthorized()
    try:
        verify_service_token(INTERNAL_SECRET, header[7:], audience)
    except Exception:
        raise web.HTTPUnauthorized() from None


@dataclass
class FakeContacts:
    """Users, contacts, interactions, referrals and the change feed, in memory."""

    clock: Clock
    users: dict[str, Json] = field(default_factory=dict)
    contacts: dict[str, Json] = field(default_factory=dict)
    interactions: dict[str, Json] = field(default_factory=dict)
    referrals: dict[str, Json] = field(default_factory=dict)
    changes: list[Json] = field(default_factory=list)
    idempotent: dict[str, Json] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # Ids that contacts knows as operators without a user record here (operator_headers' subjects).
    operators: set[str] = field(default_factory=set)
    # last_interaction_at a contact had from before any interaction logged here.
    baseline: dict[str, str] = field(default_factory=dict)
    down: bool = False
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- state changes the tests drive directly ----------------------------------------------
    def _change(self, kind: str, op: str, user_id: str, entity_id: str) -> None:
        self.changes.append(
            {
                "cursor": f"{next(self._seq):012d}",
                "kind": kind,
                "op": op,
                "user_id": user_id,
                "entity_id": entity_id,
                "at": _iso(self.clock.now()),
            }
        )

    def add_user(self, name: str = "Pat Doe", tz: str = "UTC", phone: str | None = None) -> str:
        """Create a user; returns its id."""
        user_id = uuid.uuid4().hex[:12]
        self.users[user_id] = {
            "id": user_id,
            "phone": phone or f"+1555{len(self.users):07d}",
            "name": name,
            "time_zone": tz,
            "region": None,
            "locale": "en",
            "role": "networker",
            "created_at": _iso(self.clock.now()),
        }
        self._change("user", "upsert", user_id, user_id)
        return user_id

    def add_contact(
        self,
        user_id: str,
        name: str,
        *,
        tier: str = "B",
        company: str | None = None,
        cadence_days: int | None = None,
        birthday: str | None = None,
        last_interaction_at: datetime | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Create a contact; returns its id."""
        contact_id = uuid.uuid4().hex[:12]
        self.contacts[contact_id] = {
            "id": contact_id,
            "user_id": user_id,
            "name": name,
            "company": company,
            "tier": tier,
            "cadence_days": cadence_days,
            "stage": "active",
            "birthday": birthday,
            "last_interaction_at": _iso(last_interaction_at),
            "created_at": _iso(created_at or self.clock.now()),
            "deleted": False,
        }
        if last_interaction_at is not None:
            self.baseline[contact_id] = str(_iso(last_interaction_at))
        self._change("contact", "upsert", user_id, contact_id)
        return contact_id

    def delete_contact(self, contact_id: str) -> None:
        """Soft-delete a contact."""
        self.contacts[contact_id]["deleted"] = True
        self._change("contact", "delete", self.contacts[contact_id]["user_id"], contact_id)

    def log(self, user_id: str, contact_id: str, body: Json) -> Json:
        """Log an interaction as the app would."""
        now = self.clock.now()
        interaction = {
            "id": uuid.uuid4().hex[:12],
            "user_id": user_id,
            "contact_id": contact_id,
            "kind": body.get("kind", "call"),
            "occurred_at": body.get("occurred_at") or _iso(now),
            "notes": body.get("notes"),
            "next_action": body.get("next_action"),
            "source": body.get("source", "app"),
            "created_at": _iso(now),
        }
        self._change("interaction", "upsert", user_id, interaction["id"])
        self._change("contact", "upsert", user_id, contact_id)
        self.interactions[interaction["id"]] = interaction
        self._refresh_last(contact_id)
        return interaction

    def add_referral(self, user_id: str, contact_id: str, direction: str) -> str:
        """Record a referral as the app would; returns its id."""
        referral_id = uuid.uuid4().hex[:12]
        self.referrals[referral_id] = {
            "id": referral_id,
            "user_id": user_id,
            "contact_id": contact_id,
            "direction": direction,
            "status": "open",
            "status_times": {"open": _iso(self.clock.now())},
            "created_at": _iso(self.clock.now()),
            "updated_at": _iso(self.clock.now()),
        }
        self._change("referral", "upsert", user_id, referral_id)
        return referral_id

    def move_referral(self, referral_id: str, status: str) -> None:
        """Move a referral along its pipeline (open → contacted → meeting → won | lost)."""
        referral = self.referrals[referral_id]
        referral["status"] = status
        referral["status_times"] = {
            **referral.get("status_times", {}),
            status: _iso(self.clock.now()),
        }
        referral["updated_at"] = _iso(self.clock.now())
        self._change("referral", "upsert", referral["user_id"], referral_id)

    def _refresh_last(self, contact_id: str) -> None:
        times = [
            i["occurred_at"]
            for i in self.interactions.values()
            if i["contact_id"] == contact_id and i["kind"] != "note"
        ]
        baseline = self.baseline.get(contact_id)
        if baseline:
            times.append(baseline)
        self.contacts[contact_id]["last_interaction_at"] = max(times) if times else None

    def _entity(self, change: Json) -> Json | None:
        store = {
            "user": self.users,
            "contact": self.contacts,
            "interaction": self.interactions,
            "referral": self.referrals,
        }[change["kind"]]
        entity = store.get(change["entity_id"])
        if change["op"] == "delete" or entity is None:
            return None
        return dict(entity)

    # -- the HTTP app ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The fake contacts internal API."""
        app = web.Application()
        r = app.router
        r.add_get("/internal/v1/changes", self.h_changes)
        r.add_get("/internal/v1/users", self.h_users)
        r.add_get("/internal/v1/users/{uid}", self.h_user)
        r.add_get("/internal/v1/users/{uid}/contacts", self.h_contacts)
        r.add_get("/internal/v1/users/{uid}/contacts/match", self.h_match)
        r.add_get("/internal/v1/users/{uid}/contacts/{cid}", self.h_contact)
        r.add_post("/internal/v1/users/{uid}/contacts/{cid}/interactions", self.h_interaction)
        r.add_delete("/internal/v1/users/{uid}/interactions/{iid}", self.h_del_interaction)
        r.add_post("/internal/v1/users/{uid}/referrals", self.h_referral)
        r.add_delete("/internal/v1/users/{uid}/referrals/{rid}", self.h_del_referral)
        return app

    def _check(self, request: web.Request) -> None:
        _auth(request, "contacts", self.clock)
        if self.down:
            raise web.HTTPServiceUnavailable()
        self.calls.append(f"{request.method} {request.path}")

    async def h_changes(self, request: web.Request) -> web.Response:
        self._check(request)
        after = request.query.get("after", "")
        limit = int(request.query.get("limit", "500"))
        pending = [c for c in self.changes if c["cursor"] > after]
        page = pending[:limit]
        out = [{**c, "entity": self._entity(c)} for c in page]
        return web.json_response(
            {
                "changes": out,
                "next": page[-1]["cursor"] if page else (after or None),
                "has_more": len(pending) > limit,
            }
        )

    async def h_users(self, request: web.Request) -> web.Response:
        self._check(request)
        after = request.query.get("after", "")
        limit = int(request.query.get("limit", "200"))
        ids = sorted(u for u in self.users if u > after)[:limit]
        more = len([u for u in self.users if u > after]) > limit
        items = [self.users[u] for u in ids]
        return web.json_response({"items": items, "next": ids[-1] if more and ids else None})

    async def h_user(self, request: web.Request) -> web.Response:
        self._check(request)
        uid = request.match_info["uid"]
        user = self.users.get(uid)
        if user is None and uid in self.operators:
            user = {"id": uid, "role": "operator"}
        if user is None:
            return web.json_response({"status": 404}, status=404)
        return web.json_response(user)

    def _owned(self, request: web.Request) -> Json:
        contact = self.contacts.get(request.match_info["cid"])
        if contact is None or contact["user_id"] != request.match_info["uid"]:
            raise web.HTTPNotFound()
        return contact

    async def h_contacts(self, request: web.Request) -> web.Response:
        self._check(request)
        uid = request.match_info["uid"]
        items = [c for c in self.contacts.values() if c["user_id"] == uid and not c["deleted"]]
        return web.json_response({"items": items, "next": None})

    async def h_contact(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response(self._owned(request))

    async def h_match(self, request: web.Request) -> web.Response:
        self._check(request)
        uid = request.match_info["uid"]
        # Refused as contacts refuses it: no name, a name over 100 characters, or no letter/digit.
        try:
            MatchQuery.model_validate({"name": request.query.get("name", "")})
        except ValidationError:
            return web.json_response({"status": 422}, status=422)
        if not normalize_text(request.query["name"]):
            return web.json_response({"status": 422}, status=422)
        query = _fold(request.query.get("name", "")).split()
        found = []
        for contact in self.contacts.values():
            if contact["user_id"] != uid or contact["deleted"] or not query:
                continue
            words = _fold(contact["name"]).split()
            if all(any(w.startswith(q) for w in words) for q in query):
                found.append(contact)
        return web.json_response({"candidates": found})

    def _repeat(self, request: web.Request) -> tuple[str, web.Response | None]:
        key = request.headers.get("Idempotency-Key")
        if not key:
            raise web.HTTPBadRequest(text="Idempotency-Key required")
        scoped = f"{request.path}:{key}"
        if scoped in self.idempotent:
            return scoped, web.json_response(self.idempotent[scoped], status=201)
        return scoped, None

    async def h_interaction(self, request: web.Request) -> web.Response:
        self._check(request)
        contact = self._owned(request)
        if contact["deleted"]:
            raise web.HTTPNotFound()
        scoped, repeat = self._repeat(request)
        if repeat is not None:
            return repeat
        body = await request.json()
        # contacts' own input model: kinds, lengths, no control characters.
        try:
            InternalInteractionCreate.model_validate(body)
        except ValidationError:
            return web.json_response({"status": 422}, status=422)
        interaction = self.log(contact["user_id"], contact["id"], body)
        self.idempotent[scoped] = interaction
        return web.json_response(interaction, status=201)

    async def h_del_interaction(self, request: web.Request) -> web.Response:
        self._check(request)
        interaction = self.interactions.get(request.match_info["iid"])
        if interaction is None or interaction["user_id"] != request.match_info["uid"]:
            raise web.HTTPNotFound()
        del self.interactions[interaction["id"]]
        self._change("interaction", "delete", interaction["user_id"], interaction["id"])
        self._change("contact", "upsert", interaction["user_id"], interaction["contact_id"])
        self._refresh_last(interaction["contact_id"])
        return web.Response(status=204)

    async def h_referral(self, request: web.Request) -> web.Response:
        self._check(request)
        uid = request.match_info["uid"]
        scoped, repeat = self._repeat(request)
        if repeat is not None:
            return repeat
        body = await request.json()
        contact = self.contacts.get(body.get("contact_id", ""))
        if contact is None or contact["user_id"] != uid or contact["deleted"]:
            raise web.HTTPNotFound()
        try:
            # The fake's ids are shorter than contacts' 32 hex digits: check everything else.
            ReferralCreate.model_validate({**body, "contact_id": "0" * 32})
        except ValidationError:
            return web.json_response({"status": 422}, status=422)
        referral = {
            **body,
            "id": uuid.uuid4().hex[:12],
            "user_id": uid,
            "status": "open",
            "created_at": _iso(self.clock.now()),
        }
        self.referrals[referral["id"]] = referral
        self._change("referral", "upsert", uid, referral["id"])
        self.idempotent[scoped] = referral
        return web.json_response(referral, status=201)

    async def h_del_referral(self, request: web.Request) -> web.Response:
        self._check(request)
        referral = self.referrals.pop(request.match_info["rid"], None)
        if referral is None:
            raise web.HTTPNotFound()
        self._change("referral", "delete", referral["user_id"], referral["id"])
        return web.Response(status=204)


@dataclass
class FakeNotifier:
    """Queues messages by idempotency key; can be told to fail or to be down."""

    clock: Clock
    messages: dict[str, Json] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    fail_next: int = 0
    down: bool = False
    refuse: bool = False
    # Messages asked for (a batch counts each of its items) and batch calls.
    posts: int = 0
    batches: int = 0
    # False: answer the batch endpoint with 404, as a notifier from before it would.
    batch_enabled: bool = True
    # Numbers that replied STOP: their messages are stored as suppressed, never sent.
    opted_out: set[str] = field(default_factory=set)

    def app(self) -> web.Application:
        """The fake notifier internal API."""
        app = web.Application()
        app.router.add_post("/internal/v1/messages", self.h_post)
        app.router.add_post("/internal/v1/messages:batch", self.h_batch)
        app.router.add_get("/internal/v1/messages/{mid}", self.h_get)
        return app

    def sent(self, user_id: str | None = None) -> list[Json]:
        """Messages queued (for one user)."""
        return [m for m in self.messages.values() if user_id is None or m["user_id"] == user_id]

    async def h_post(self, request: web.Request) -> web.Response:
        _auth(request, "notifier", self.clock)
        self.posts += 1
        if self.down:
            return web.json_response({"status": 503}, status=503)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"status": 503}, status=503)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"status": 400, "detail": "Idempotency-Key"}, status=400)
        status, answer = self._store(key, await request.json())
        return web.json_response(answer, status=status)

    async def h_batch(self, request: web.Request) -> web.Response:
        """The batch endpoint: each item counts as one post, like a single call would."""
        _auth(request, "notifier", self.clock)
        self.batches += 1
        items = (await request.json())["items"]
        self.posts += len(items)
        if self.down:
            return web.json_response({"status": 503}, status=503)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"status": 503}, status=503)
        if not self.batch_enabled:
            return web.json_response({"status": 404}, status=404)
        if any(not str(item.get("to", "")).startswith("+") for item in items):
            return web.json_response({"status": 422}, status=422)  # refuses the whole batch
        answers = []
        for item in items:
            key = item.pop("idempotency_key")
            status, answer = self._store(key, item)
            if status == 422:
                answers.append({"idempotency_key": key, "status": 409, "problem": answer})
            else:
                answers.append({"idempotency_key": key, "status": status, "message": answer})
        return web.json_response({"items": answers})

    def _store(self, key: str, body: Json) -> tuple[int, Json]:
        if key in self.by_key:
            return 200, self.messages[self.by_key[key]]
        if self.refuse or not str(body.get("to", "")).startswith("+"):
            return 422, {"status": 422}
        now = _iso(self.clock.now())
        suppressed = body.get("to") in self.opted_out
        message = {
            **body,
            "id": uuid.uuid4().hex,
            "status": "suppressed" if suppressed else "queued",
            "attempts": 0,
            "error_code": 21610 if suppressed else None,
            "error_message": "the recipient has opted out" if suppressed else None,
            "provider_sid": None,
            "segments": 1,
            "encoding": "GSM-7",
            "created_at": now,
            "updated_at": now,
            "idempotency_key": key,
        }
        self.messages[message["id"]] = message
        self.by_key[key] = message["id"]
        return 201, message

    async def h_get(self, request: web.Request) -> web.Response:
        _auth(request, "notifier", self.clock)
        message = self.messages.get(request.match_info["mid"])
        if message is None:
            return web.json_response({"status": 404}, status=404)
        return web.json_response(message)
