"""Twilio webhooks on the notifier: only requests signed for exactly this URL act, and once."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from tests.security.conftest import db
from tests.security.support import (
    SANDBOX_AUTH_TOKEN,
    SEEN,
    Reply,
    User,
    call,
    expect_problem,
    sign_in,
    wait_for,
)
from tests.support.stack import Stack

PHONE = "+12125550341"
SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def user(stack: Stack) -> User:
    return sign_in(stack, PHONE)


@pytest.fixture(scope="module")
def notifier_db(stack: Stack) -> Iterator[Any]:
    client, database = db(stack, "notifier")
    try:
        yield database
    finally:
        client.close()


def sign(url: str, params: dict[str, str], token: str = SANDBOX_AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def post_form(url: str, params: dict[str, str], signature: str | None) -> Reply:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    raw = urllib.parse.urlencode(params).encode()
    return call("POST", url, raw=raw, headers=headers, content_type=FORM)


def inbound(stack: Stack, text: str, sid: str | None = None) -> dict[str, str]:
    SEEN.bodies.add(text)
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": PHONE,
        "To": "+15005550006",
        "Body": text,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def forgeries(stack: Stack, path: str, params: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """(url to post to, signature) for every way of getting the signature wrong."""
    url = stack.url("notifier") + path
    other_path = STATUS_PATH if path.startswith(SMS_PATH) else SMS_PATH
    tampered = {**params, "Body": params.get("Body", "") + "!", "MessageStatus": "failed"}
    return {
        "unsigned": (url, None),
        "empty signature": (url, ""),
        "garbage signature": (url, "bm90IGEgc2lnbmF0dXJl"),
        "signed with another token": (url, sign(url, params, "another-auth-token")),
        "signed for another host": (url, sign("https://evil.example" + path, params)),
        "signed for another path": (url, sign(stack.url("notifier") + other_path, params)),
        "signed over https": (url, sign(url.replace("http://", "https://"), params)),
        "signed with another query": (
            url,
            sign(url + ("&" if "?" in url else "?") + "x=1", params),
        ),
        "signed for other parameters": (url, sign(url, tampered)),
    }


def test_forged_incoming_texts_are_refused_and_not_stored(
    stack: Stack, user: User, notifier_db: Any
) -> None:
    params = inbound(stack, "STOP")
    for name, (url, signature) in forgeries(stack, SMS_PATH, params).items():
        got = post_form(url, params, signature)
        expect_problem(got, 403, name)
        assert notifier_db.inbound.find_one({"_id": params["MessageSid"]}) is None, name
    # A STOP that had been accepted would have opted the number out.
    assert notifier_db.suppressions.find_one({"_id": PHONE}) is None


def test_a_signed_text_acts_once_however_often_it_is_delivered(
    stack: Stack, user: User, notifier_db: Any
) -> None:
    made = call(
        "POST", stack.url("contacts") + "/v1/contacts", {"name": "Rae Kim"}, token=user.access
    )
    assert made.status == 201, made.json
    interactions = stack.url("contacts") + f"/v1/contacts/{made.json['id']}/interactions"
    params = inbound(stack, "MET Rae coffee webhook-once")
    url = stack.url("notifier") + SMS_PATH
    signature = sign(url, params)
    first = post_form(url, params, signature)
    assert first.status == 200, first.raw
    assert b"Rae Kim" in first.raw, first.raw
    replays = [post_form(url, params, signature) for _ in range(3)]
    assert all(r.status == 200 for r in replays)
    assert all(r.raw == first.raw for r in replays), [r.raw for r in replays]
    logged = call("GET", interactions, token=user.access)
    assert len(logged.json["items"]) == 1, logged.json
    assert notifier_db.inbound.count_documents({"_id": params["MessageSid"]}) == 1


def test_forged_status_callbacks_change_nothing(stack: Stack, user: User, notifier_db: Any) -> None:
    status, message = stack.internal(
        "notifier",
        "POST",
        "/internal/v1/messages",
        {"user_id": user.id, "to": PHONE, "body": "status probe", "purpose": "system"},
    )
    assert status == 201, message

    def sent() -> Any:
        _, doc = stack.internal("notifier", "GET", f"/internal/v1/messages/{message['id']}")
        return doc if doc["provider_sid"] else None

    before = wait_for(sent, "the sandbox send")
    path = f"{STATUS_PATH}?message_id={message['id']}"
    # An undelivered callback with 21610 would opt the user out of every message.
    params = {
        "MessageSid": before["provider_sid"],
        "MessageStatus": "undelivered",
        "ErrorCode": "21610",
        "AccountSid": "AC" + "0" * 32,
    }
    for name, (url, signature) in forgeries(stack, path, params).items():
        got = post_form(url, params, signature)
        expect_problem(got, 403, name)
    # Signed for this message's callback URL, replayed against another message's.
    _, other = stack.internal(
        "notifier",
        "POST",
        "/internal/v1/messages",
        {"user_id": user.id, "to": PHONE, "body": "other probe", "purpose": "system"},
    )
    url = stack.url("notifier") + path
    moved = post_form(
        stack.url("notifier") + f"{STATUS_PATH}?message_id={other['id']}",
        params,
        sign(url, params),
    )
    expect_problem(moved, 403, "moved to another message")
    _, after = stack.internal("notifier", "GET", f"/internal/v1/messages/{message['id']}")
    assert after["status"] == before["status"], after
    assert after["error_code"] is None, after
    assert notifier_db.suppressions.find_one({"_id": PHONE}) is None
    # The genuine callback is accepted, and a replay of it changes nothing more.
    delivered = {**params, "MessageStatus": "delivered", "ErrorCode": ""}
    del delivered["ErrorCode"]
    for _ in range(2):
        ok = post_form(url, delivered, sign(url, delivered))
        assert ok.status == 200, ok.raw
    _, final = stack.internal("notifier", "GET", f"/internal/v1/messages/{message['id']}")
    assert final["status"] == "delivered", final


def test_webhooks_refuse_json_and_oversized_forms(stack: Stack) -> None:
    url = stack.url("notifier") + SMS_PATH
    as_json = call("POST", url, {"MessageSid": "SM1", "From": PHONE, "Body": "STOP"})
    assert 400 <= as_json.status < 500, as_json.raw
    huge = {"MessageSid": "SM" + uuid.uuid4().hex, "From": PHONE, "Body": "x" * 2_000_000}
    big = post_form(url, huge, sign(url, huge))
    assert big.status == 413, big.status
