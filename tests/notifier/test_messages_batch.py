"""``POST /internal/v1/messages:batch``: many messages in one call, each with its own key."""

from __future__ import annotations

import io
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from services.notifier.keys import MESSAGE_SERVICE
from services.notifier.models import MAX_BATCH_ITEMS
from shared.mongo import INDEXES_READY
from tests.notifier.conftest import AppFactory, service_headers, wait_for

URL = "/internal/v1/messages:batch"
TO = "+14155550101"


async def started(
    notifier_app: AppFactory, **settings: Any
) -> TestClient[web.Request, web.Application]:
    """The app once its indexes exist (mongo-java-server fails writes that race createIndexes)."""
    client = await notifier_app(**settings)
    await client.app[INDEXES_READY].wait()
    return client


def as_json(body: Any) -> io.BytesIO:
    """A large body as a stream (aiohttp warns about sending large raw bytes)."""
    return io.BytesIO(json.dumps(body).encode())


def json_headers() -> dict[str, str]:
    return service_headers(**{"Content-Type": "application/json"})


def item(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "user_id": "u1",
        "to": TO,
        "body": f"Time to reconnect with Dana ({key})",
        "purpose": "nudge",
        **extra,
    }


async def test_batch_stores_each_item_once_and_the_worker_sends_them(
    notifier_app: AppFactory,
) -> None:
    client = await started(notifier_app)
    resp = await client.post(
        URL,
        json={"items": [item(f"k{n}", user_id=f"u{n}") for n in range(3)]},
        headers=service_headers(),
    )
    assert resp.status == 200
    results = (await resp.json())["items"]
    assert [r["idempotency_key"] for r in results] == ["k0", "k1", "k2"]
    assert [r["status"] for r in results] == [201, 201, 201]
    assert [r["message"]["user_id"] for r in results] == ["u0", "u1", "u2"]
    assert all(r["message"]["status"] == "queued" for r in results)
    assert "problem" not in results[0]
    ids = [r["message"]["id"] for r in results]

    async def delivered() -> bool:
        for message_id in ids:
            got = await client.get(f"/internal/v1/messages/{message_id}", headers=service_headers())
            if (await got.json())["status"] != "delivered":
                return False
        return True

    await wait_for(delivered)


async def test_keys_repeated_within_and_across_batches_replay_the_stored_message(
    notifier_app: AppFactory,
) -> None:
    client = await started(notifier_app, worker_enabled=False)
    # The single endpoint and the batch share the key space of a caller.
    single = await client.post(
        "/internal/v1/messages",
        json={k: v for k, v in item("k0").items() if k != "idempotency_key"},
        headers=service_headers(**{"Idempotency-Key": "k0"}),
    )
    assert single.status == 201
    first_id = (await single.json())["id"]
    resp = await client.post(
        URL,
        json={"items": [item("k0"), item("k1"), item("k1"), item("k1", body="another text")]},
        headers=service_headers(),
    )
    results = (await resp.json())["items"]
    assert [r["status"] for r in results] == [200, 201, 200, 409]
    assert results[0]["message"]["id"] == first_id
    assert results[1]["message"]["id"] == results[2]["message"]["id"]
    assert results[3]["problem"]["status"] == 409
    assert results[3]["problem"]["type"].endswith("/conflict")
    assert "message" not in results[3]
    again = await client.post(URL, json={"items": [item("k1")]}, headers=service_headers())
    replay = (await again.json())["items"][0]
    assert replay["status"] == 200
    assert replay["message"]["id"] == results[1]["message"]["id"]
    # The same key from another caller is another message.
    other = await client.post(
        URL, json={"items": [item("k1")]}, headers=service_headers("contacts")
    )
    assert (await other.json())["items"][0]["status"] == 201
    stored = await client.app[MESSAGE_SERVICE].messages.recent(user_id="u1", status=None, limit=10)
    assert len(stored) == 3


async def test_opted_out_numbers_are_stored_suppressed(notifier_app: AppFactory) -> None:
    client = await started(notifier_app, worker_enabled=False)
    service = client.app[MESSAGE_SERVICE]
    await service.suppressions.record(
        "+14155550199", opted_out=True, source="test", keyword="STOP", at=service._clock.now()
    )
    resp = await client.post(
        URL, json={"items": [item("a"), item("b", to="+14155550199")]}, headers=service_headers()
    )
    results = (await resp.json())["items"]
    assert [r["message"]["status"] for r in results] == ["queued", "suppressed"]
    assert results[1]["message"]["error_code"] == 21610


async def test_bad_items_refuse_the_whole_batch(notifier_app: AppFactory) -> None:
    client = await started(notifier_app, worker_enabled=False)
    for bad, field in (
        (item("k", to="4155550101"), "items.1.to"),
        (item("k", body=""), "items.1.body"),
        (item("k", purpose="spam"), "items.1.purpose"),
        (item("k", extra=1), "items.1.extra"),
        (item("k", idempotency_key=""), "items.1.idempotency_key"),
        (item("k", idempotency_key="has space"), "items.1.idempotency_key"),
        ({k: v for k, v in item("k").items() if k != "idempotency_key"}, "items.1.idempotency_key"),
        (
            item("k", not_before="2026-01-02T10:00:00Z", expires_at="2026-01-01T10:00:00Z"),
            "items.1.expires_at",
        ),
    ):
        resp = await client.post(URL, json={"items": [item("ok"), bad]}, headers=service_headers())
        assert resp.status == 422, bad
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
        assert field in [e["field"] for e in problem["errors"]], (bad, problem)
    for body in ({"items": []}, {}, {"items": [item("ok")], "more": 1}, [item("ok")]):
        resp = await client.post(URL, json=body, headers=service_headers())
        assert resp.status == 422, body
    assert (await client.post(URL, data="nope", headers=service_headers())).status == 415
    stored = await client.app[MESSAGE_SERVICE].messages.recent(user_id=None, status=None, limit=10)
    assert stored == []


async def test_oversize_batches_and_missing_credentials_are_refused(
    notifier_app: AppFactory,
) -> None:
    client = await started(notifier_app, worker_enabled=False)
    too_many = {"items": [item(f"k{n}") for n in range(MAX_BATCH_ITEMS + 1)]}
    resp = await client.post(URL, json=too_many, headers=service_headers())
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "items"
    # The most items, each at the longest body, still fit the byte limit.
    longest = {"items": [item(f"k{n}", body="\u20ac" * 1600) for n in range(MAX_BATCH_ITEMS)]}
    resp = await client.post(URL, data=as_json(longest), headers=json_headers())
    assert resp.status == 200, await resp.text()
    assert len((await resp.json())["items"]) == MAX_BATCH_ITEMS
    huge = {"items": [item("k", body="x" * 2_000_000)]}
    resp = await client.post(URL, data=as_json(huge), headers=json_headers())
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
    unauthenticated = await client.post(URL, json={"items": [item("z")]})
    assert unauthenticated.status == 401
    user_token = await client.post(
        URL, json={"items": [item("z")]}, headers={"Authorization": "Bearer not-a-service-token"}
    )
    assert user_token.status == 401


async def test_the_batch_is_in_the_openapi_document(notifier_app: AppFactory) -> None:
    client = await started(notifier_app, worker_enabled=False)
    document = await (await client.get("/openapi.json")).json()
    operation = document["paths"]["/internal/v1/messages:batch"]["post"]
    assert operation["security"] == [{"serviceToken": []}]
    schema = document["components"]["schemas"]["MessageBatchIn"]
    assert schema["properties"]["items"]["maxItems"] == MAX_BATCH_ITEMS
