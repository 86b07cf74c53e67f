"""Page cursors: every cursor contacts accepts is checked, and a bad one is a 400 problem."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create
from tests.contacts.test_internal import service


def _cursor(raw: str | bytes) -> str:
    """A cursor as the service would spell it, around any JSON text."""
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _encoded(values: list[Any]) -> str:
    return _cursor(json.dumps(values))


# Shapes a client could forge: numbers the driver cannot store or compare (too big, NaN,
# infinite), values of the wrong kind at each position, strings BSON cannot encode, dates out of
# range, and texts that are no cursor at all.
WHEN = {"$d": 1_772_442_000_000}
SORT_CURSORS = [
    _encoded(["name", 2**70, "x"]),
    _cursor('["name", NaN, "x"]'),
    _cursor('["name", Infinity, "x"]'),
    _encoded(["name", 1.5, "x"]),
    _encoded(["name", 7, "x"]),
    _encoded(["name", True, "x"]),
    _encoded(["name", None, "x"]),
    _encoded(["name", ["a"], "x"]),
    _encoded(["name", {"$d": 2**70}, "x"]),
    _encoded(["name", "dana", 2**70]),
    _cursor('["name", "\\ud800", "x"]'),
    _encoded(["name", "dana"]),
    _encoded(["created_at", "dana", "x"]),
    _encoded(["created_at", {"$d": 10**17}, "x"]),
    _encoded(["created_at", {"$d": "soon"}, "x"]),
    _encoded(["created_at", {"$d": 1, "x": 2}, "x"]),
    _encoded({"name": "x"}),
    _cursor(b"\xff\xfe"),
    "!!",
]
PAIR_CURSORS = [
    _encoded([2**70, "x"]),
    _cursor('[NaN, "x"]'),
    _encoded([WHEN, 2**70]),
    _encoded([{"$d": 2**70}, "x"]),
    _encoded([{"$d": -(10**17)}, "x"]),
    _encoded(["2026-03-02", "x"]),
    _encoded([WHEN, None]),
    _cursor('[{"$d": 1772442000000}, "\\udfff"]'),
    _encoded([WHEN]),
    "!!",
]
ID_CURSORS = [
    _encoded([2**70]),
    _cursor("[NaN]"),
    _encoded([1.5]),
    _encoded([WHEN]),
    _encoded([None]),
    _cursor('["\\ud800"]'),
    _encoded(["a", "b"]),
    "!!",
]


async def _bad(client: Client, path: str, name: str, cursor: str, headers: dict[str, str]) -> None:
    resp = await client.get(path, params={name: cursor, "limit": "1"}, headers=headers)
    assert resp.status == 400, (path, cursor, resp.status, await resp.text())
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == 400
    assert "cursor" in problem["detail"]


async def test_forged_contact_list_cursors_are_400(client: Client, alice: dict[str, Any]) -> None:
    await create(client, alice, name="Dana Lee")
    await create(client, alice, name="Eve Moss")
    for sort in ("name", "created_at"):
        for cursor in SORT_CURSORS:
            await _bad(client, f"/v1/contacts?sort={sort}", "cursor", cursor, bearer(alice))
    # A real cursor of another sort order is refused the same way.
    page = await (
        await client.get("/v1/contacts", params={"limit": "1"}, headers=bearer(alice))
    ).json()
    await _bad(client, "/v1/contacts?sort=-name", "cursor", page["next"], bearer(alice))
    # And a real one still pages.
    resp = await client.get(
        "/v1/contacts", params={"limit": "1", "cursor": page["next"]}, headers=bearer(alice)
    )
    assert resp.status == 200
    assert [c["name"] for c in (await resp.json())["items"]] == ["Eve Moss"]


async def test_forged_history_and_referral_cursors_are_400(
    client: Client, alice: dict[str, Any]
) -> None:
    dana = await create(client, alice, name="Dana Lee")
    for cursor in PAIR_CURSORS:
        await _bad(
            client, f"/v1/contacts/{dana['id']}/interactions", "cursor", cursor, bearer(alice)
        )
        await _bad(client, "/v1/referrals", "cursor", cursor, bearer(alice))


async def test_forged_internal_cursors_are_400(client: Client, alice: dict[str, Any]) -> None:
    uid = alice["user"]["id"]
    await create(client, alice, name="Dana Lee")
    for cursor in PAIR_CURSORS:
        await _bad(client, "/internal/v1/changes", "after", cursor, service())
    for cursor in ID_CURSORS:
        await _bad(client, "/internal/v1/users", "after", cursor, service())
        await _bad(client, f"/internal/v1/users/{uid}/contacts", "after", cursor, service())
