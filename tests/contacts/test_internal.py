"""The internal API of contacts as reminders uses it, and the change feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.auth import issue_service_token
from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create
from tests.support.settings import INTERNAL_SECRET


def service(caller: str = "reminders") -> dict[str, str]:
    """A service token for calling contacts."""
    return {"Authorization": f"Bearer {issue_service_token(INTERNAL_SECRET, caller, 'contacts')}"}


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, params=params, headers=service())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def read_feed(client: Client, after: str | None = None) -> dict[str, Any]:
    params = {"limit": "500", **({"after": after} if after else {})}
    result: dict[str, Any] = await get(client, "/internal/v1/changes", **params)
    return result


async def test_internal_needs_a_service_token(client: Client, alice: dict[str, Any]) -> None:
    uid = alice["user"]["id"]
    assert (await client.get(f"/internal/v1/users/{uid}")).status == 401
    resp = await client.get(f"/internal/v1/users/{uid}", headers=bearer(alice))
    assert resp.status == 401
    wrong = {
        "Authorization": "Bearer " + issue_service_token(INTERNAL_SECRET, "reminders", "notifier")
    }
    assert (await client.get(f"/internal/v1/users/{uid}", headers=wrong)).status == 401
    # And a service token is no user token.
    assert (await client.get("/v1/me", headers=service())).status == 401


async def test_users(client: Client, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    uid = alice["user"]["id"]
    user = await get(client, "/internal/v1/users/by-phone", phone="+14155550123")
    assert user["id"] == uid
    assert set(user) == {"id", "phone", "name", "time_zone", "region", "locale", "role",
                         "profile", "created_at"}  # fmt: skip
    resp = await client.get(
        "/internal/v1/users/by-phone", params={"phone": "+14155559999"}, headers=service()
    )
    assert resp.status == 404
    resp = await client.get(
        "/internal/v1/users/by-phone", params={"phone": "4155550123"}, headers=service()
    )
    assert resp.status == 422
    assert (await get(client, f"/internal/v1/users/{uid}"))["phone"] == "+14155550123"
    resp = await client.get(f"/internal/v1/users/{'0' * 32}", headers=service())
    assert resp.status == 404

    page = await get(client, "/internal/v1/users", limit="1")
    assert len(page["items"]) == 1
    rest = await get(client, "/internal/v1/users", limit="1", after=page["next"])
    ids = {page["items"][0]["id"], rest["items"][0]["id"]}
    assert ids == {uid, bob["user"]["id"]}


async def test_contacts_match_and_reconciliation(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    uid = alice["user"]["id"]
    dana = await create(
        client,
        alice,
        name="Dana Lee",
        company="Lee Insurance",
        notes="private",
        stage="trust",
        phones=[{"number": "+14155550199"}],
        emails=["dana@lee.example"],
        met={"how": "BNI"},
        profession="Insurance",
    )
    await create(client, alice, name="Danièle Ørsted")
    gone = await create(client, alice, name="Dan Gone")
    await client.delete(f"/v1/contacts/{gone['id']}", headers=bearer(alice))
    await create(client, bob, name="Dana Other")

    async def match(name: str) -> list[str]:
        body = await get(client, f"/internal/v1/users/{uid}/contacts/match", name=name)
        return sorted(c["name"] for c in body["candidates"])

    assert await match("dana") == ["Dana Lee"]
    assert await match("DANIELE") == ["Danièle Ørsted"]
    assert await match("dan") == ["Dana Lee", "Danièle Ørsted"]
    assert await match("lee") == ["Dana Lee"]
    assert await match("d l") == ["Dana Lee"]
    assert await match("ana") == []
    assert await match("zed") == []
    resp = await client.get(
        f"/internal/v1/users/{uid}/contacts/match", params={"name": "!!"}, headers=service()
    )
    assert resp.status == 422

    one = await get(client, f"/internal/v1/users/{uid}/contacts/{dana['id']}")
    # Only what scheduling needs: no private notes, phones, e-mails, profession or how we met.
    assert set(one) == {"id", "user_id", "name", "company", "tier", "cadence_days", "stage",
                        "birthday", "last_interaction_at", "created_at", "deleted"}  # fmt: skip
    assert one["stage"] == "trust"
    assert one["user_id"] == uid
    assert one["deleted"] is False
    deleted = await get(client, f"/internal/v1/users/{uid}/contacts/{gone['id']}")
    assert deleted["deleted"] is True
    resp = await client.get(
        f"/internal/v1/users/{bob['user']['id']}/contacts/{dana['id']}", headers=service()
    )
    assert resp.status == 404

    page = await get(client, f"/internal/v1/users/{uid}/contacts", limit="1")
    page2 = await get(client, f"/internal/v1/users/{uid}/contacts", limit="1", after=page["next"])
    names = {page["items"][0]["name"], page2["items"][0]["name"]}
    assert names == {"Dana Lee", "Danièle Ørsted"}
    last = await get(client, f"/internal/v1/users/{uid}/contacts", limit="1", after=page2["next"])
    assert last == {"items": [], "next": None}


async def test_interactions_and_referrals_on_behalf_and_undo(
    client: Client, alice: dict[str, Any]
) -> None:
    uid = alice["user"]["id"]
    dana = await create(client, alice, name="Dana Lee")
    path = f"/internal/v1/users/{uid}/contacts/{dana['id']}/interactions"
    headers = {**service(), "Idempotency-Key": "sms:SM123:0"}
    resp = await client.post(
        path, json={"kind": "coffee", "notes": "MET 1 coffee"}, headers=headers
    )
    assert resp.status == 201
    item = await resp.json()
    assert item["source"] == "sms"
    again = await client.post(
        path, json={"kind": "coffee", "notes": "MET 1 coffee"}, headers=headers
    )
    assert await again.json() == item
    contact = await get(client, f"/internal/v1/users/{uid}/contacts/{dana['id']}")
    assert contact["last_interaction_at"] == item["occurred_at"]

    resp = await client.delete(
        f"/internal/v1/users/{uid}/interactions/{item['id']}", headers=service()
    )
    assert resp.status == 204
    contact = await get(client, f"/internal/v1/users/{uid}/contacts/{dana['id']}")
    assert contact["last_interaction_at"] is None

    resp = await client.post(
        f"/internal/v1/users/{uid}/referrals",
        json={"direction": "received", "contact_id": dana["id"], "for_name": "Kim"},
        headers={**service(), "Idempotency-Key": "sms:SM124:0"},
    )
    assert resp.status == 201
    ref = await resp.json()
    mine = await (await client.get(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).json()
    assert mine["referrals_received"] == 1
    resp = await client.delete(f"/internal/v1/users/{uid}/referrals/{ref['id']}", headers=service())
    assert resp.status == 204
    mine = await (await client.get(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).json()
    assert mine["referrals_received"] == 0
    resp = await client.delete(f"/internal/v1/users/{uid}/referrals/{ref['id']}", headers=service())
    assert resp.status == 404


async def test_change_feed_serves_every_write_with_current_state(
    client: Client, alice: dict[str, Any]
) -> None:
    uid = alice["user"]["id"]
    feed = await read_feed(client)
    assert [c["kind"] for c in feed["changes"]] == ["user"]
    assert feed["changes"][0]["entity"]["id"] == uid
    cursor = feed["next"]

    dana = await create(client, alice, name="Dana Lee")
    await client.patch(f"/v1/contacts/{dana['id']}", json={"tier": "A"}, headers=bearer(alice))
    item = await (
        await client.post(
            f"/v1/contacts/{dana['id']}/interactions", json={"kind": "call"}, headers=bearer(alice)
        )
    ).json()
    await client.delete(f"/v1/interactions/{item['id']}", headers=bearer(alice))
    await client.delete(f"/v1/contacts/{dana['id']}", headers=bearer(alice))

    feed = await read_feed(client, cursor)
    kinds = [(c["kind"], c["op"]) for c in feed["changes"]]
    assert ("interaction", "delete") in kinds
    contact_changes = [c for c in feed["changes"] if c["kind"] == "contact"]
    assert len(contact_changes) >= 4
    # Entities are read at serve time: every contact change shows the deleted contact now.
    for change in contact_changes:
        assert change["op"] == "delete"
        assert change["entity"]["deleted"] is True
        assert change["entity"]["tier"] == "A"
        assert change["user_id"] == uid
    interaction = [c for c in feed["changes"] if c["kind"] == "interaction"]
    assert all(c["entity"] is None for c in interaction)
    assert feed["has_more"] is False

    # Paging with small limits visits the same records, in order, once.
    seen: list[str] = []
    position = cursor
    while True:
        page = await get(client, "/internal/v1/changes", limit="2", after=position)
        seen += [c["cursor"] for c in page["changes"]]
        position = page["next"]
        if not page["has_more"]:
            break
    assert seen == [c["cursor"] for c in feed["changes"]]
    empty = await read_feed(client, feed["next"])
    assert empty["changes"] == []
    assert empty["next"] == feed["next"]
    resp = await client.get("/internal/v1/changes", params={"after": "garbage"}, headers=service())
    assert resp.status == 400


@pytest.mark.parametrize("settings_overrides", [{"change_feed_lag_s": 1.0}])
async def test_change_feed_waits_for_the_safety_lag(client: Client, alice: dict[str, Any]) -> None:
    # Only records older than the lag (by the real wall clock) are served.
    for _ in range(3):
        asked_at = datetime.now(UTC)
        feed = await read_feed(client)
        for change in feed["changes"]:
            assert datetime.fromisoformat(change["at"]) <= asked_at - timedelta(seconds=1)
        await asyncio.sleep(0.6)
    assert [c["kind"] for c in feed["changes"]] == ["user"]


async def test_on_behalf_entries_keep_the_callers_time(
    client: Client, alice: dict[str, Any]
) -> None:
    # Another service stamps with its own clock (moved independently in test mode).
    uid = alice["user"]["id"]
    dana = await create(client, alice, name="Dana Lee")
    path = f"/internal/v1/users/{uid}/contacts/{dana['id']}/interactions"
    body = {"kind": "one_to_one", "occurred_at": "2026-03-20T10:00:00Z", "next_action": "x" * 500}
    resp = await client.post(path, json=body, headers={**service(), "Idempotency-Key": "a"})
    assert resp.status == 201, await resp.text()
    contact = await get(client, f"/internal/v1/users/{uid}/contacts/{dana['id']}")
    assert contact["last_interaction_at"] == "2026-03-20T10:00:00Z"
    resp = await client.post(path, json={"kind": "call", "source": "carrier"}, headers=service())
    assert resp.status == 422


async def test_on_behalf_sources_and_next_action_in_the_feed(
    client: Client, alice: dict[str, Any]
) -> None:
    uid = alice["user"]["id"]
    dana = await create(client, alice, name="Dana Lee")
    path = f"/internal/v1/users/{uid}/contacts/{dana['id']}/interactions"
    resp = await client.post(path, json={"kind": "one_to_one"}, headers=service())
    assert resp.status == 201
    bare = await resp.json()
    assert (bare["source"], bare["next_action"], bare["next_action_agreed"]) == ("sms", None, False)
    resp = await client.post(path, json={"kind": "call", "source": "api"}, headers=service())
    assert (await resp.json())["source"] == "api"
    resp = await client.post(
        path, json={"kind": "one_to_one", "next_action": "intro to Sam"}, headers=service()
    )
    agreed = await resp.json()
    assert agreed["next_action_agreed"] is True
    for bad in ("SMS", "email", None):
        resp = await client.post(path, json={"kind": "call", "source": bad}, headers=service())
        assert resp.status == 422, bad

    feed = await read_feed(client)
    entities = {c["entity_id"]: c["entity"] for c in feed["changes"] if c["kind"] == "interaction"}
    assert entities[bare["id"]]["next_action"] is None
    assert entities[bare["id"]]["next_action_agreed"] is False
    assert entities[bare["id"]]["source"] == "sms"
    assert entities[agreed["id"]]["next_action_agreed"] is True
    assert len(entities) == 3
