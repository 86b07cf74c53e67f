"""Object-level authorization across the whole system: another user's token finds nothing.

Every id-bearing route answers exactly as it does for an id that does not exist (404, never 403,
which would confirm the object exists), and the owner reads back the very same state afterwards.
The contacts service's own isolation matrix (tests/contacts) covers its contact routes
in-process; here the same property is checked over real HTTP for every other tenant route, the
reminders user API, and the reply path an SMS takes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.security.support import SEEN, Reply, User, call, expect_problem, sign_in
from tests.support.stack import Stack

ALICE = "+12125550311"
BOB = "+12125550312"
PRIVATE_NOTE = "alice-private-note-7f3a: prefers mornings"


@dataclass
class World:
    """Two users; Alice owns everything, Bob attacks."""

    alice: User
    bob: User
    contact_id: str
    interaction_id: str
    referral_id: str
    touchpoint_id: str


def c(stack: Stack, path: str) -> str:
    return stack.url("contacts") + path


def r(stack: Stack, path: str) -> str:
    return stack.url("reminders") + path


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    alice, bob = sign_in(stack, ALICE), sign_in(stack, BOB)
    SEEN.bodies.add(PRIVATE_NOTE)
    made = call(
        "POST",
        c(stack, "/v1/contacts"),
        {
            "name": "Dana Lee",
            "tier": "A",
            "notes": PRIVATE_NOTE,
            "phones": [{"number": "+12125550399"}],
        },
        token=alice.access,
    )
    assert made.status == 201, made.json
    SEEN.phones.add("+12125550399")
    contact_id = made.json["id"]
    met = call(
        "POST",
        c(stack, f"/v1/contacts/{contact_id}/interactions"),
        {"kind": "coffee", "notes": PRIVATE_NOTE},
        token=alice.access,
    )
    assert met.status == 201, met.json
    ref = call(
        "POST",
        c(stack, "/v1/referrals"),
        {"direction": "given", "contact_id": contact_id, "description": PRIVATE_NOTE},
        token=alice.access,
    )
    assert ref.status == 201, ref.json
    prefs = call("PUT", r(stack, "/v1/preferences"), {"digest_time": "08:15"}, token=alice.access)
    assert prefs.status == 200, prefs.json
    one_off = call(
        "POST",
        r(stack, "/v1/touchpoints"),
        {
            "contact_id": contact_id,
            "contact_name": "Dana Lee",
            "reason": "send the deck",
            "due_at": "2026-06-03T15:00:00Z",
        },
        token=alice.access,
    )
    assert one_off.status == 201, one_off.json
    return World(alice, bob, contact_id, met.json["id"], ref.json["id"], one_off.json["id"])


def snapshot(stack: Stack, world: World) -> dict[str, Any]:
    """Everything of Alice's, read with her own token."""
    token = world.alice.access
    paths = {
        "me": c(stack, "/v1/me"),
        "contact": c(stack, f"/v1/contacts/{world.contact_id}"),
        "contacts": c(stack, "/v1/contacts?deleted=false"),
        "deleted": c(stack, "/v1/contacts?deleted=true"),
        "interactions": c(stack, f"/v1/contacts/{world.contact_id}/interactions"),
        "referral": c(stack, f"/v1/referrals/{world.referral_id}"),
        "referrals": c(stack, "/v1/referrals"),
        "stats": c(stack, "/v1/stats"),
        "preferences": r(stack, "/v1/preferences"),
        "touchpoints": r(stack, "/v1/touchpoints"),
    }
    state = {}
    for name, url in paths.items():
        got = call("GET", url, token=token)
        assert got.status == 200, (name, got.json)
        state[name] = got.json
    return state


def comparable(reply: Reply) -> tuple[int, Any]:
    """Status and body without the per-request id."""
    body = reply.json
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "request_id"}
    return reply.status, body


def attempts(world: World) -> list[tuple[str, str, str, Any]]:
    """(service, method, path template, body) of every route that names one of Alice's objects."""
    return [
        ("contacts", "GET", "/v1/contacts/{contact}/interactions", None),
        ("contacts", "POST", "/v1/contacts/{contact}/interactions", {"kind": "call"}),
        ("contacts", "DELETE", "/v1/interactions/{interaction}", None),
        ("contacts", "GET", "/v1/referrals/{referral}", None),
        ("contacts", "PATCH", "/v1/referrals/{referral}", {"status": "won", "value": 1}),
        ("contacts", "DELETE", "/v1/referrals/{referral}", None),
        ("contacts", "GET", "/v1/contacts/{contact}", None),
        ("contacts", "PATCH", "/v1/contacts/{contact}", {"name": "Owned"}),
        ("contacts", "POST", "/v1/contacts/{contact}/restore", None),
        ("contacts", "DELETE", "/v1/contacts/{contact}", None),
    ]


