"""Sign-in code messages: the code is kept while it is useful; deletion forgets the phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient, TestServer

from services.notifier.keys import INBOUND_SERVICE, MESSAGE_SERVICE, WORKER
from services.notifier.repository import INBOUND, MESSAGES
from shared.clock import ControllableClock
from shared.web.keys import DB
from tests.notifier.conftest import AppFactory, FakeUpstreams, RecordingTransport, service_headers
from tests.notifier.test_webhooks import post_signed, sms_params

PHONE = "+14155550123"
OTHER = "+14155550777"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CODE = "428133"
CODE_TEXT = f"Your touchbase code is {CODE}. It expires in 5 min. Never share it."


async def post(client: TestClient[Any, Any], key: str, caller: str = "contacts", **msg: Any) -> Any:
    resp = await client.post(
        "/internal/v1/messages",
        json=msg,
        headers=service_headers(caller, **{"Idempotency-Key": key}),
    )
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def sign_in_code(
    client: TestClient[Any, Any], key: str = "otp:1", to: str = PHONE, **extra: Any
) -> dict[str, Any]:
    msg = {"to": to, "body": CODE_TEXT, "purpose": "otp", **extra}
    result: dict[str, Any] = await post(client, key, **msg)
    return result


async def run_worker(client: TestClient[Any, Any]) -> None:
    await client.app[WORKER].poll_once()
    await client.app[WORKER].drain()


async def listed(client: TestClient[Any, Any], path: str) -> list[dict[str, Any]]:
    resp = await client.get(path, headers=service_headers())
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def everything_stored(client: TestClient[Any, Any]) -> str:
    """Every stored message and inbound text, as one string to search."""
    docs = await client.app[DB][MESSAGES].find().to_list()
    docs += await client.app[DB][INBOUND].find().to_list()
    return repr(docs)


# -- deletion --------------------------------------------------------------------------------


async def test_account_deletion_forgets_what_was_sent_to_and_from_the_phone(
    notifier_app: AppFactory, upstreams: tuple[FakeUpstreams, TestServer]
) -> None:
    fake, server = upstreams
    url = str(server.make_url("")).rstrip("/")
    client = await notifier_app(contacts_url=url, reminders_url=url, worker_enabled=False)
    # The first sign-in code goes out before the account exists (no user_id), and so does the
    # answer to a text from the number while it was unknown.
    await sign_in_code(client, "otp:first")
    await post(client, "inbound-reply:x", "notifier", to=PHONE, body="Who?", purpose="reply")
    assert (
        await post_signed(client, "/webhooks/twilio/sms", sms_params("hi", PHONE))
    ).status == 200
    fake.users[PHONE] = "u1"
    await sign_in_code(client, "otp:again", user_id="u1")
    await post(client, "n1", "reminders", user_id="u1", to=PHONE, body="nudge", purpose="nudge")
    # Someone else's data stays.
    await sign_in_code(client, "otp:other", to=OTHER)
    await post(client, "n2", "reminders", user_id="u2", to=OTHER, body="nudge", purpose="nudge")
    assert (
        await post_signed(client, "/webhooks/twilio/sms", sms_params("yo", OTHER))
    ).status == 200

    bad = await client.delete("/internal/v1/users/u1?phone=nope", headers=service_headers())
    assert bad.status == 422
    resp = await client.delete(
        f"/internal/v1/users/u1?phone={quote(PHONE)}", headers=service_headers("contacts")
    )
    assert resp.status == 204

    left = await client.app[MESSAGE_SERVICE].messages.recent(user_id=None, status=None, limit=50)
    assert sorted((m["to"], m["purpose"]) for m in left) == [(OTHER, "nudge"), (OTHER, "otp")]
    inbound = await client.app[DB][INBOUND].find().to_list()
    assert [r["from"] for r in inbound] == [OTHER]
    assert PHONE not in await everything_stored(client)
    # The opt-out list is not personal data to erase: an opt-out outlives the account.
    again = await client.delete("/internal/v1/users/u1", headers=service_headers("contacts"))
    assert again.status == 204


# -- the code is kept only while it is useful ----------------------------------------------


async def test_the_code_is_dropped_once_the_provider_has_it(notifier_app: AppFactory) -> None:
    transport = RecordingTransport(name="twilio")
    client = await notifier_app(transport=transport, worker_enabled=False)
    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    otp = await sign_in_code(client, expires_at=expires)
    nudge = await post(
        client, "n1", "reminders", user_id="u1", to=PHONE, body="Call Dana", purpose="nudge"
    )
    await run_worker(client)
    assert sorted(body for _, _, body in transport.sends) == sorted([CODE_TEXT, "Call Dana"])

    got = await client.get(f"/internal/v1/messages/{otp['id']}", headers=service_headers())
    shown = await got.json()
    assert CODE not in shown["body"]
    # What delivery tracking needs is kept.
    assert (shown["to"], shown["purpose"], shown["status"]) == (PHONE, "otp", "sending")
    assert shown["provider_sid"].startswith("SM")
    assert shown["segments"] == 1
    assert CODE not in repr(await listed(client, "/internal/v1/messages"))
    assert CODE not in await everything_stored(client)
    # Other messages keep their text.
    assert (await client.app[MESSAGE_SERVICE].get(nudge["id"]))["body"] == "Call Dana"
    # A repeat of the request (contacts retrying) is still answered with the message, once.
    repeat = await client.post(
        "/internal/v1/messages",
        json={"to": PHONE, "body": CODE_TEXT, "purpose": "otp", "expires_at": expires},
        headers=service_headers("contacts", **{"Idempotency-Key": "otp:1"}),
    )
    assert repeat.status == 200
    assert (await repeat.json())["id"] == otp["id"]
    await run_worker(client)
    assert len(transport.sends) == 2


async def test_the_sandbox_outbox_shows_the_code_until_it_expires(
    notifier_app: AppFactory,
) -> None:
    clock = ControllableClock(START)
    client = await notifier_app(clock=clock, worker_enabled=False)
    otp = await sign_in_code(client, expires_at=(START + timedelta(minutes=5)).isoformat())
    await run_worker(client)
    outbox = await listed(client, "/internal/v1/sandbox/outbox")
    assert [m["id"] for m in outbox] == [otp["id"]]
    assert CODE in outbox[0]["body"]

    clock.advance(timedelta(minutes=4))
    await client.app[WORKER].maintain_once()
    assert CODE in (await listed(client, "/internal/v1/sandbox/outbox"))[0]["body"]

    clock.advance(timedelta(minutes=1, seconds=1))
    await client.app[WORKER].maintain_once()
    outbox = await listed(client, "/internal/v1/sandbox/outbox")
    assert [(m["id"], m["status"]) for m in outbox] == [(otp["id"], "delivered")]
    assert CODE not in outbox[0]["body"]
    assert CODE not in await everything_stored(client)


async def test_a_code_never_sent_loses_it_when_it_expires_and_is_never_sent_after(
    notifier_app: AppFactory,
) -> None:
    clock = ControllableClock(START)
    transport = RecordingTransport(name="twilio")
    client = await notifier_app(clock=clock, transport=transport, worker_enabled=False)
    late = await sign_in_code(
        client,
        "otp:late",
        not_before=(START + timedelta(minutes=3)).isoformat(),
        expires_at=(START + timedelta(minutes=5)).isoformat(),
    )
    # Without an expiry a code is kept at most an hour.
    endless = await sign_in_code(
        client, "otp:endless", not_before=(START + timedelta(hours=2)).isoformat()
    )
    clock.advance(timedelta(minutes=30))
    await client.app[WORKER].maintain_once()
    assert CODE not in (await client.app[MESSAGE_SERVICE].get(late["id"]))["body"]
    assert CODE in (await client.app[MESSAGE_SERVICE].get(endless["id"]))["body"]
    clock.advance(timedelta(hours=2))
    await client.app[WORKER].maintain_once()
    assert CODE not in await everything_stored(client)
    await run_worker(client)
    assert transport.sends == []
    for message_id in (late["id"], endless["id"]):
        assert (await client.app[MESSAGE_SERVICE].get(message_id))["status"] == "expired"


async def test_a_failed_code_loses_it_at_the_next_maintenance(notifier_app: AppFactory) -> None:
    transport = RecordingTransport(name="twilio")
    client = await notifier_app(transport=transport, worker_enabled=False)
    otp = await sign_in_code(client)
    await client.app[INBOUND_SERVICE].suppressions.record(
        PHONE, opted_out=True, source="sms", keyword="STOP", at=datetime.now(UTC)
    )
    await run_worker(client)
    assert (await client.app[MESSAGE_SERVICE].get(otp["id"]))["status"] == "suppressed"
    await client.app[WORKER].maintain_once()
    assert CODE not in await everything_stored(client)
    assert re.search(r"\d{6}", (await client.app[MESSAGE_SERVICE].get(otp["id"]))["body"]) is None
