"""Times far from now are refused where interactions come in, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create
from tests.contacts.test_internal import get, service

FAR = [
    "0001-01-01T00:00:00+01:00",  # converting it to UTC overflowed: a 500
    "9999-12-30T00:00:00Z",  # stored, then every later interaction on the contact was a 500
    "1899-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
]


@pytest.mark.parametrize("occurred_at", FAR)
async def test_far_occurred_at_is_a_422_on_both_routes(
    client: Client, alice: dict[str, Any], occurred_at: str
) -> None:
    """The public and the internal route refuse it, name the field, and store nothing."""
    uid = alice["user"]["id"]
    dana = await create(client, alice, name="Dana Lee")
    body = {"kind": "one_to_one", "occurred_at": occurred_at}
    public = f"/v1/contacts/{dana['id']}/interactions"
    internal = f"/internal/v1/users/{uid}/contacts/{dana['id']}/interactions"
    for path, headers in ((public, bearer(alice)), (internal, service())):
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == 422, (path, await resp.text())
        problem = await resp.json()
        assert problem["errors"][0]["field"] == "occurred_at"
        assert "1900-01-01" in problem["errors"][0]["message"]
    listed = await client.get(public, headers=bearer(alice))
    assert (await listed.json())["items"] == []
    contact = await get(client, f"/internal/v1/users/{uid}/contacts/{dana['id']}")
    assert contact["last_interaction_at"] is None
    # The contact still takes ordinary interactions.
    ok = {"kind": "call", "occurred_at": "2026-03-01T10:00:00Z"}
    assert (await client.post(public, json=ok, headers=bearer(alice))).status == 201
