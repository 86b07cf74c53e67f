"""One-off touchpoints the app adds: about one of the user's contacts (by id alone) or anyone."""

from __future__ import annotations

from shared.clock import ControllableClock
from tests.reminders.conftest import Fakes, MakeClient, sync, user_headers

DUE = "2026-03-05T12:00:00Z"


async def test_a_contact_id_alone_takes_the_contacts_name(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """With contact_id and no contact_name the touchpoint carries the contact's own name."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee", company="Lee Insurance")
    await sync(client)
    me = user_headers(clock, uid)
    body = {"contact_id": cid, "reason": "send the article", "due_at": DUE}
    resp = await client.post("/v1/touchpoints", json=body, headers=me)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert (created["contact_id"], created["contact_name"]) == (cid, "Dana Lee")


async def test_someone_must_be_named(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Neither contact_id nor contact_name, or empty ones, is a 422 and adds nothing."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    await sync(client)
    me = user_headers(clock, uid)
    for who in ({}, {"contact_id": ""}, {"contact_name": ""}, {"contact_name": None}):
        body = {**who, "reason": "call back", "due_at": DUE}
        resp = await client.post("/v1/touchpoints", json=body, headers=me)
        assert resp.status == 422, (who, await resp.text())
        assert resp.content_type == "application/problem+json"
    listed = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert listed["items"] == []
