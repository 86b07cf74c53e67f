"""Inbound SMS and status webhooks: signatures, dedupe, compliance, replies, deferral, limits."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from services.notifier.keys import INBOUND_SERVICE, MESSAGE_SERVICE, WORKER
from services.notifier.repository import INBOUND
from shared.web.keys import DB
from tests.notifier.conftest import (
    SANDBOX_TOKEN,
    AppFactory,
    FakeUpstreams,
    RecordingTransport,
    service_headers,
    sign,
)

USER_PHONE = "+14155550123"
STRANGER = "+14155550999"
PUBLIC = "https://sms.example.com/tb"


def sms_params(text: str, phone: str = USER_PHONE, sid: str | None = None) -> dict[str, str]:
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": "+15005550006",
        "Body": text,
        "NumMedia": "0",
    }


async def post_signed(
    client: TestClient[Any, Any],
    path: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    token: str = SANDBOX_TOKEN,
    signature: str | None = None,
) -> ClientResponse:
    url = signed_url or str(client.make_url(path))
    headers = {"X-Twilio-Signature": signature or sign(token, url, params)}
    return await client.post(path, data=params, headers=headers)


def reply_of(xml: str) -> str | None:
    if "<Message>" not in xml:
        return None
    return xml.split("<Message>")[1].split("</Message>")[0].replace("&apos;", "'")


@pytest.fixture
async def inbound_app(
    notifier_app: AppFactory, upstreams: tuple[FakeUpstreams, TestServer]
) -> tuple[TestClient[Any, Any], FakeUpstreams]:
    fake, server = upstreams
    fake.users[USER_PHONE] = "u1"
    url = str(server.make_url("")).rstrip("/")
    client = await notifier_app(
        contacts_url=url, reminders_url=url, worker_enabled=False, reply_timeout_s=1
    )
    return client, fake


async def stored_inbound(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    return await client.app[DB][INBOUND].find().to_list()


async def test_bad_signatures_are_refused_and_nothing_stored(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    path = "/webhooks/twilio/sms"
    params = sms_params("MET 1 coffee")
    assert (await client.post(path, data=params)).status == 403
    assert (await post_signed(client, path, params, signature="bm90IGl0")).status == 403
    assert (await post_signed(client, path, params, token="another-token")).status == 403
    tampered = await client.post(
        path,
        data={**params, "Body": "STOP"},
        headers={"X-Twilio-Signature": sign(SANDBOX_TOKEN, str(client.make_url(path)), params)},
    )
    assert tampered.status == 403
    status = await post_signed(
        client,
        "/webhooks/twilio/status",
        {"MessageSid": "SMx", "MessageStatus": "sent"},
        token="wrong",
    )
    assert status.status == 403
    assert await stored_inbound(client) == []
    assert fake.replies == []
    ok = await post_signed(client, path, params)
    assert ok.status == 200
    assert ok.content_type == "text/xml"
    metrics = await (await client.get("/metrics")).text()
    assert "touchbase_sms_webhook_rejected_total 5.0" in metrics
    assert 'touchbase_sms_inbound_total{handling="answered"} 1.0' in metrics


async def test_signature_is_checked_against_the_public_url_behind_a_proxy(
    notifier_app: AppFactory, upstreams: tuple[FakeUpstreams, TestServer]
) -> None:
    fake, server = upstreams
    fake.users[USER_PHONE] = "u1"
    url = str(server.make_url("")).rstrip("/")
    client = await notifier_app(
        contacts_url=url, reminders_url=url, worker_enabled=False, public_base_url=PUBLIC
    )
    path = "/webhooks/twilio/sms"
    # Twilio signs the URL it called (the proxy's), not the one the service listens on.
    local = await post_signed(client, path, sms_params("hi"))
    assert local.status == 403
    public = await post_signed(client, path, sms_params("hi"), signed_url=PUBLIC + path)
    assert public.status == 200
    assert reply_of(await public.text()) == "Logged: hi (#1)"
    assert len(await stored_inbound(client)) == 1


async def test_known_user_reply_and_duplicate_webhook(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    params = sms_params("MET 1 coffee")
    first = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await first.text()) == "Logged: MET 1 coffee (#1)"
    again = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await again.text()) == "Logged: MET 1 coffee (#1)"
    assert len(fake.replies) == 1
    assert fake.replies[0] == {
        "user_id": "u1",
        "from": USER_PHONE,
        "text": "MET 1 coffee",
        "message_sid": params["MessageSid"],
    }
    records = await stored_inbound(client)
    assert [(r["state"], r["user_id"]) for r in records] == [("answered", "u1")]


async def test_unknown_number_gets_one_polite_line(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    resp = await post_signed(client, "/webhooks/twilio/sms", sms_params("hello?", STRANGER))
    reply = reply_of(await resp.text())
    assert reply is not None
    assert "recognise this number" in reply
    assert "\n" not in reply
    assert fake.replies == []


@pytest.mark.parametrize(
    "word",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOPALL",
        "UNSUBSCRIBE",
        "cancel",
        "END",
        "Quit",
        "REVOKE",
        "OPTOUT",
    ],
)
async def test_every_opt_out_keyword(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], word: str
) -> None:
    client, fake = inbound_app
    resp = await post_signed(client, "/webhooks/twilio/sms", sms_params(word))
    assert "unsubscribed" in (reply_of(await resp.text()) or "")
    suppressions = client.app[MESSAGE_SERVICE].suppressions
    assert await suppressions.is_suppressed(USER_PHONE)
    events = await suppressions.events(USER_PHONE)
    assert [(e["action"], e["source"], e["keyword"]) for e in events] == [
        ("opt_out", "sms", word.strip(" .").upper())
    ]
    assert events[0]["at"] is not None
    assert fake.replies == []
    # From now on nothing is sent: replies are dropped, new messages are suppressed.
    after = await post_signed(client, "/webhooks/twilio/sms", sms_params("MET 1"))
    assert reply_of(await after.text()) is None
    assert fake.replies == []
    created = await client.post(
        "/internal/v1/messages",
        json={"to": USER_PHONE, "body": "nudge", "purpose": "nudge"},
        headers=service_headers(**{"Idempotency-Key": "after-stop"}),
    )
    assert (await created.json())["status"] == "suppressed"


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
async def test_every_opt_in_keyword(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], word: str
) -> None:
    client, _ = inbound_app
    await post_signed(client, "/webhooks/twilio/sms", sms_params("STOP"))
    resp = await post_signed(client, "/webhooks/twilio/sms", sms_params(word))
    assert "resubscribed" in (reply_of(await resp.text()) or "")
    suppressions = client.app[MESSAGE_SERVICE].suppressions
    assert not await suppressions.is_suppressed(USER_PHONE)
    actions = [e["action"] for e in await suppressions.events(USER_PHONE)]
    assert actions == ["opt_out", "opt_in"]


@pytest.mark.parametrize("word", ["HELP", "info", "Help?"])
async def test_every_help_keyword(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], word: str
) -> None:
    client, fake = inbound_app
    resp = await post_signed(client, "/webhooks/twilio/sms", sms_params(word))
    reply = reply_of(await resp.text()) or ""
    assert reply.startswith("touchbase:")
    assert "STOP" in reply
    assert "support@touchbase.dev" in reply
    assert fake.replies == []


async def test_keywords_must_be_the_whole_message(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, _fake = inbound_app
    resp = await post_signed(client, "/webhooks/twilio/sms", sms_params("stop by friday"))
    assert reply_of(await resp.text()) == "Logged: stop by friday (#1)"
    assert not await client.app[MESSAGE_SERVICE].suppressions.is_suppressed(USER_PHONE)


@pytest.mark.parametrize("problem", ["slow", "down", "contacts_down"])
async def test_slow_or_down_reminders_is_acknowledged_and_answered_later(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams], problem: str
) -> None:
    client, fake = inbound_app
    if problem == "slow":
        fake.reply_delay_s = 2.5
    elif problem == "down":
        fake.reminders_status = 503
    else:
        fake.contacts_status = 503
    params = sms_params("MET 2 lunch")
    resp = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await resp.text()) == "Got it. We'll text you back shortly."
    # A Twilio retry of the same webhook gets the same acknowledgement.
    again = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await again.text()) == "Got it. We'll text you back shortly."
    fake.reply_delay_s, fake.reminders_status, fake.contacts_status = 0.0, 200, None
    record = await client.app[INBOUND_SERVICE].inbound.get(params["MessageSid"])
    assert record is not None
    assert record["state"] == "deferred"
    await client.app[INBOUND_SERVICE].inbound.update(
        params["MessageSid"], {"next_try_at": record["received_at"]}
    )
    assert await client.app[WORKER].answer_deferred_once() == 1
    later = await client.app[MESSAGE_SERVICE].messages.recent(
        user_id="u1", status="queued", limit=5
    )
    assert [(m["to"], m["purpose"], m["body"]) for m in later] == [
        (USER_PHONE, "reply", "Logged: MET 2 lunch (#1)")
    ]
    # Running the retry again does not queue a second answer.
    assert await client.app[WORKER].answer_deferred_once() == 0


async def test_inbound_rate_limit_per_number(
    notifier_app: AppFactory, upstreams: tuple[FakeUpstreams, TestServer]
) -> None:
    fake, server = upstreams
    fake.users[USER_PHONE] = "u1"
    fake.users["+14155550124"] = "u2"
    url = str(server.make_url("")).rstrip("/")
    client = await notifier_app(
        contacts_url=url,
        reminders_url=url,
        worker_enabled=False,
        inbound_rate_per_minute=1,
        inbound_burst=2,
    )
    replies = []
    for i in range(4):
        resp = await post_signed(client, "/webhooks/twilio/sms", sms_params(f"note {i}"))
        replies.append(reply_of(await resp.text()))
    assert replies[:2] == ["Logged: note 0 (#1)", "Logged: note 1 (#2)"]
    assert replies[2:] == [None, None]
    # Compliance keywords are honoured even over the limit; other numbers are unaffected.
    stop = await post_signed(client, "/webhooks/twilio/sms", sms_params("STOP"))
    assert "unsubscribed" in (reply_of(await stop.text()) or "")
    other = await post_signed(client, "/webhooks/twilio/sms", sms_params("hi", "+14155550124"))
    assert reply_of(await other.text()) == "Logged: hi (#3)"


async def test_status_callbacks_only_move_forward(notifier_app: AppFactory) -> None:
    transport = RecordingTransport()
    client = await notifier_app(transport=transport, worker_enabled=False, public_base_url=PUBLIC)
    created = await client.post(
        "/internal/v1/messages",
        json={"user_id": "u1", "to": USER_PHONE, "body": "hi", "purpose": "nudge"},
        headers=service_headers(**{"Idempotency-Key": "k"}),
    )
    message_id = (await created.json())["id"]
    await client.app[WORKER].poll_once()
    await client.app[WORKER].drain()
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    sid = doc["provider_sid"]
    path = f"/webhooks/twilio/status?message_id={message_id}"

    async def callback(status: str, **extra: str) -> str:
        params = {
            "MessageSid": sid,
            "MessageStatus": status,
            "AccountSid": "AC" + "0" * 32,
            **extra,
        }
        resp = await post_signed(client, path, params, signed_url=PUBLIC + path)
        assert resp.status == 200
        got = await client.get(f"/internal/v1/messages/{message_id}", headers=service_headers())
        return str((await got.json())["status"])

    assert await callback("sent") == "sent"
    assert await callback("delivered") == "delivered"
    assert await callback("sent") == "delivered"  # late
    assert await callback("delivered") == "delivered"  # duplicate
    assert await callback("failed", ErrorCode="30008") == "delivered"
    assert await callback("queued") == "delivered"
    bad = await post_signed(
        client,
        path,
        {"MessageSid": sid, "MessageStatus": "undelivered"},
        signed_url=PUBLIC + "/elsewhere",
    )
    assert bad.status == 403
    assert (await client.app[MESSAGE_SERVICE].get(message_id))["status"] == "delivered"


async def test_status_callback_by_sid_and_error_codes(notifier_app: AppFactory) -> None:
    transport = RecordingTransport()
    client = await notifier_app(transport=transport, worker_enabled=False)
    created = await client.post(
        "/internal/v1/messages",
        json={"to": USER_PHONE, "body": "hi", "purpose": "system"},
        headers=service_headers(**{"Idempotency-Key": "k"}),
    )
    message_id = (await created.json())["id"]
    await client.app[WORKER].poll_once()
    await client.app[WORKER].drain()
    sid = (await client.app[MESSAGE_SERVICE].get(message_id))["provider_sid"]
    path = "/webhooks/twilio/status"
    resp = await post_signed(
        client, path, {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "21610"}
    )
    assert resp.status == 200
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    assert (doc["status"], doc["error_code"]) == ("undelivered", 21610)
    assert await client.app[MESSAGE_SERVICE].suppressions.is_suppressed(USER_PHONE)
    unknown = await post_signed(client, path, {"MessageSid": "SMnope", "MessageStatus": "sent"})
    assert unknown.status == 200
    invalid = await post_signed(client, path, {"MessageStatus": "sent"})
    assert invalid.status == 422


async def test_sandbox_inbound_goes_through_the_signed_path(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    url = "/internal/v1/sandbox/inbound"
    assert (await client.post(url, json={"from": USER_PHONE, "text": "hi"})).status == 401
    resp = await client.post(
        url, json={"from": USER_PHONE, "text": "MET 1"}, headers=service_headers("cli")
    )
    body = await resp.json()
    assert body["reply"] == "Logged: MET 1 (#1)"
    again = await client.post(
        url,
        json={"from": USER_PHONE, "text": "MET 1", "message_sid": body["message_sid"]},
        headers=service_headers("cli"),
    )
    assert (await again.json())["reply"] == "Logged: MET 1 (#1)"
    assert len(fake.replies) == 1
    stop = await client.post(
        url, json={"from": USER_PHONE, "text": "STOP"}, headers=service_headers("cli")
    )
    assert "unsubscribed" in (await stop.json())["reply"]
    bad = await client.post(url, json={"from": "nope", "text": "x"}, headers=service_headers())
    assert bad.status == 422


async def test_a_failed_first_handling_is_redone_on_twilio_retry(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    service = client.app[INBOUND_SERVICE]
    real = service._lookup_user
    crashes = [RuntimeError("boom")]

    async def flaky(phone: str) -> str | None:
        if crashes:
            raise crashes.pop()
        return await real(phone)

    service._lookup_user = flaky  # type: ignore[method-assign]
    params = sms_params("MET 3")
    first = await post_signed(client, "/webhooks/twilio/sms", params)
    assert first.status == 500
    retry = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await retry.text()) == "Logged: MET 3 (#1)"
    assert len(fake.replies) == 1


async def test_unknown_number_answered_later_when_contacts_was_down(
    inbound_app: tuple[TestClient[Any, Any], FakeUpstreams],
) -> None:
    client, fake = inbound_app
    fake.contacts_status = 503
    params = sms_params("hello", STRANGER)
    resp = await post_signed(client, "/webhooks/twilio/sms", params)
    assert reply_of(await resp.text()) == "Got it. We'll text you back shortly."
    fake.contacts_status = None
    record = await client.app[INBOUND_SERVICE].inbound.get(params["MessageSid"])
    assert record is not None
    await client.app[INBOUND_SERVICE].inbound.update(
        params["MessageSid"], {"next_try_at": record["received_at"]}
    )
    assert await client.app[WORKER].answer_deferred_once() == 1
    later = await client.app[MESSAGE_SERVICE].messages.recent(user_id=None, status=None, limit=5)
    assert len(later) == 1
    assert later[0]["to"] == STRANGER
    assert "recognise this number" in later[0]["body"]
    assert fake.replies == []