def test_another_users_ids_answer_like_ids_that_do_not_exist(stack: Stack, world: World) -> None:
    before = snapshot(stack, world)
    real = {
        "contact": world.contact_id,
        "interaction": world.interaction_id,
        "referral": world.referral_id,
    }
    ghost = {key: uuid.uuid4().hex for key in real}
    etag = call("GET", c(stack, f"/v1/contacts/{world.contact_id}"), token=world.alice.access)
    headers = {"If-Match": etag.headers.get("ETag", "*")}
    for service, method, template, body in attempts(world):
        theirs = call(
            method,
            stack.url(service) + template.format(**real),
            body,
            token=world.bob.access,
            headers=headers,
        )
        nobody = call(
            method,
            stack.url(service) + template.format(**ghost),
            body,
            token=world.bob.access,
            headers=headers,
        )
        assert theirs.status == 404, (method, template, theirs.json)
        assert theirs.is_problem(404), (method, template, theirs.headers)
        assert comparable(theirs) == comparable(nobody), (method, template)
    assert snapshot(stack, world) == before


def test_references_to_another_users_contact_are_refused_like_unknown_ones(
    stack: Stack, world: World
) -> None:
    before = snapshot(stack, world)
    for field in ("contact_id", "for_contact_id"):
        body: dict[str, Any] = {"direction": "received", "contact_id": uuid.uuid4().hex}
        theirs = call(
            "POST",
            c(stack, "/v1/referrals"),
            {**body, field: world.contact_id},
            token=world.bob.access,
        )
        nobody = call(
            "POST",
            c(stack, "/v1/referrals"),
            {**body, field: uuid.uuid4().hex},
            token=world.bob.access,
        )
        assert theirs.status in (404, 422), theirs.json
        assert comparable(theirs) == comparable(nobody), field
    # A filter on someone else's contact lists nothing.
    page = call(
        "GET", c(stack, f"/v1/referrals?contact_id={world.contact_id}"), token=world.bob.access
    )
    assert page.status == 200, page.json
    assert page.json["items"] == [], page.json
    assert snapshot(stack, world) == before


def test_lists_exports_and_stats_show_only_the_callers_data(stack: Stack, world: World) -> None:
    token = world.bob.access
    for path in ("/v1/contacts", "/v1/contacts?deleted=true", "/v1/referrals"):
        got = call("GET", c(stack, path), token=token)
        assert got.status == 200, (path, got.json)
        assert got.json["items"] == [], (path, got.json)
    me = call("GET", c(stack, "/v1/me"), token=token)
    assert me.json["id"] == world.bob.id
    stats = call("GET", c(stack, "/v1/stats"), token=token)
    assert stats.status == 200
    exported = call("GET", c(stack, "/v1/me/export"), token=token)
    assert exported.status == 200, exported.json
    text = exported.raw.decode()
    for secret in (world.contact_id, PRIVATE_NOTE, world.alice.id):
        assert secret not in text
    upcoming = call("GET", r(stack, "/v1/touchpoints"), token=token)
    assert upcoming.status == 200, upcoming.json
    assert upcoming.json["items"] == [], upcoming.json
    prefs = call("GET", r(stack, "/v1/preferences"), token=token)
    assert prefs.status == 200, prefs.json
    assert prefs.json.get("digest_time") != "08:15", prefs.json


def test_reminders_user_api_is_scoped_to_the_caller(stack: Stack, world: World) -> None:
    before = snapshot(stack, world)
    # Bob's writes land in Bob's account only, whatever ids they carry.
    changed = call(
        "PUT", r(stack, "/v1/preferences"), {"digest_time": "06:00"}, token=world.bob.access
    )
    assert changed.status == 200, changed.json
    extra = {"user_id": world.alice.id}
    smuggled = call(
        "PUT",
        r(stack, "/v1/preferences"),
        {"digest_time": "05:00", **extra},
        token=world.bob.access,
    )
    expect_problem(smuggled, 422, smuggled.json)
    assert snapshot(stack, world) == before
    # Touchpoints are addressed by id for the app's actions: another user's is as unknown as one
    # that does not exist, and acting on it changes nothing.
    tp = f"/v1/touchpoints/{world.touchpoint_id}"
    for method, path, body in (
        ("DELETE", tp, None),
        ("POST", f"{tp}:done", None),
        ("POST", f"{tp}:skip", None),
        ("POST", f"{tp}:snooze", {"for": "1w"}),
    ):
        got = call(method, r(stack, path), body, token=world.bob.access)
        expect_problem(got, 404, (method, path, got.status))
    assert snapshot(stack, world) == before
    # The rest of the reminders user API never serves a user's data by id in the path.
    for path in (f"/v1/users/{world.alice.id}/preferences", f"/v1/preferences/{world.alice.id}"):
        got = call("GET", r(stack, path), token=world.bob.access)
        expect_problem(got, 404, (path, got.status))


