"""Contacts CRUD: validation, paging, filters, sorts, soft delete, ETags, idempotency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.clock import ControllableClock
from tests.contacts.conftest import Client, bearer


async def create(client: Client, user: dict[str, Any], **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/contacts", json=body, headers=bearer(user))
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def test_create_read_and_normalise(client: Client, alice: dict[str, Any]) -> None:
    resp = await client.post(
        "/v1/contacts",
        json={
            "name": "  Dana Lee ",
            "company": "Lee Insurance",
            "phones": [{"number": "(415) 555-0199", "label": "mobile"}],
            "emails": ["dana@lee.example"],
            "profession": "Insurance broker",
            "met": {"how": "BNI visitor day", "where": "Chapter Downtown", "on": "2026-02-10"},
            "stage": "like",
            "tier": "A",
            "tags": ["Insurance", "bni", "insurance"],
            "birthday": "02-29",
            "time_zone": "America/New_York",
            "notes": "met at chapter",
        },
        headers=bearer(alice),
    )
    assert resp.status == 201
    contact = await resp.json()
    assert resp.headers["Location"] == f"/v1/contacts/{contact['id']}"
    created_etag = resp.headers["ETag"]
    assert contact["name"] == "Dana Lee"
    assert contact["phones"] == [{"number": "+14155550199", "label": "mobile"}]
    assert contact["emails"] == ["dana@lee.example"]
    assert contact["profession"] == "Insurance broker"
    assert contact["met"] == {
        "how": "BNI visitor day",
        "where": "Chapter Downtown",
        "on": "2026-02-10",
    }
    assert contact["stage"] == "like"
    assert contact["tags"] == ["bni", "insurance"]
    assert contact["interaction_count"] == 0
    assert contact["deleted"] is False
    assert contact["due_at"].startswith("2026-03-16")  # tier A: 14 days after creation

    resp = await client.get(f"/v1/contacts/{contact['id']}", headers=bearer(alice))
    assert resp.status == 200
    etag = resp.headers["ETag"]
    assert etag == created_etag
    assert await resp.json() == contact
    resp = await client.get(
        f"/v1/contacts/{contact['id']}", headers={**bearer(alice), "If-None-Match": etag}
    )
    assert resp.status == 304


async def test_phone_uses_the_users_region(client: Client, bob: dict[str, Any]) -> None:
    contact = await create(
        client,
        bob,
        name="Élodie Martin",
        phones=[
            "06 98 76 54 32",
            {"number": "+1 415 555 0199", "label": "US office"},
            {"number": "0698765432", "label": "duplicate"},
        ],
        emails=["elodie@example.fr", "ELODIE@example.fr", "e.martin@example.com"],
    )
    # Numbers without "+" are read in the user's region (FR); a repeated number is kept once.
    assert contact["phones"] == [
        {"number": "+33698765432", "label": None},
        {"number": "+14155550199", "label": "US office"},
    ]
    assert contact["emails"] == ["elodie@example.fr", "e.martin@example.com"]
    assert contact["stage"] == "know"
    assert contact["met"] is None
    assert contact["profession"] is None
    empty_met = await create(client, bob, name="Noé", met={"how": None, "where": "  "})
    assert empty_met["met"] is None


async def test_list_fields_patch_and_clear(client: Client, alice: dict[str, Any]) -> None:
    contact = await create(
        client, alice, name="Dana", phones=[{"number": "4155550199"}], emails=["d@x.example"]
    )
    path = f"/v1/contacts/{contact['id']}"
    resp = await client.patch(
        path,
        json={
            "phones": [{"number": "415-555-0142", "label": "home"}],
            "met": {"how": "referral from Sam"},
            "profession": "Accountant",
            "stage": "trust",
        },
        headers=bearer(alice),
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["phones"] == [{"number": "+14155550142", "label": "home"}]
    assert body["emails"] == ["d@x.example"]
    assert body["met"] == {"how": "referral from Sam", "where": None, "on": None}
    assert body["profession"] == "Accountant"
    assert body["stage"] == "trust"

    # An invalid second number refuses the whole patch, naming the entry.
    resp = await client.patch(
        path,
        json={"phones": [{"number": "4155550100"}, {"number": "12345"}], "profession": "X"},
        headers=bearer(alice),
    )
    assert resp.status == 422
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == ["phones.1.number"]
    assert (await (await client.get(path, headers=bearer(alice))).json()) == body

    resp = await client.patch(
        path,
        json={"phones": None, "emails": [], "met": None, "profession": None},
        headers=bearer(alice),
    )
    assert resp.status == 200
    body = await resp.json()
    assert (body["phones"], body["emails"], body["met"], body["profession"]) == ([], [], None, None)


async def test_stage_filter_uses_the_relationship_ladder(
    client: Client, alice: dict[str, Any]
) -> None:
    for name, stage in (
        ("Ann", "know"),
        ("Ben", "like"),
        ("Cy", "trust"),
        ("Di", "referral_partner"),
    ):
        await create(client, alice, name=name, stage=stage)
    for stage, expected in (("know", ["Ann"]), ("referral_partner", ["Di"]), ("trust", ["Cy"])):
        resp = await client.get("/v1/contacts", params={"stage": stage}, headers=bearer(alice))
        assert [c["name"] for c in (await resp.json())["items"]] == expected
    for old in ("met", "one_to_one", "power_partner", "client", "dormant"):
        resp = await client.get("/v1/contacts", params={"stage": old}, headers=bearer(alice))
        assert resp.status == 422, old
    stats = await (await client.get("/v1/stats", headers=bearer(alice))).json()
    assert stats["contacts"]["by_stage"] == {
        "know": 1,
        "like": 1,
        "trust": 1,
        "referral_partner": 1,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "A", "unknown": 1}, "unknown"),
        ({"name": "A", "phones": [{"number": "12345"}]}, "phones.0.number"),
        ({"name": "A", "phones": [14155550199]}, "phones.0"),
        ({"name": "A", "phones": ["12"]}, "phones.0.number"),
        ({"name": "A", "phones": [{"number": "+14155550199", "label": ""}]}, "phones.0.label"),
        ({"name": "A", "phones": [{"number": "+14155550199", "x": 1}]}, "phones.0.x"),
        ({"name": "A", "phones": [{"number": "+14155550199"}] * 11}, "phones"),
        ({"name": "A", "phone": "+14155550199"}, "phone"),
        ({"name": "A", "emails": ["ok@x.example", "nope"]}, "emails.1"),
        ({"name": "A", "emails": "a@x.example"}, "emails"),
        ({"name": "A", "met": {"on": "2026-02-30"}}, "met.on"),
        ({"name": "A", "met": {"on": 20260210}}, "met.on"),
        ({"name": "A", "met": {"with": "x"}}, "met.with"),
        ({"name": "A", "met": "at BNI"}, "met"),
        ({"name": "A", "profession": "x" * 201}, "profession"),
        ({"name": "A", "time_zone": "Europe/Atlantis"}, "time_zone"),
        ({"name": "A", "time_zone": "../../etc/passwd"}, "time_zone"),
        ({"name": "A", "birthday": "02-30"}, "birthday"),
        ({"name": "A", "birthday": "1990-13-01"}, "birthday"),
        ({"name": "A", "tier": "Z"}, "tier"),
        ({"name": "A", "cadence_days": 0}, "cadence_days"),
        ({"name": "A", "email": "a@x.example"}, "email"),
        ({"name": "A", "tags": ["ok"] * 21}, "tags"),
        ({"name": "A", "stage": "friend"}, "stage"),
        ({"name": "A", "stage": "power_partner"}, "stage"),
        ({"name": "A\x00B"}, "name"),
    ],
)
async def test_invalid_contacts_are_refused(
    client: Client, alice: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/contacts", json=body, headers=bearer(alice))
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    listing = await (await client.get("/v1/contacts", headers=bearer(alice))).json()
    assert listing["items"] == []


async def test_operator_keys_and_oversized_bodies(client: Client, alice: dict[str, Any]) -> None:
    resp = await client.post(
        "/v1/contacts", json={"name": "A", "$where": "1"}, headers=bearer(alice)
    )
    assert resp.status == 422
    resp = await client.post(
        "/v1/contacts", json={"name": "A", "notes": "x" * 70_000}, headers=bearer(alice)
    )
    assert resp.status == 413
    resp = await client.post("/v1/contacts", data="name=A", headers=bearer(alice))
    assert resp.status == 415


async def test_tenant_isolation(client: Client, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    contact = await create(client, alice, name="Dana Lee")
    path = f"/v1/contacts/{contact['id']}"
    assert (await client.get(path, headers=bearer(bob))).status == 404
    assert (await client.patch(path, json={"name": "X"}, headers=bearer(bob))).status == 404
    assert (await client.delete(path, headers=bearer(bob))).status == 404
    assert (await client.post(path + "/restore", headers=bearer(bob))).status == 404
    resp = await client.post(path + "/interactions", json={"kind": "call"}, headers=bearer(bob))
    assert resp.status == 404
    assert (await (await client.get("/v1/contacts", headers=bearer(bob))).json())["items"] == []
    resp = await client.get(path, headers=bearer(alice))
    assert (await resp.json())["name"] == "Dana Lee"
    assert (await client.get("/v1/contacts/nothex", headers=bearer(alice))).status == 404


async def test_paging_filters_and_search(
    client: Client, alice: dict[str, Any], clock: ControllableClock
) -> None:
    names = ["Zoë Adams", "Émile Brun", "dana lee", "Dana Leroy", "Carl Smith"]
    for i, name in enumerate(names):
        await create(
            client,
            alice,
            name=name,
            tier="A" if i % 2 == 0 else "B",
            tags=["bni"] if i < 3 else [],
            company="Acme Corp" if i == 4 else None,
        )
        clock.advance(timedelta(minutes=1))

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/v1/contacts", params=params, headers=bearer(alice))).json()
        seen += [c["name"] for c in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["Carl Smith", "dana lee", "Dana Leroy", "Émile Brun", "Zoë Adams"]

    async def names_for(**params: str) -> list[str]:
        resp = await client.get("/v1/contacts", params=params, headers=bearer(alice))
        assert resp.status == 200, await resp.text()
        return [c["name"] for c in (await resp.json())["items"]]

    assert await names_for(q="emile") == ["Émile Brun"]
    assert await names_for(q="ZOE") == ["Zoë Adams"]
    assert await names_for(q="acme") == ["Carl Smith"]
    assert await names_for(q="!!") == []
    assert await names_for(q="dana le") == ["dana lee", "Dana Leroy"]
    assert await names_for(tag="bni") == ["dana lee", "Émile Brun", "Zoë Adams"]
    assert await names_for(tier="B") == ["Dana Leroy", "Émile Brun"]
    assert await names_for(sort="-created_at", limit="2") == ["Carl Smith", "Dana Leroy"]
    assert await names_for(sort="-name", limit="1") == ["Zoë Adams"]
    # Tier A (14 days) is due before tier B (30 days); among equals the older one first.
    assert await names_for(sort="losing_touch") == [
        "Zoë Adams",
        "dana lee",
        "Carl Smith",
        "Émile Brun",
        "Dana Leroy",
    ]

    for bad in (
        {"limit": "0"},
        {"limit": "x"},
        {"sort": "phone"},
        {"tier": "Q"},
        {"what": "1"},
    ):
        resp = await client.get("/v1/contacts", params=bad, headers=bearer(alice))
        assert resp.status == 422, bad
    page = await (
        await client.get("/v1/contacts", params={"limit": "1"}, headers=bearer(alice))
    ).json()
    resp = await client.get(
        "/v1/contacts", params={"cursor": page["next"], "sort": "-name"}, headers=bearer(alice)
    )
    assert resp.status == 400  # a cursor is opaque: a bad one is no field error (test_cursors)


async def test_patch_with_etags(client: Client, alice: dict[str, Any]) -> None:
    contact = await create(client, alice, name="Dana Lee", tier="A", company="Lee")
    path = f"/v1/contacts/{contact['id']}"
    etag = (await client.get(path, headers=bearer(alice))).headers["ETag"]

    resp = await client.patch(
        path, json={"company": None, "tier": "B"}, headers={**bearer(alice), "If-Match": etag}
    )
    assert resp.status == 200
    new_etag = resp.headers["ETag"]
    assert new_etag != etag
    body = await resp.json()
    assert body["company"] is None
    assert body["tier"] == "B"

    resp = await client.patch(
        path, json={"name": "Stale"}, headers={**bearer(alice), "If-Match": etag}
    )
    assert resp.status == 412
    assert (await (await client.get(path, headers=bearer(alice))).json())["name"] == "Dana Lee"
    resp = await client.delete(path, headers={**bearer(alice), "If-Match": etag})
    assert resp.status == 412

    for bad in ({"name": None}, {"stage": None}, {"phones": [{"number": "1"}]}, {"id": "x"}):
        resp = await client.patch(path, json=bad, headers=bearer(alice))
        assert resp.status == 422, bad
    resp = await client.patch(path, json={"name": "Dana Lee-Park"}, headers=bearer(alice))
    assert resp.status == 200


async def test_soft_delete_and_restore(client: Client, alice: dict[str, Any]) -> None:
    contact = await create(client, alice, name="Dana Lee")
    path = f"/v1/contacts/{contact['id']}"
    etag = (await client.get(path, headers=bearer(alice))).headers["ETag"]
    resp = await client.delete(path, headers={**bearer(alice), "If-Match": etag})
    assert resp.status == 204
    listing = await (await client.get("/v1/contacts", headers=bearer(alice))).json()
    assert listing["items"] == []
    trash = await (
        await client.get("/v1/contacts", params={"deleted": "true"}, headers=bearer(alice))
    ).json()
    assert [c["id"] for c in trash["items"]] == [contact["id"]]
    got = await (await client.get(path, headers=bearer(alice))).json()
    assert got["deleted"] is True
    assert (await client.patch(path, json={"name": "X"}, headers=bearer(alice))).status == 404
    assert (await client.delete(path, headers=bearer(alice))).status == 404

    resp = await client.post(path + "/restore", headers=bearer(alice))
    assert resp.status == 200
    assert (await resp.json())["deleted"] is False
    listing = await (await client.get("/v1/contacts", headers=bearer(alice))).json()
    assert [c["id"] for c in listing["items"]] == [contact["id"]]


async def test_idempotent_create(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    headers = {**bearer(alice), "Idempotency-Key": "create-dana-1"}
    first = await client.post("/v1/contacts", json={"name": "Dana"}, headers=headers)
    assert first.status == 201
    second = await client.post("/v1/contacts", json={"name": "Dana"}, headers=headers)
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json()
    listing = await (await client.get("/v1/contacts", headers=bearer(alice))).json()
    assert len(listing["items"]) == 1

    other = await client.post("/v1/contacts", json={"name": "Other"}, headers=headers)
    assert other.status == 422
    # The same key from another user is a different request.
    resp = await client.post(
        "/v1/contacts",
        json={"name": "Dana"},
        headers={**bearer(bob), "Idempotency-Key": "create-dana-1"},
    )
    assert resp.status == 201
    assert (await resp.json())["id"] != (await first.json())["id"]
    resp = await client.post(
        "/v1/contacts", json={"name": "Dana"}, headers={**bearer(alice), "Idempotency-Key": "é"}
    )
    assert resp.status == 422
