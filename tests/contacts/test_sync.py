"""The mobile delta sync, GET /v1/sync, through the real contacts app."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.contacts.settings import ContactsSettings
from services.contacts.sync import FeedPosition, SnapshotPosition, SyncTokens
from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create
from tests.contacts.test_import import imported


async def sync(
    client: Client, user: dict[str, Any], since: str | None = None, limit: int = 1000
) -> dict[str, Any]:
    params = {"limit": str(limit), **({"since": since} if since else {})}
    resp = await client.get("/v1/sync", params=params, headers=bearer(user))
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def sync_all(
    client: Client, user: dict[str, Any], since: str | None = None, limit: int = 1000
) -> tuple[list[dict[str, Any]], str]:
    """Every page until has_more is false: the pages and the last next token."""
    pages = []
    while True:
        page = await sync(client, user, since, limit)
        pages.append(page)
        since = page["next"]
        if not page["has_more"]:
            return pages, since


def ids(page: dict[str, Any], kind: str) -> list[str]:
    return [item["id"] for item in page[kind]]


async def log(client: Client, user: dict[str, Any], contact_id: str) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/contacts/{contact_id}/interactions", json={"kind": "call"}, headers=bearer(user)
    )
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def refer(client: Client, user: dict[str, Any], contact_id: str) -> dict[str, Any]:
    body = {"direction": "given", "contact_id": contact_id, "for_name": "Sam"}
    resp = await client.post("/v1/referrals", json=body, headers=bearer(user))
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def test_first_sync_lists_everything_live(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    gone = await create(client, alice, name="Old Friend")
    await client.delete(f"/v1/contacts/{gone['id']}", headers=bearer(alice))
    call = await log(client, alice, dana["id"])
    ref = await refer(client, alice, dana["id"])
    await create(client, bob, name="Bob's Contact")

    page = await sync(client, alice)
    assert ids(page, "contacts") == [dana["id"]]
    assert page["contacts"][0]["interaction_count"] == 1
    assert ids(page, "interactions") == [call["id"]]
    assert ids(page, "referrals") == [ref["id"]]
    assert page["tombstones"] == []
    assert page["has_more"] is False
    assert page["next"]

    # Nothing changed since: the feed repeats at most what the listing showed, then is empty.
    _, token = await sync_all(client, alice, page["next"])
    quiet = await sync(client, alice, token)
    assert (quiet["contacts"], quiet["interactions"], quiet["referrals"]) == ([], [], [])
    assert quiet["tombstones"] == []
    assert quiet["has_more"] is False


async def test_incremental_sync_after_create_update_and_delete(
    client: Client, alice: dict[str, Any]
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    erin = await create(client, alice, name="Erin Wu")
    call = await log(client, alice, dana["id"])
    ref = await refer(client, alice, dana["id"])
    _, token = await sync_all(client, alice)
    _, token = await sync_all(client, alice, token)  # past the listing's own writes

    fay = await create(client, alice, name="Fay Ng")
    resp = await client.patch(
        f"/v1/contacts/{erin['id']}", json={"company": "Wu & Co"}, headers=bearer(alice)
    )
    assert resp.status == 200
    assert (await client.delete(f"/v1/contacts/{dana['id']}", headers=bearer(alice))).status == 204
    resp = await client.delete(f"/v1/interactions/{call['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert (await client.delete(f"/v1/referrals/{ref['id']}", headers=bearer(alice))).status == 204

    pages, token = await sync_all(client, alice, token)
    assert len(pages) == 1
    page = pages[0]
    contacts = {c["id"]: c for c in page["contacts"]}
    assert set(contacts) == {fay["id"], erin["id"]}
    assert contacts[erin["id"]]["company"] == "Wu & Co"
    assert page["interactions"] == []
    assert page["referrals"] == []
    tombstones = {(t["kind"], t["id"]) for t in page["tombstones"]}
    assert tombstones == {
        ("contact", dana["id"]),
        ("interaction", call["id"]),
        ("referral", ref["id"]),
    }
    # A soft-deleted contact is a tombstone with its own deletion time.
    soft = next(t for t in page["tombstones"] if t["kind"] == "contact")
    assert soft["deleted_at"]

    # Restoring brings the contact back as a document.
    resp = await client.post(f"/v1/contacts/{dana['id']}/restore", headers=bearer(alice))
    assert resp.status == 200
    page = await sync(client, alice, token)
    assert ids(page, "contacts") == [dana["id"]]
    assert page["tombstones"] == []


async def test_another_users_changes_never_appear(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    _, alice_token = await sync_all(client, alice)
    theirs = await create(client, bob, name="Bob's Contact")
    await log(client, bob, theirs["id"])
    await refer(client, bob, theirs["id"])
    await client.delete(f"/v1/contacts/{theirs['id']}", headers=bearer(bob))

    page = await sync(client, alice, alice_token)
    assert (page["contacts"], page["interactions"], page["referrals"]) == ([], [], [])
    assert page["tombstones"] == []
    first = await sync(client, alice)
    assert first["contacts"] == []
    assert first["interactions"] == []

    # Bob sees his own; his token is refused for Alice (it is bound to its user).
    bobs = await sync(client, bob)
    assert bobs["contacts"] == []
    assert len(bobs["interactions"]) == 1
    resp = await client.get("/v1/sync", params={"since": bobs["next"]}, headers=bearer(alice))
    assert resp.status == 400


async def test_paging_visits_every_item_once(client: Client, alice: dict[str, Any]) -> None:
    made = [await create(client, alice, name=f"Contact {n}") for n in range(5)]
    calls = [await log(client, alice, made[0]["id"]) for _ in range(3)]
    refs = [await refer(client, alice, made[1]["id"]) for _ in range(2)]

    pages, token = await sync_all(client, alice, limit=2)
    assert all(
        len(p["contacts"]) + len(p["interactions"]) + len(p["referrals"]) <= 2 for p in pages
    )
    seen_contacts = [i for p in pages for i in ids(p, "contacts")]
    seen_calls = [i for p in pages for i in ids(p, "interactions")]
    seen_refs = [i for p in pages for i in ids(p, "referrals")]
    assert sorted(seen_contacts) == sorted(c["id"] for c in made)
    assert sorted(seen_calls) == sorted(c["id"] for c in calls)
    assert sorted(seen_refs) == sorted(r["id"] for r in refs)

    # The feed pages too: every change shows up, in small pages.
    _, token = await sync_all(client, alice, token, limit=2)
    for contact in made:
        resp = await client.patch(
            f"/v1/contacts/{contact['id']}", json={"notes": "met again"}, headers=bearer(alice)
        )
        assert resp.status == 200
    pages, _ = await sync_all(client, alice, token, limit=2)
    assert len(pages) >= 3
    changed = {c["id"] for p in pages for c in p["contacts"]}
    assert changed == {c["id"] for c in made}
    assert all(c["notes"] == "met again" for p in pages for c in p["contacts"])


def _tamper(token: str) -> str:
    payload, signature = token.split(".")
    plain = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    plain[1] -= 60_000
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + signature


async def test_forged_tokens_are_400(client: Client, alice: dict[str, Any]) -> None:
    page = await sync(client, alice)
    for since in ("garbage", "a.b", "", _tamper(page["next"]), page["next"] + "x"):
        resp = await client.get("/v1/sync", params={"since": since}, headers=bearer(alice))
        assert resp.status in (400, 422), since
        if since:
            assert resp.status == 400
            problem = await resp.json()
            assert resp.content_type == "application/problem+json"
            assert problem["errors"][0]["field"] == "since"
    resp = await client.get("/v1/sync", params={"limit": "0"}, headers=bearer(alice))
    assert resp.status == 422
    assert (await client.get("/v1/sync")).status == 401


async def test_a_token_older_than_retention_is_410(
    client: Client, alice: dict[str, Any], settings: ContactsSettings
) -> None:
    # Tokens are signed, so the test signs old positions with the service's own key.
    tokens = SyncTokens(settings.auth_jwt_secret.get_secret_value())
    uid = alice["user"]["id"]
    old = datetime.now(UTC) - timedelta(days=settings.change_retention_days, minutes=1)
    for position in (FeedPosition(old, ""), SnapshotPosition(old, 1, None)):
        resp = await client.get(
            "/v1/sync", params={"since": tokens.encode(uid, position)}, headers=bearer(alice)
        )
        assert resp.status == 410, await resp.text()
        problem = await resp.json()
        assert "without since" in problem["detail"]
    # Just inside the retention period is still served.
    recent = datetime.now(UTC) - timedelta(days=settings.change_retention_days - 1)
    resp = await client.get(
        "/v1/sync",
        params={"since": tokens.encode(uid, FeedPosition(recent, ""))},
        headers=bearer(alice),
    )
    assert resp.status == 200
    # A position in the future was never issued.
    future = datetime.now(UTC) + timedelta(hours=1)
    resp = await client.get(
        "/v1/sync",
        params={"since": tokens.encode(uid, FeedPosition(future, ""))},
        headers=bearer(alice),
    )
    assert resp.status == 400


@pytest.mark.parametrize("settings_overrides", [{"change_feed_lag_s": 0.5}])
async def test_changes_wait_for_the_safety_lag_and_are_not_lost(
    client: Client, alice: dict[str, Any]
) -> None:
    # The first sync's feed starts at its own start less the lag, so a write just before it
    # that the listing may or may not show is served by the feed afterwards.
    dana = await create(client, alice, name="Dana Lee")
    first = await sync(client, alice)
    assert ids(first, "contacts") == [dana["id"]]
    erin = await create(client, alice, name="Erin Wu")
    early = await sync(client, alice, first["next"])
    assert erin["id"] not in ids(early, "contacts")  # younger than the lag: not yet
    await asyncio.sleep(0.7)
    pages, _ = await sync_all(client, alice, early["next"])
    assert erin["id"] in {c["id"] for p in pages for c in p["contacts"]}


async def test_imported_contacts_and_counter_updates_are_synced(
    client: Client, alice: dict[str, Any]
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    _, token = await sync_all(client, alice)
    _, token = await sync_all(client, alice, token)
    # An import writes its change records in batches; each new contact reaches the phone.
    cards = b"".join(
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Member {n}\r\nEND:VCARD\r\n".encode() for n in range(3)
    )
    report = await imported(client, alice, cards)
    created = {row["contact_id"] for row in report["rows"]}
    assert len(created) == 3
    # Logging an interaction changes the contact's counters too: both are sent.
    call = await log(client, alice, dana["id"])
    pages, _ = await sync_all(client, alice, token)
    contacts = {c["id"]: c for p in pages for c in p["contacts"]}
    assert set(contacts) == created | {dana["id"]}
    assert contacts[dana["id"]]["interaction_count"] == 1
    assert [i for p in pages for i in ids(p, "interactions")] == [call["id"]]


async def test_openapi_describes_sync(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/sync"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["since", "limit"]
    assert {"200", "400", "401", "410", "422"} <= set(operation["responses"])
    page = spec["components"]["schemas"]["SyncPage"]
    assert set(page["required"]) >= {"contacts", "interactions", "referrals", "tombstones"}
    assert set(page["required"]) >= {"next", "has_more"}