def text(stack: Stack, phone: str, message: str) -> str | None:
    """Send an SMS as ``phone`` through the notifier's sandbox (signed webhook path)."""
    SEEN.bodies.add(message)
    status, body = stack.internal(
        "notifier", "POST", "/internal/v1/sandbox/inbound", {"from": phone, "text": message}
    )
    assert status == 200, body
    answer: str | None = body["reply"]
    return answer


def test_sms_replies_act_only_on_the_senders_contacts(stack: Stack, world: World) -> None:
    before = snapshot(stack, world)
    # Bob names Alice's contact and points at a touchpoint carrying her contact's id.
    call(
        "POST",
        r(stack, "/v1/touchpoints"),
        {
            "contact_id": world.contact_id,
            "contact_name": "Dana Lee",
            "reason": "planted again",
            "due_at": "2026-06-01T15:00:00Z",
        },
        token=world.bob.access,
    )
    for message in (
        "MET Dana coffee bob-was-here",
        "MET 1 coffee bob-was-here",
        "REF Dana bob-was-here",
        "SNOOZE 1 1w",
        "UNDO",
        "WHO Dana",
    ):
        answer = text(stack, world.bob.phone, message)
        assert answer is None or PRIVATE_NOTE not in answer, (message, answer)
    after = snapshot(stack, world)
    assert after["interactions"] == before["interactions"]
    assert after["referrals"] == before["referrals"]
    assert after["contact"] == before["contact"]
    assert after["touchpoints"] == before["touchpoints"]


def test_reply_record_is_never_served_to_another_user(stack: Stack, world: World) -> None:
    """A message id replayed for another user never returns the first user's answer."""
    sid = "SM" + uuid.uuid4().hex
    token = _service_token("notifier", "reminders")
    first = call(
        "POST",
        r(stack, "/internal/v1/replies"),
        {"user_id": world.alice.id, "from": ALICE, "text": "MET Dana call", "message_sid": sid},
        token=token,
    )
    assert first.status == 200, first.json
    assert "Dana Lee" in first.json["reply"], first.json
    other = call(
        "POST",
        r(stack, "/internal/v1/replies"),
        {"user_id": world.bob.id, "from": BOB, "text": "MET Dana call", "message_sid": sid},
        token=token,
    )
    assert "Dana Lee" not in other.raw.decode(), other.json
    assert world.contact_id not in other.raw.decode(), other.json


def test_one_off_touchpoint_for_another_users_contact_is_refused(
    stack: Stack, world: World
) -> None:
    before = snapshot(stack, world)
    planted = call(
        "POST",
        r(stack, "/v1/touchpoints"),
        {
            "contact_id": world.contact_id,
            "contact_name": "Dana Lee",
            "reason": "planted",
            "due_at": "2026-06-01T15:00:00Z",
        },
        token=world.bob.access,
    )
    assert snapshot(stack, world) == before
    assert planted.status in (404, 422), planted.json
    assert planted.is_problem(), planted.json


def _service_token(caller: str, audience: str) -> str:
    from shared.auth import issue_service_token
    from tests.support.settings import INTERNAL_SECRET

    return issue_service_token(INTERNAL_SECRET, caller, audience)


def test_operator_routes_refuse_networkers_and_services(stack: Stack, world: World) -> None:
    alice = world.alice.id
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/admin/v1/tiers", None),
        ("PUT", "/admin/v1/tiers", {"tiers": {"A": {"days": 1}}}),
        ("GET", "/admin/v1/follow-up-rules", None),
        ("PUT", "/admin/v1/follow-up-rules", {"rules": []}),
        ("GET", "/admin/v1/send-window", None),
        ("PUT", "/admin/v1/send-window", {"digest_time": "03:00"}),
        ("GET", "/admin/v1/jobs", None),
        ("PUT", "/admin/v1/jobs", {"sweep": 3600}),
        ("PUT", "/admin/v1/pause", {"paused": True, "reason": "owned"}),
        ("PUT", f"/admin/v1/users/{alice}/pause", {"until": "2030-01-01T00:00:00Z"}),
        ("GET", f"/admin/v1/users/{alice}/schedule", None),
        ("GET", "/admin/v1/nudges", None),
        ("GET", "/admin/v1/dry-run", None),
        ("GET", "/admin/v1/audit", None),
    ]
    before = snapshot(stack, world)
    for method, path, body in routes:
        denied = call(method, r(stack, path), body, token=world.bob.access)
        expect_problem(denied, 403, (method, path, denied.json))
        # A service token is not a user at all on the public side.
        service = call(method, r(stack, path), body, token=_service_token("cli", "reminders"))
        expect_problem(service, 401, (method, path, service.json))
    assert snapshot(stack, world) == before


def test_operator_sees_changes_only_through_the_audit(
    stack: Stack, world: World, operator: User
) -> None:
    # Nothing any networker tried above reached the operator audit log.
    audit = call("GET", r(stack, "/admin/v1/audit"), token=operator.access)
    assert audit.status == 200, audit.json
    assert all(entry.get("actor") != world.bob.id for entry in audit.json["items"]), audit.json
