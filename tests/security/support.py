"""Helpers of the security suite: a raw-ish HTTP client, sign-in by SMS code, forged tokens."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.stack import Stack

# The notifier signs the sandbox's simulated webhooks with this token (TWILIO_SANDBOX_AUTH_TOKEN).
SANDBOX_AUTH_TOKEN = "security-suite-sandbox-token-0123456789"
OPERATOR_PHONE = "+12125550300"
PROBLEM = "application/problem+json"


@dataclass
class Sensitive:
    """Everything the suite saw that must never appear in a log at info level."""

    phones: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    bodies: set[str] = field(default_factory=set)


SEEN = Sensitive()


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        """The decoded body (None when empty)."""
        return json.loads(self.raw) if self.raw else None

    @property
    def content_type(self) -> str:
        """The media type without parameters."""
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def is_problem(self, status: int | None = None) -> bool:
        """Whether this is a problem+json answer (with ``status`` when given)."""
        if self.content_type != PROBLEM:
            return False
        body = self.json
        return isinstance(body, dict) and (status is None or body.get("status") == status)


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> Reply:
    """Send one request; never raises for an HTTP error status."""
    sent = {"Content-Type": content_type, **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if method == "POST":
        sent.setdefault("Idempotency-Key", uuid.uuid4().hex)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers.items()), exc.read())


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def outbox(stack: Stack, phone: str) -> list[dict[str, Any]]:
    """What the sandbox transport sent to ``phone``, newest first."""
    status, body = stack.internal(
        "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=100"
    )
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


def otp_start(stack: Stack, phone: str) -> Reply:
    """Ask for a sign-in code."""
    SEEN.phones.add(phone)
    return call("POST", stack.url("contacts") + "/v1/auth/otp/start", {"phone": phone})


def code_for(stack: Stack, phone: str, seen: set[str]) -> str:
    """The code of the newest sign-in SMS to ``phone`` not in ``seen`` (message ids)."""
    fresh = wait_for(
        lambda: [m for m in outbox(stack, phone) if m["id"] not in seen and m["purpose"] == "otp"],
        "the sign-in code",
    )
    found = re.search(r"\b(\d{6})\b", fresh[0]["body"])
    assert found, fresh[0]
    SEEN.codes.add(found.group(1))
    return found.group(1)


@dataclass
class User:
    """A signed-in user of the stack."""

    phone: str
    id: str
    access: str
    refresh: str


def sign_in(stack: Stack, phone: str) -> User:
    """Sign in by SMS code, as the app does."""
    seen = {m["id"] for m in outbox(stack, phone)}
    started = otp_start(stack, phone)
    assert started.status == 202, started.json
    code = code_for(stack, phone, seen)
    verified = call(
        "POST",
        stack.url("contacts") + "/v1/auth/otp/verify",
        {"challenge_id": started.json["challenge_id"], "code": code},
    )
    assert verified.status == 200, verified.json
    pair = verified.json
    SEEN.tokens.update({pair["access_token"], pair["refresh_token"]})
    return User(phone, pair["user"]["id"], pair["access_token"], pair["refresh_token"])


def b64(data: bytes) -> str:
    """Unpadded base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` and an empty signature."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def raw_http(port: int, payload: bytes, timeout_s: float = 5.0) -> bytes:
    """Write ``payload`` to a fresh connection and read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload)
        chunks: list[bytes] = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def expect_problem(reply: Reply, status: int, context: Any = None) -> None:
    """Assert ``reply`` is a problem+json answer with ``status``."""
    assert reply.status == status, (context, reply.status, reply.raw[:500])
    assert reply.is_problem(status), (context, reply.headers, reply.raw[:500])
