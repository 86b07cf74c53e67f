"""The notifier's internal API: idempotent create, reads, sandbox outbox, account deletion."""

from __future__ import annotations

from typing import Any

from services.notifier.keys import MESSAGE_SERVICE
from tests.notifier.conftest import AppFactory, service_headers, wait_for

TO = "+14155550101"


def body(**extra: Any) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "to": TO,
        "body": "Time to reconnect with Dana",
        "purpose": "nudge",
        **extra,
    }


async def test_create_is_idempotent(notifier_app: AppFactory) -> None:
    client = await notifier_app(worker_enabled=False)
    headers = service_headers(**{"Idempotency-Key": "nudge:u1:1"})
    first = await client.post("/internal/v1/messages", json=body(), headers=headers)
    assert first.status == 201
    created = await first.json()
    assert created["status"] == "queued"
    assert created["segments"] == 1
    assert created["encoding"] == "GSM-7"
    assert created["attempts"] == 0
    repeat = await client.post("/internal/v1/messages", json=body(), headers=headers)
    assert repeat.status == 200
    assert (await repeat.json())["id"] == created["id"]
    listed = await client.get("/internal/v1/messages?user_id=u1", headers=service_headers())
    assert len((await listed.json())["items"]) == 1
    # The same key from another caller is another message.
    other = await client.post(
        "/internal/v1/messages",
        json=body(),
        headers=service_headers("contacts", **{"Idempotency-Key": "nudge:u1:1"}),
    )
    assert other.status == 201
    assert (await other.json())["id"] != created["id"]


async def test_reused_key_with_another_body_conflicts(notifier_app: AppFactory) -> None:
    client = await notifier_app(worker_enabled=False)
    headers = service_headers(**{"Idempotency-Key": "k1"})
    assert (await client.post("/internal/v1/messages", json=body(), headers=headers)).status == 201
    resp = await client.post("/internal/v1/messages", json=body(body="other"), headers=headers)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"


async def test_create_rejects_bad_input(notifier_app: AppFactory) -> None:
    client = await notifier_app(worker_enabled=False)
    url = "/internal/v1/messages"
    no_key = await client.post(url, json=body(), headers=service_headers())
    assert no_key.status == 422
    assert (await no_key.json())["errors"][0]["field"] == "Idempotency-Key"
    headers = service_headers(**{"Idempotency-Key": "k"})
    for bad in (
        body(to="4155550101"),
        body(body=""),
        body(purpose="spam"),
        body(not_before="2026-01-01T10:00:00"),
        body(extra_field=1),
        body(not_before="2026-01-02T10:00:00Z", expires_at="2026-01-01T10:00:00Z"),
        body(body="x" * 1601),
    ):
        resp = await client.post(url, json=bad, headers=headers)
        assert resp.status == 422, bad
        assert resp.content_type == "application/problem+json"
    assert (await client.post(url, data="nope", headers=headers)).status == 415
    assert (await client.post(url, json=body())).status == 401
    listed = await client.get(url, headers=service_headers())
    assert (await listed.json())["items"] == []


async def test_get_and_list(notifier_app: AppFactory) -> None:
    client = await notifier_app(worker_enabled=False)
    for i in range(3):
        await client.post(
            "/internal/v1/messages",
            json=body(user_id=f"u{i % 2}", body="Caf\u00e9 \u2019", purpose="system"),
            headers=service_headers(**{"Idempotency-Key": f"k{i}"}),
        )
    resp = await client.get(
        "/internal/v1/messages?user_id=u0&status=queued", headers=service_headers()
    )
    items = (await resp.json())["items"]
    assert len(items) == 2
    assert items[0]["encoding"] == "UCS-2"
    one = await client.get(f"/internal/v1/messages/{items[0]['id']}", headers=service_headers())
    assert (await one.json())["id"] == items[0]["id"]
    missing = await client.get("/internal/v1/messages/msg_nope", headers=service_headers())
    assert missing.status == 404
    bad = await client.get("/internal/v1/messages?status=lost", headers=service_headers())
    assert bad.status == 422


async def test_sandbox_sends_to_the_outbox(notifier_app: AppFactory) -> None:
    client = await notifier_app()
    resp = await client.post(
        "/internal/v1/messages",
        json=body(),
        headers=service_headers(**{"Idempotency-Key": "k"}),
    )
    message_id = (await resp.json())["id"]

    async def delivered() -> bool:
        got = await client.get(f"/internal/v1/messages/{message_id}", headers=service_headers())
        return (await got.json())["status"] == "delivered"

    await wait_for(delivered)
    outbox = await client.get(
        f"/internal/v1/sandbox/outbox?to={TO.replace('+', '%2B')}", headers=service_headers()
    )
    items = (await outbox.json())["items"]
    assert [m["id"] for m in items] == [message_id]
    assert items[0]["provider_sid"].startswith("SM")
    assert items[0]["attempts"] == 1


async def test_sandbox_endpoints_absent_with_twilio(notifier_app: AppFactory) -> None:
    client = await notifier_app(
        worker_enabled=False,
        sms_transport="twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="secret-token",
        twilio_from_number="+15005550006",
    )
    resp = await client.get("/internal/v1/sandbox/outbox", headers=service_headers())
    assert resp.status == 404


async def test_delete_user(notifier_app: AppFactory) -> None:
    client = await notifier_app(worker_enabled=False)
    for i, user in enumerate(["u1", "u1", "u2"]):
        await client.post(
            "/internal/v1/messages",
            json=body(user_id=user),
            headers=service_headers(**{"Idempotency-Key": f"k{i}"}),
        )
    assert (await client.delete("/internal/v1/users/u1")).status == 401
    resp = await client.delete("/internal/v1/users/u1", headers=service_headers())
    assert resp.status == 204
    left = await client.app[MESSAGE_SERVICE].messages.recent(user_id=None, status=None, limit=10)
    assert [m["user_id"] for m in left] == ["u2"]
