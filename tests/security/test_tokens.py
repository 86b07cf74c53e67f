"""Token tampering: every forged, expired, misaddressed or replayed credential is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from shared.auth import (
    SERVICE_ISSUER_PREFIX,
    USER_AUDIENCE,
    USER_ISSUER,
    issue_access_token,
    issue_service_token,
)
from tests.security.support import User, b64, call, expect_problem, sign_in, unsigned_token
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET
from tests.support.stack import Stack

PHONE = "+12125550321"


@pytest.fixture(scope="module")
def user(stack: Stack) -> User:
    return sign_in(stack, PHONE)


def user_claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": USER_ISSUER,
        "aud": USER_AUDIENCE,
        "sub": user_id,
        "role": "operator",
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def service_claims(caller: str, audience: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": SERVICE_ISSUER_PREFIX + caller,
        "aud": SERVICE_ISSUER_PREFIX + audience,
        "sub": caller,
        "typ": "service",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def tampered(token: str) -> str:
    """The same token with one character of its signature changed."""
    head, _, sig = token.rpartition(".")
    swap = "A" if sig[3] != "A" else "B"
    return f"{head}.{sig[:3]}{swap}{sig[4:]}"


def forged_user_tokens(user: User) -> dict[str, str]:
    """Access tokens an attacker might present, each granting the operator role if accepted."""

    def sign(claims: dict[str, Any], key: str = JWT_SECRET) -> str:
        return jwt.encode(claims, key, algorithm="HS256")

    past = datetime.now(UTC) - timedelta(hours=1)
    return {
        "altered signature": tampered(user.access),
        "alg none": unsigned_token(user_claims(user.id)),
        "alg none, no signature part": unsigned_token(user_claims(user.id))[:-1],
        "wrong key": sign(user_claims(user.id), "not-the-secret-0123456789abcdef-xyz"),
        "service secret": sign(user_claims(user.id), INTERNAL_SECRET),
        "HS512": hs512(user_claims(user.id)),
        "expired": issue_access_token(JWT_SECRET, user.id, "operator", now=past),
        "expired a second ago": sign(user_claims(user.id, exp=int(time.time()) - 1)),
        "wrong audience": sign(user_claims(user.id, aud="touchbase-admin")),
        "no audience": sign(user_claims(user.id, aud=None)),
        "wrong issuer": sign(user_claims(user.id, iss="evil")),
        "no expiry": sign(user_claims(user.id, exp=None)),
        "refresh type": sign(user_claims(user.id, typ="refresh")),
        "unknown role": sign(user_claims(user.id, role="admin")),
        "service token": issue_service_token(INTERNAL_SECRET, "cli", "reminders"),
        "service token, user secret": sign(service_claims("cli", "reminders")),
        "garbage": "not.a.jwt",
        "empty segments": "..",
        "the refresh token": user.refresh,
    }


def hs512(claims: dict[str, Any]) -> str:
    """A token signed with the right secret but an algorithm the services do not accept."""
    head = b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha512).digest()
    return f"{head}.{body}.{b64(mac)}"


ROUTES = [
    ("contacts", "GET", "/v1/me"),
    ("contacts", "GET", "/v1/contacts"),
    ("reminders", "GET", "/v1/preferences"),
    ("reminders", "GET", "/admin/v1/tiers"),
    ("reminders", "PUT", "/admin/v1/pause"),
]


def test_forged_access_tokens_are_refused_everywhere(stack: Stack, user: User) -> None:
    for name, token in forged_user_tokens(user).items():
        for service, method, path in ROUTES:
            body = {"paused": True} if method == "PUT" else None
            got = call(method, stack.url(service) + path, body, token=token)
            assert got.status == 401, (name, path, got.json)
            assert got.is_problem(401), (name, path, got.headers)
    # The genuine token still works, and nothing was paused.
    assert call("GET", stack.url("contacts") + "/v1/me", token=user.access).status == 200


def test_missing_or_malformed_authorization_headers(stack: Stack) -> None:
    for header in ("", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b"):
        for service, path in (("contacts", "/v1/me"), ("reminders", "/v1/touchpoints")):
            got = call("GET", stack.url(service) + path, headers={"Authorization": header})
            expect_problem(got, 401, (header, path, got.json))


def test_forged_service_tokens_are_refused_on_internal_routes(stack: Stack, user: User) -> None:

    def sign(claims: dict[str, Any], key: str = INTERNAL_SECRET) -> str:
        return jwt.encode(claims, key, algorithm="HS256")

    past = datetime.now(UTC) - timedelta(minutes=10)
    targets = {
        "contacts": "/internal/v1/users",
        "reminders": f"/internal/v1/users/{user.id}/export",
        "notifier": "/internal/v1/messages",
    }
    for audience, path in targets.items():
        good = issue_service_token(INTERNAL_SECRET, "cli", audience)
        other = "notifier" if audience != "notifier" else "contacts"
        forged = {
            "user access token": user.access,
            "altered signature": tampered(good),
            "alg none": unsigned_token(service_claims("cli", audience)),
            "for another service": issue_service_token(INTERNAL_SECRET, "cli", other),
            "unknown caller": sign(service_claims("evil", audience)),
            "issuer not the caller": sign(service_claims("cli", audience, iss="x")),
            "user secret": sign(service_claims("cli", audience), JWT_SECRET),
            "expired beyond the skew": issue_service_token(INTERNAL_SECRET, "cli", audience, past),
            "user type": sign(service_claims("cli", audience, typ="access")),
        }
        for name, token in forged.items():
            got = call("GET", stack.url(audience) + path, token=token)
            expect_problem(got, 401, (audience, name, got.json))
        assert call("GET", stack.url(audience) + path, token=good).status in (200, 404)


def test_a_reused_refresh_token_ends_the_whole_sign_in(stack: Stack) -> None:
    victim = sign_in(stack, "+12125550322")
    url = stack.url("contacts") + "/v1/auth/refresh"
    rotated = call("POST", url, {"refresh_token": victim.refresh})
    assert rotated.status == 200, rotated.json
    newer = rotated.json["refresh_token"]
    # The old token comes back (stolen, or replayed): refused, and the family is revoked.
    replay = call("POST", url, {"refresh_token": victim.refresh})
    expect_problem(replay, 401, replay.json)
    after = call("POST", url, {"refresh_token": newer})
    expect_problem(after, 401, after.json)
    # The same error for a token that never existed: nothing tells the attacker what happened.
    unknown = call("POST", url, {"refresh_token": "x" * 43})
    assert unknown.status == 401
    assert unknown.json["detail"] == replay.json["detail"] == after.json["detail"]
    # Another sign-in of the same user is untouched.
    other = sign_in(stack, "+12125550322")
    assert call("POST", url, {"refresh_token": other.refresh}).status == 200


def test_logout_of_one_user_cannot_revoke_another(stack: Stack) -> None:
    alice = sign_in(stack, "+12125550323")
    bob = sign_in(stack, "+12125550324")
    out = call(
        "POST",
        stack.url("contacts") + "/v1/auth/logout",
        {"refresh_token": alice.refresh},
        token=bob.access,
    )
    assert out.status in (204, 404), out.json
    again = call(
        "POST", stack.url("contacts") + "/v1/auth/refresh", {"refresh_token": alice.refresh}
    )
    assert again.status == 200, again.json


def test_operator_role_is_not_taken_from_a_networker_token(stack: Stack, user: User) -> None:
    got = call("GET", stack.url("reminders") + "/admin/v1/tiers", token=user.access)
    expect_problem(got, 403, got.json)
    signed_in_again = call(
        "POST", stack.url("contacts") + "/v1/auth/refresh", {"refresh_token": user.refresh}
    )
    assert signed_in_again.status == 200
    assert signed_in_again.json["user"]["role"] == "networker"


def every_route() -> list[tuple[str, str, str]]:
    """(service, method, path) of every authenticated route, ids filled with random hex."""
    from services.contacts.routes import ROUTES

    fill = {"user_id": "a" * 32, "contact_id": "b" * 32, "interaction_id": "c" * 32}
    fill |= {"referral_id": "d" * 32, "message_id": "e" * 32}
    routes = [("contacts", r.method, r.path.format(**fill)) for r in ROUTES if not r.public]
    routes += [
        ("reminders", "POST", "/internal/v1/replies"),
        ("reminders", "DELETE", "/internal/v1/users/{user_id}"),
        ("reminders", "GET", "/internal/v1/users/{user_id}/export"),
        ("reminders", "GET", "/v1/preferences"),
        ("reminders", "PUT", "/v1/preferences"),
        ("reminders", "GET", "/v1/touchpoints"),
        ("reminders", "POST", "/v1/touchpoints"),
        ("reminders", "PUT", "/admin/v1/users/{user_id}/pause"),
        ("reminders", "GET", "/admin/v1/users/{user_id}/schedule"),
        ("notifier", "POST", "/internal/v1/messages"),
        ("notifier", "GET", "/internal/v1/messages"),
        ("notifier", "GET", "/internal/v1/messages/{message_id}"),
        ("notifier", "GET", "/internal/v1/sandbox/outbox"),
        ("notifier", "POST", "/internal/v1/sandbox/inbound"),
        ("notifier", "DELETE", "/internal/v1/users/{user_id}"),
    ]
    return [(s, m, p.format(**fill)) for s, m, p in routes]


def test_every_route_refuses_the_other_kind_of_token(stack: Stack, user: User) -> None:
    """User tokens never open /internal; service tokens never open the public API."""
    for service, method, path in every_route():
        internal = path.startswith("/internal/")
        token = user.access if internal else issue_service_token(INTERNAL_SECRET, "cli", service)
        body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
        got = call(method, stack.url(service) + path, body, token=token)
        expect_problem(got, 401, (service, method, path))
        anonymous = call(method, stack.url(service) + path, body)
        expect_problem(anonymous, 401, (service, method, path, "no token"))
