"""Interactions update contacts' counters; referrals move through their pipeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.clock import ControllableClock
from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create


async def log(client: Client, user: dict[str, Any], contact_id: str, **body: Any) -> Any:
    return await client.post(
        f"/v1/contacts/{contact_id}/interactions", json=body, headers=bearer(user)
    )


async def test_interactions_update_counters_and_undo_restores_them(
    client: Client, alice: dict[str, Any], clock: ControllableClock
) -> None:
    contact = await create(client, alice, name="Dana Lee", tier="A")
    cid = contact["id"]
    resp = await log(
        client,
        alice,
        cid,
        kind="one_to_one",
        occurred_at="2026-03-01T10:00:00Z",
        notes="coffee at Blue Bottle",
        next_action="send intro",
    )
    assert resp.status == 201
    first = await resp.json()
    assert first["source"] == "app"
    clock.advance(timedelta(days=1))
    second = await (await log(client, alice, cid, kind="call")).json()

    got = await (await client.get(f"/v1/contacts/{cid}", headers=bearer(alice))).json()
    assert got["interaction_count"] == 2
    assert got["interactions_by_kind"] == {"one_to_one": 1, "call": 1}
    assert got["last_interaction_at"] == "2026-03-03T09:00:00Z"
    assert got["due_at"].startswith("2026-03-17")

    page = await (
        await client.get(
            f"/v1/contacts/{cid}/interactions", params={"limit": "1"}, headers=bearer(alice)
        )
    ).json()
    assert [i["id"] for i in page["items"]] == [second["id"]]
    page2 = await (
        await client.get(
            f"/v1/contacts/{cid}/interactions",
            params={"cursor": page["next"]},
            headers=bearer(alice),
        )
    ).json()
    assert [i["id"] for i in page2["items"]] == [first["id"]]
    assert page2["next"] is None

    resp = await client.delete(f"/v1/interactions/{second['id']}", headers=bearer(alice))
    assert resp.status == 204
    got = await (await client.get(f"/v1/contacts/{cid}", headers=bearer(alice))).json()
    assert got["interaction_count"] == 1
    assert got["interactions_by_kind"] == {"one_to_one": 1}
    assert got["last_interaction_at"] == "2026-03-01T10:00:00Z"
    resp = await client.delete(f"/v1/interactions/{second['id']}", headers=bearer(alice))
    assert resp.status == 404


async def test_interaction_validation(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    contact = await create(client, alice, name="Dana Lee")
    cid = contact["id"]
    for bad in (
        {"kind": "lunch"},
        {"kind": "call", "occurred_at": "2026-03-01T10:00:00"},
        {"kind": "call", "occurred_at": "2026-04-01T10:00:00Z"},
        {"kind": "call", "extra": True},
        {},
    ):
        resp = await log(client, alice, cid, **bad)
        assert resp.status == 422, bad
    got = await (await client.get(f"/v1/contacts/{cid}", headers=bearer(alice))).json()
    assert got["interaction_count"] == 0
    item = await (await log(client, alice, cid, kind="note")).json()
    resp = await client.delete(f"/v1/interactions/{item['id']}", headers=bearer(bob))
    assert resp.status == 404
    await client.delete(f"/v1/contacts/{cid}", headers=bearer(alice))
    assert (await log(client, alice, cid, kind="call")).status == 404


async def test_idempotent_interaction(client: Client, alice: dict[str, Any]) -> None:
    contact = await create(client, alice, name="Dana Lee")
    headers = {**bearer(alice), "Idempotency-Key": "k1"}
    path = f"/v1/contacts/{contact['id']}/interactions"
    one = await client.post(path, json={"kind": "call"}, headers=headers)
    two = await client.post(path, json={"kind": "call"}, headers=headers)
    assert one.status == two.status == 201
    assert await one.json() == await two.json()
    got = await (await client.get(f"/v1/contacts/{contact['id']}", headers=bearer(alice))).json()
    assert got["interaction_count"] == 1


async def test_referral_pipeline(
    client: Client, alice: dict[str, Any], bob: dict[str, Any], clock: ControllableClock
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    resp = await client.post(
        "/v1/referrals",
        json={
            "direction": "given",
            "contact_id": dana["id"],
            "for_name": "Sam Park",
            "description": "needs home insurance",
            "temperature": 4,
        },
        headers=bearer(alice),
    )
    assert resp.status == 201
    ref = await resp.json()
    assert ref["temperature"] == 4
    assert ref["status"] == "open"
    assert set(ref["status_times"]) == {"open"}
    got = await (await client.get(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).json()
    assert got["referrals_given"] == 1

    path = f"/v1/referrals/{ref['id']}"
    first_etag = (await client.get(path, headers=bearer(alice))).headers["ETag"]
    clock.advance(timedelta(days=2))
    resp = await client.patch(
        path, json={"status": "meeting"}, headers={**bearer(alice), "If-Match": first_etag}
    )
    assert resp.status == 200
    assert resp.headers["ETag"] != first_etag
    stale = await client.patch(
        path, json={"status": "lost"}, headers={**bearer(alice), "If-Match": first_etag}
    )
    assert stale.status == 412
    assert (await resp.json())["status_times"]["meeting"] == "2026-03-04T09:00:00Z"
    resp = await client.patch(path, json={"status": "won"}, headers=bearer(alice))
    assert resp.status == 422  # needs value and currency
    resp = await client.patch(path, json={"temperature": 5}, headers=bearer(alice))
    assert resp.status == 200
    assert (await resp.json())["temperature"] == 5
    resp = await client.patch(path, json={"status": "open"}, headers=bearer(alice))
    assert resp.status == 409  # backwards
    resp = await client.patch(path, json={"value": 10}, headers=bearer(alice))
    assert resp.status == 422
    resp = await client.patch(
        path, json={"status": "won", "value": 1200.5, "currency": "USD"}, headers=bearer(alice)
    )
    assert resp.status == 200
    won = await resp.json()
    assert won["status"] == "won"
    assert won["value"] == 1200.5
    assert set(won["status_times"]) == {"open", "meeting", "won"}
    resp = await client.patch(path, json={"status": "lost"}, headers=bearer(alice))
    assert resp.status == 409
    assert (await client.get(path, headers=bearer(bob))).status == 404

    listing = await (
        await client.get("/v1/referrals", params={"status": "won"}, headers=bearer(alice))
    ).json()
    assert [r["id"] for r in listing["items"]] == [ref["id"]]
    stats = await (await client.get("/v1/stats", headers=bearer(alice))).json()
    assert stats["referrals"]["won_value_by_currency"] == {"USD": 1200.5}
    assert stats["contacts"]["total"] == 1

    resp = await client.delete(path, headers=bearer(alice))
    assert resp.status == 204
    got = await (await client.get(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).json()
    assert got["referrals_given"] == 0


async def test_referral_needs_own_live_contact(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    resp = await client.post(
        "/v1/referrals",
        json={"direction": "received", "contact_id": dana["id"]},
        headers=bearer(bob),
    )
    assert resp.status == 422
    resp = await client.post(
        "/v1/referrals",
        json={"direction": "sideways", "contact_id": dana["id"]},
        headers=bearer(alice),
    )
    assert resp.status == 422


@pytest.mark.parametrize("temperature", [0, 6, -1, "hot", "3", 3.5, True, [3]])
async def test_referral_temperature_is_one_to_five(
    client: Client, alice: dict[str, Any], temperature: Any
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    body = {"direction": "given", "contact_id": dana["id"], "temperature": temperature}
    resp = await client.post("/v1/referrals", json=body, headers=bearer(alice))
    assert resp.status == 422, temperature
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == ["temperature"]
    listing = await (await client.get("/v1/referrals", headers=bearer(alice))).json()
    assert listing["items"] == []

    body["temperature"] = 1
    created = await (await client.post("/v1/referrals", json=body, headers=bearer(alice))).json()
    path = f"/v1/referrals/{created['id']}"
    resp = await client.patch(path, json={"temperature": temperature}, headers=bearer(alice))
    assert resp.status == 422
    assert (await (await client.get(path, headers=bearer(alice))).json())["temperature"] == 1
    resp = await client.patch(path, json={"temperature": None}, headers=bearer(alice))
    assert resp.status == 200
    assert (await resp.json())["temperature"] is None


async def test_interaction_source_on_the_public_api(client: Client, alice: dict[str, Any]) -> None:
    cid = (await create(client, alice, name="Dana Lee"))["id"]
    resp = await log(client, alice, cid, kind="call", source="api")
    assert resp.status == 201
    assert (await resp.json())["source"] == "api"
    # "sms" is what the internal API records for a texted reply; an app cannot claim it.
    for bad in ("sms", "carrier", "", None, 1):
        resp = await log(client, alice, cid, kind="call", source=bad)
        assert resp.status == 422, bad
        assert [e["field"] for e in (await resp.json())["errors"]] == ["source"]
    page = await (
        await client.get(f"/v1/contacts/{cid}/interactions", headers=bearer(alice))
    ).json()
    assert [i["source"] for i in page["items"]] == ["api"]


async def test_a_one_to_one_without_next_action_is_recorded_as_such(
    client: Client, alice: dict[str, Any]
) -> None:
    cid = (await create(client, alice, name="Dana Lee"))["id"]
    with_action = await (
        await log(client, alice, cid, kind="one_to_one", next_action=" send the intro ")
    ).json()
    assert with_action["next_action"] == "send the intro"
    assert with_action["next_action_agreed"] is True
    for body in ({}, {"next_action": None}, {"next_action": "   "}):
        resp = await log(client, alice, cid, kind="one_to_one", **body)
        assert resp.status == 201, body
        item = await resp.json()
        assert item["next_action"] is None
        assert item["next_action_agreed"] is False
    resp = await log(client, alice, cid, kind="one_to_one", next_action="x" * 501)
    assert resp.status == 422
    resp = await log(client, alice, cid, kind="one_to_one", next_action_agreed=True)
    assert resp.status == 422  # derived from next_action, never sent
    page = await (
        await client.get(f"/v1/contacts/{cid}/interactions", headers=bearer(alice))
    ).json()
    assert [i["next_action_agreed"] for i in page["items"]].count(False) == 3
    stats = await (await client.get("/v1/stats", headers=bearer(alice))).json()
    assert stats["interactions"]["one_to_ones_without_next_action"] == 3
    assert stats["interactions"]["by_kind"] == {"one_to_one": 4}
