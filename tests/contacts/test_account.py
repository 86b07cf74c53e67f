"""Stats, export and account deletion across services; the OpenAPI document."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from services.contacts.repository import IDEMPOTENCY
from services.contacts.routes import ROUTES
from shared.web.keys import DB
from tests.contacts.conftest import Client, FakeUpstream, bearer, sign_in
from tests.contacts.test_contacts import create
from tests.contacts.test_internal import read_feed


async def test_stats(client: Client, alice: dict[str, Any]) -> None:
    dana = await create(client, alice, name="Dana Lee", tier="A")
    await create(client, alice, name="Sam Park")
    await client.post(
        f"/v1/contacts/{dana['id']}/interactions", json={"kind": "coffee"}, headers=bearer(alice)
    )
    stats = await (await client.get("/v1/stats", headers=bearer(alice))).json()
    assert stats["contacts"]["total"] == 2
    assert stats["contacts"]["by_tier"] == {"A": 1, "none": 1}
    assert stats["contacts"]["overdue"] == 0
    assert stats["interactions"] == {
        "total": 1,
        "last_30_days": 1,
        "by_kind": {"coffee": 1},
        "one_to_ones_without_next_action": 0,
    }


async def test_export(client: Client, alice: dict[str, Any], reminders: FakeUpstream) -> None:
    dana = await create(
        client, alice, name="Dana Lee", notes="private", phones=[{"number": "+14155550199"}]
    )
    resp = await client.get("/v1/me/export", headers=bearer(alice))
    assert resp.status == 200
    export = await resp.json()
    assert export["user"]["id"] == alice["user"]["id"]
    assert [c["id"] for c in export["contacts"]] == [dana["id"]]
    assert export["contacts"][0]["notes"] == "private"
    assert export["contacts"][0]["phones"] == [{"number": "+14155550199", "label": None}]
    assert export["reminders"]["user_id"] == alice["user"]["id"]


async def test_account_deletion(
    client: Client,
    alice: dict[str, Any],
    bob: dict[str, Any],
    notifier: FakeUpstream,
    reminders: FakeUpstream,
) -> None:
    uid = alice["user"]["id"]
    dana = await create(client, alice, name="Dana Lee")
    bobs = await create(client, bob, name="Bob's contact")
    await client.post(
        f"/v1/contacts/{dana['id']}/interactions", json={"kind": "call"}, headers=bearer(alice)
    )

    reminders.fail_with = 400
    resp = await client.delete("/v1/me", headers=bearer(alice))
    assert resp.status == 502
    assert (await client.get("/v1/me", headers=bearer(alice))).status == 200

    reminders.fail_with = None
    resp = await client.delete("/v1/me", headers=bearer(alice))
    assert resp.status == 204
    assert reminders.deleted_users == [uid]
    assert notifier.deleted_users == [uid]
    assert (await client.get("/v1/me", headers=bearer(alice))).status == 404
    assert (await client.get(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).status == 404
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert resp.status == 401
    assert (await client.get(f"/v1/contacts/{bobs['id']}", headers=bearer(bob))).status == 200
    feed = await read_feed(client)
    last_user_change = [c for c in feed["changes"] if c["kind"] == "user"][-1]
    assert last_user_change["entity_id"] == uid
    assert last_user_change["op"] == "delete"
    assert last_user_change["entity"] is None

    # Signing in again makes a fresh, empty account.
    again = await sign_in(client, notifier, "+14155550123")
    assert again["user"]["id"] != uid
    listing = await (await client.get("/v1/contacts", headers=bearer(again))).json()
    assert listing["items"] == []


async def test_openapi_document_is_valid_and_complete(client: Client) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    for route in ROUTES:
        assert route.method.lower() in spec["paths"][route.path], route.path
    start = spec["paths"]["/v1/auth/otp/start"]["post"]
    assert start["security"] == []
    create_op = spec["paths"]["/v1/contacts"]["post"]
    schema_ref = create_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False


async def test_account_deletion_forgets_the_users_idempotency_records(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    # A stored answer repeats the request's personal data (names, notes, numbers): it goes with
    # the account instead of waiting out IDEMPOTENCY_TTL_S.
    async def post(user: dict[str, Any], path: str, body: dict[str, Any], key: str) -> Any:
        headers = {**bearer(user), "Idempotency-Key": key}
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    private = {"name": "Dana Lee", "notes": "private", "phones": [{"number": "+14155550199"}]}
    dana = await post(alice, "/v1/contacts", private, "k1")
    await post(alice, f"/v1/contacts/{dana['id']}/interactions", {"kind": "call"}, "k2")
    await post(alice, "/v1/referrals", {"direction": "given", "contact_id": dana["id"]}, "k3")
    bobs = await post(bob, "/v1/contacts", {"name": "Bob's contact"}, "k1")
    records = client.app[DB][IDEMPOTENCY]
    assert await records.count_documents({}) == 4

    resp = await client.delete("/v1/me", headers=bearer(alice))
    assert resp.status == 204
    left = await records.find({}).to_list()
    assert [doc["body"]["id"] for doc in left] == [bobs["id"]]
