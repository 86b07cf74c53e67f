"""Webhook input the notifier cannot use: refused with a 4xx and one log line, never a 500."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.notifier.keys import MESSAGE_SERVICE, WORKER
from tests.notifier.conftest import (
    SANDBOX_TOKEN,
    AppFactory,
    FakeUpstreams,
    RecordingTransport,
    service_headers,
    sign,
)
from tests.notifier.test_webhooks import USER_PHONE, post_signed, sms_params, stored_inbound

WEBHOOKS = ["/webhooks/twilio/sms", "/webhooks/twilio/status"]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def inbound_app(
    notifier_app: AppFactory, upstreams: tuple[FakeUpstreams, TestServer]
) -> tuple[TestClient[Any, Any], FakeUpstreams]:
    fake, server = upstreams
    fake.users[USER_PHONE] = "u1"
    url = str(server.make_url("")).rstrip("/")
    client = await notifier_app(contacts_url=url, reminders_url=url, worker_enabled=False)
    return client, fake


def _assert_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """At most one WARNING line from the notifier, no traceback, nothing at ERROR."""
    mine = [r for r in caplog.records if r.name.startswith(("services.", "shared."))]
    assert [r for r in mine if r.levelno >= logging.ERROR] == []
    assert [r for r in mine if r.exc_info] == []
    assert len([r for r in mine if r.levelno == logging.WARNING]) <= 1
    assert all("\n" not in r.getMessage() for r in mine)


# A signature over the body's params is impossible to compute for these, so the request is
# signed over what a sender might think the params are; it must not matter.
UNPARSEABLE = [
    pytest.param("multipart/form-data", b"not multipart", 415, id="multipart-no-boundary"),
    pytest.param("multipart/form-data; boundary=xx", b"not multipart", 415, id="multipart-broken"),
    pytest.param(
        "multipart/form-data; boundary=xx",
        b'--xx\r\nContent-Disposition: form-data; name="Body"\r\n\r\nSTOP\r\n--xx--\r\n',
        415,
        id="multipart-well-formed",
    ),
    pytest.param("text/plain", b"Body=STOP", 415, id="text"),
    pytest.param("application/json", b'{"Body": "STOP"}', 415, id="json"),
    pytest.param(f"{FORM}; charset=latin-1", b"Body=STOP", 415, id="foreign-charset"),
    pytest.param(f"{FORM}; charset=bogus", b"Body=STOP", 415, id="unknown-charset"),
    pytest.param(FORM, b"Body=\xff\xfe&From=x", 400, id="raw-invalid-utf8"),
    pytest.param(FORM, b"Body=%FF&From=x", 400, id="escaped-invalid-utf8"),
    pytest.param(FORM, b"Body=%ED%A0%80", 400, id="escaped-surrogate"),
    pytest.param(FORM, b"Body=" + b"x" * 70_000, 413, id="oversize"),
]


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize(("content_type", "body", "status"), UNPARSEABLE)
async def test_unparseable_bodies_are_refused_before_anything_else(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    body: bytes,
    status: int,
) -> None:
    client, fake = inbound_app
    caplog.set_level(logging.INFO)
    signature = sign(SANDBOX_TOKEN, str(client.make_url(path)), {"Body": "STOP"})
    resp = await client.post(
        path,
        data=body,
        headers={"Content-Type": content_type, "X-Twilio-Signature": signature},
    )
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert "Traceback" not in await resp.text()
    assert await stored_inbound(client) == []
    assert fake.replies == []
    assert not await client.app[MESSAGE_SERVICE].suppressions.is_suppressed(USER_PHONE)
    _assert_one_warning(caplog)


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_an_oversize_body_without_a_length_is_refused(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], path: str
) -> None:
    client, _ = inbound_app

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 8192

    async with client.post(path, data=chunks(), headers={"Content-Type": FORM}) as resp:
        assert resp.status == 413
        await resp.read()
    assert await stored_inbound(client) == []


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_a_well_formed_unsigned_form_is_still_a_403(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], path: str
) -> None:
    client, _ = inbound_app
    for content_type in (FORM, f"{FORM}; charset=UTF-8"):
        async with client.post(
            path, data=b"MessageSid=SM1&Body=STOP", headers={"Content-Type": content_type}
        ) as resp:
            assert resp.status == 403
            await resp.read()


async def test_a_form_with_a_utf8_charset_is_accepted(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, _ = inbound_app
    path = "/webhooks/twilio/sms"
    params = sms_params("MET 1 café")
    url = str(client.make_url(path))
    resp = await client.post(
        path,
        data=urlencode(params).encode(),
        headers={
            "Content-Type": f"{FORM}; charset=UTF-8",
            "X-Twilio-Signature": sign(SANDBOX_TOKEN, url, params),
        },
    )
    assert resp.status == 200
    assert "MET 1 café" in await resp.text()


BAD_SMS_FIELDS = [
    pytest.param({"MessageSid": None}, "MessageSid", id="no-sid"),
    pytest.param({"MessageSid": "SM../../x"}, "MessageSid", id="sid-not-alphanumeric"),
    pytest.param({"MessageSid": "SM" + "a" * 100}, "MessageSid", id="sid-too-long"),
    pytest.param({"From": None}, "From", id="no-from"),
    pytest.param({"From": ""}, "From", id="empty-from"),
    pytest.param({"From": "+1415\x00555"}, "From", id="control-in-from"),
    pytest.param({"Body": "x" * 1601}, "Body", id="body-too-long"),
]


@pytest.mark.parametrize(("change", "field"), BAD_SMS_FIELDS)
async def test_a_signed_text_with_unusable_fields_is_a_422(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str | None],
    field: str,
) -> None:
    client, fake = inbound_app
    caplog.set_level(logging.INFO)
    params = sms_params("MET 1")
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    resp = await post_signed(client, "/webhooks/twilio/sms", params)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    assert await stored_inbound(client) == []
    assert fake.replies == []
    _assert_one_warning(caplog)


async def _sent_message(client: TestClient[Any, Any]) -> tuple[str, str]:
    created = await client.post(
        "/internal/v1/messages",
        json={"to": USER_PHONE, "body": "hi", "purpose": "nudge"},
        headers=service_headers(**{"Idempotency-Key": "k"}),
    )
    message_id = (await created.json())["id"]
    await client.app[WORKER].poll_once()
    await client.app[WORKER].drain()
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    return message_id, str(doc["provider_sid"])


BAD_CALLBACK_FIELDS = [
    pytest.param({"ErrorCode": "²"}, "ErrorCode", id="superscript-digit"),
    pytest.param({"ErrorCode": "٣٠٠٠٨"}, "ErrorCode", id="arabic-indic-digits"),
    pytest.param({"ErrorCode": "-1"}, "ErrorCode", id="negative"),
    pytest.param({"ErrorCode": "30_008"}, "ErrorCode", id="underscore"),
    pytest.param({"ErrorCode": " 30008"}, "ErrorCode", id="space"),
    pytest.param({"ErrorCode": "9" * 40}, "ErrorCode", id="huge"),
    pytest.param({"MessageStatus": None}, "MessageStatus", id="no-status"),
    pytest.param({"MessageStatus": "sent\x00"}, "MessageStatus", id="control-in-status"),
    pytest.param({"MessageSid": None}, "MessageSid", id="no-sid"),
    pytest.param({"MessageSid": "SM$ne"}, "MessageSid", id="sid-not-alphanumeric"),
]


@pytest.mark.parametrize(("change", "field"), BAD_CALLBACK_FIELDS)
async def test_a_signed_callback_with_unusable_fields_is_a_422(
    notifier_app: AppFactory,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str | None],
    field: str,
) -> None:
    client = await notifier_app(transport=RecordingTransport(), worker_enabled=False)
    message_id, sid = await _sent_message(client)
    caplog.set_level(logging.INFO)
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "21610"}
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    path = f"/webhooks/twilio/status?message_id={message_id}"
    resp = await post_signed(client, path, params)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    assert (doc["status"], doc["error_code"]) == ("sending", None)
    assert not await client.app[MESSAGE_SERVICE].suppressions.is_suppressed(USER_PHONE)
    _assert_one_warning(caplog)


async def test_an_empty_error_code_means_none(notifier_app: AppFactory) -> None:
    client = await notifier_app(transport=RecordingTransport(), worker_enabled=False)
    message_id, sid = await _sent_message(client)
    path = f"/webhooks/twilio/status?message_id={message_id}"
    params = {"MessageSid": sid, "MessageStatus": "delivered", "ErrorCode": ""}
    resp = await post_signed(client, path, params)
    assert resp.status == 200
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    assert (doc["status"], doc["error_code"]) == ("delivered", None)
