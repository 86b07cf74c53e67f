"""The scorecard of a period, stage history, editing interactions, referral create headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import ControllableClock
from shared.web.keys import DB
from tests.contacts.conftest import Client, bearer
from tests.contacts.test_contacts import create
from tests.contacts.test_internal import read_feed


async def stats(client: Client, user: dict[str, Any], **params: str) -> dict[str, Any]:
    resp = await client.get("/v1/stats", params=params, headers=bearer(user))
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    result: dict[str, Any] = await resp.json()
    return result


async def log(client: Client, user: dict[str, Any], contact_id: str, **body: Any) -> Any:
    resp = await client.post(
        f"/v1/contacts/{contact_id}/interactions", json=body, headers=bearer(user)
    )
    assert resp.status == 201, await resp.text()
    return resp


async def refer(client: Client, user: dict[str, Any], **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/referrals", json=body, headers=bearer(user))
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def win(client: Client, user: dict[str, Any], ref_id: str, value: float, cur: str) -> None:
    resp = await client.patch(
        f"/v1/referrals/{ref_id}",
        json={"status": "won", "value": value, "currency": cur},
        headers=bearer(user),
    )
    assert resp.status == 200, await resp.text()


async def set_zone(client: Client, user: dict[str, Any], zone: str) -> None:
    resp = await client.patch("/v1/me", json={"time_zone": zone}, headers=bearer(user))
    assert resp.status == 200, await resp.text()


# --- periods ----------------------------------------------------------------------------------


async def test_periods_are_the_users_calendar_in_their_time_zone(
    client: Client, alice: dict[str, Any], clock: ControllableClock
) -> None:
    await set_zone(client, alice, "America/Los_Angeles")
    # Now is Monday 2026-03-02 01:00 in Los Angeles; DST starts there on Sunday 8 March.
    default = (await stats(client, alice))["scorecard"]
    assert (default["from"], default["to"]) == ("2026-03-01T08:00:00Z", "2026-04-01T07:00:00Z")
    assert (default["period"], default["time_zone"]) == ("month", "America/Los_Angeles")
    week = (await stats(client, alice, period="week"))["scorecard"]
    assert (week["from"], week["to"]) == ("2026-03-02T08:00:00Z", "2026-03-09T07:00:00Z")
    last_week = (await stats(client, alice, period="week", offset="-1"))["scorecard"]
    assert (last_week["from"], last_week["to"]) == ("2026-02-23T08:00:00Z", "2026-03-02T08:00:00Z")
    quarter = (await stats(client, alice, period="quarter"))["scorecard"]
    assert (quarter["from"], quarter["to"]) == ("2026-01-01T08:00:00Z", "2026-04-01T07:00:00Z")
    previous = (await stats(client, alice, period="quarter", offset="-1"))["scorecard"]
    assert (previous["from"], previous["to"]) == ("2025-10-01T07:00:00Z", "2026-01-01T08:00:00Z")
    february = (await stats(client, alice, period="month", offset="-1"))["scorecard"]
    assert (february["from"], february["to"]) == ("2026-02-01T08:00:00Z", "2026-03-01T08:00:00Z")
    year_ago = (await stats(client, alice, period="month", offset="-12"))["scorecard"]
    assert year_ago["from"] == "2025-03-01T08:00:00Z"

    # Late on 31 March in UTC is already April in Paris.
    await set_zone(client, alice, "Europe/Paris")
    clock.set(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), frozen=True)
    april = (await stats(client, alice, period="month"))["scorecard"]
    assert (april["from"], april["to"]) == ("2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z")

    explicit = (
        await stats(
            client, alice, **{"from": "2026-01-01T00:00:00+01:00", "to": "2026-02-01T00:00Z"}
        )
    )["scorecard"]
    assert (explicit["from"], explicit["to"], explicit["period"]) == (
        "2025-12-31T23:00:00Z",
        "2026-02-01T00:00:00Z",
        None,
    )


async def test_period_parameters_are_validated(client: Client, alice: dict[str, Any]) -> None:
    cases: list[tuple[dict[str, str], str]] = [
        ({"from": "2026-01-01T00:00:00Z"}, "to"),
        ({"to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"}, "from"),  # naive
        ({"from": "1899-12-31T00:00:00Z", "to": "1900-01-02T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2200-01-02T00:00:00Z"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "to"),  # empty
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "to"),  # backwards
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),  # too long
        ({"from": "yesterday", "to": "2026-01-01T00:00:00Z"}, "from"),
        (
            {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z", "period": "week"},
            "period",
        ),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z", "offset": "-1"}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"period": "year"}, "period"),
        ({"period": "week", "offset": "1"}, "offset"),  # the future has no scorecard
        ({"period": "week", "offset": "-601"}, "offset"),
        ({"period": "week", "offset": "x"}, "offset"),
        ({"period": "quarter", "offset": "-600"}, "offset"),  # would start in 1876
        ({"period": ["week", "month"]}, "period"),  # type: dict[str, Any]
        ({"since": "2026-01-01T00:00:00Z"}, "since"),
    ]
    for params, field in cases:
        query = [(k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)]
        resp = await client.get("/v1/stats", params=query, headers=bearer(alice))
        body = await problem(resp, 422)
        assert field in [e["field"] for e in body["errors"]], (params, body)
    # A calendar year fits, leap year included.
    year = await stats(client, alice, **{"from": "2024-01-01T00:00Z", "to": "2025-01-01T00:00Z"})
    assert year["scorecard"]["to"] == "2025-01-01T00:00:00Z"
    resp = await client.get("/v1/stats", params={"period": "week"})
    assert resp.status == 401


# --- numbers ----------------------------------------------------------------------------------


async def test_scorecard_counts_the_period_and_keeps_a_ledger_per_contact(
    client: Client, alice: dict[str, Any], bob: dict[str, Any], clock: ControllableClock
) -> None:
    await set_zone(client, alice, "UTC")
    dana = (await create(client, alice, name="Dana Lee"))["id"]
    sam = (await create(client, alice, name="Sam Ortiz"))["id"]
    kim = (await create(client, alice, name="Kim Park"))["id"]
    # Before the period (February): counted in February only.
    await log(client, alice, dana, kind="one_to_one", occurred_at="2026-02-20T10:00:00Z")
    clock.set(datetime(2026, 2, 27, 12, 0, tzinfo=UTC), frozen=True)
    old = await refer(client, alice, direction="given", contact_id=dana)
    # In March.
    clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC), frozen=True)
    await log(client, alice, dana, kind="one_to_one", occurred_at="2026-03-01T00:00:00Z")
    await log(client, alice, dana, kind="one_to_one")
    await log(client, alice, sam, kind="one_to_one")
    await log(client, alice, sam, kind="call")
    await log(client, alice, kim, kind="note")
    given = await refer(client, alice, direction="given", contact_id=dana)
    await refer(client, alice, direction="given", contact_id=dana)
    received = await refer(client, alice, direction="received", contact_id=sam)
    other = await refer(client, alice, direction="received", contact_id=sam)
    await win(client, alice, given["id"], 1200.1, "USD")
    await win(client, alice, old["id"], 300.2, "USD")  # created in February, won in March
    await win(client, alice, received["id"], 500, "EUR")
    await win(client, alice, other["id"], 0.2, "EUR")
    # Bob's numbers never show in Alice's scorecard.
    bobs = (await create(client, bob, name="Someone"))["id"]
    await log(client, bob, bobs, kind="one_to_one")
    await refer(client, bob, direction="given", contact_id=bobs)

    card = (await stats(client, alice, period="month"))["scorecard"]
    assert card["one_to_ones"] == 3
    assert card["interactions_by_kind"] == {"call": 1, "note": 1, "one_to_one": 3}
    assert (card["referrals_given"], card["referrals_received"]) == (2, 2)
    assert card["closed_business"] == {
        "given": {"USD": 1500.3},
        "received": {"EUR": 500.2},
    }
    assert card["ledger"] == [
        {
            "contact_id": dana,
            "name": "Dana Lee",
            "deleted": False,
            "one_to_ones": 2,
            "referrals_given": 2,
            "referrals_received": 0,
            "closed_business": {"given": {"USD": 1500.3}, "received": {}},
        },
        {
            "contact_id": sam,
            "name": "Sam Ortiz",
            "deleted": False,
            "one_to_ones": 1,
            "referrals_given": 0,
            "referrals_received": 2,
            "closed_business": {"given": {}, "received": {"EUR": 500.2}},
        },
    ]
    february = (await stats(client, alice, period="month", offset="-1"))["scorecard"]
    assert (february["one_to_ones"], february["referrals_given"]) == (1, 1)
    assert february["closed_business"] == {"given": {}, "received": {}}
    assert [e["contact_id"] for e in february["ledger"]] == [dana]

    # A deleted contact stays in the ledger, marked as such.
    resp = await client.delete(f"/v1/contacts/{sam}", headers=bearer(alice))
    assert resp.status == 204
    card = (await stats(client, alice, period="month"))["scorecard"]
    assert [(e["name"], e["deleted"]) for e in card["ledger"]] == [
        ("Dana Lee", False),
        ("Sam Ortiz", True),
    ]
    # The overall numbers are still there.
    overall = await stats(client, alice)
    assert overall["referrals"]["won_value_by_currency"] == {"USD": 1500.3, "EUR": 500.2}
    # An empty span is all zeros.
    empty = await stats(client, alice, **{"from": "2025-01-01T00:00Z", "to": "2025-02-01T00:00Z"})
    assert empty["scorecard"]["ledger"] == []
    assert empty["scorecard"]["one_to_ones"] == 0

    bobs_card = (await stats(client, bob, period="month"))["scorecard"]
    assert (bobs_card["one_to_ones"], bobs_card["referrals_given"]) == (1, 1)
    assert [e["contact_id"] for e in bobs_card["ledger"]] == [bobs]


async def test_closed_business_needs_an_iso_4217_currency(
    client: Client, alice: dict[str, Any]
) -> None:
    dana = (await create(client, alice, name="Dana Lee"))["id"]
    ref = await refer(client, alice, direction="received", contact_id=dana)
    for currency in ("XYZ", "usd", "US", "XAU", 840):
        resp = await client.patch(
            f"/v1/referrals/{ref['id']}",
            json={"status": "won", "value": 10, "currency": currency},
            headers=bearer(alice),
        )
        body = await problem(resp, 422)
        assert [e["field"] for e in body["errors"]] == ["currency"]
    got = await (await client.get(f"/v1/referrals/{ref['id']}", headers=bearer(alice))).json()
    assert (got["status"], got["currency"]) == ("open", None)
    await win(client, alice, ref["id"], 10, "JPY")


# --- stage history ----------------------------------------------------------------------------


async def test_stage_changes_keep_a_history_with_dates(
    client: Client, alice: dict[str, Any], bob: dict[str, Any], clock: ControllableClock
) -> None:
    contact = await create(client, alice, name="Dana Lee")
    cid = contact["id"]
    path = f"/v1/contacts/{cid}"
    for stage in ("like", "like", "trust", "referral_partner"):
        clock.advance(timedelta(days=7))
        got = await client.get(path, headers=bearer(alice))
        resp = await client.patch(
            path, json={"stage": stage}, headers={**bearer(alice), "If-Match": got.headers["ETag"]}
        )
        assert resp.status == 200, await resp.text()
    # Another change that is not a stage, and a refused stage change, leave no record.
    await client.patch(path, json={"company": "Lee Insurance"}, headers=bearer(alice))
    resp = await client.patch(
        path, json={"stage": "know"}, headers={**bearer(alice), "If-Match": '"stale-1"'}
    )
    await problem(resp, 412)
    resp = await client.patch(path, json={"stage": None}, headers=bearer(alice))
    await problem(resp, 422)

    resp = await client.get(f"{path}/stages", headers=bearer(alice))
    assert resp.status == 200
    history = (await resp.json())["items"]
    assert [(h["previous"], h["stage"], h["at"]) for h in history] == [
        (None, "know", "2026-03-02T09:00:00Z"),
        ("know", "like", "2026-03-09T09:00:00Z"),
        ("like", "trust", "2026-03-23T09:00:00Z"),
        ("trust", "referral_partner", "2026-03-30T09:00:00Z"),
    ]
    assert all(h["contact_id"] == cid for h in history)

    # Paged, oldest first.
    first = await (await client.get(f"{path}/stages?limit=3", headers=bearer(alice))).json()
    rest = await (
        await client.get(
            f"{path}/stages", params={"limit": "3", "cursor": first["next"]}, headers=bearer(alice)
        )
    ).json()
    assert [h["id"] for h in first["items"] + rest["items"]] == [h["id"] for h in history]
    assert rest["next"] is None
    resp = await client.get(f"{path}/stages", params={"cursor": "bogus"}, headers=bearer(alice))
    await problem(resp, 400)
    resp = await client.get(f"{path}/stages", params={"limit": "0"}, headers=bearer(alice))
    await problem(resp, 422)

    # A contact created higher on the ladder starts there.
    partner = await create(client, alice, name="Sam Ortiz", stage="trust")
    items = (
        await (
            await client.get(f"/v1/contacts/{partner['id']}/stages", headers=bearer(alice))
        ).json()
    )["items"]
    assert [(h["previous"], h["stage"]) for h in items] == [(None, "trust")]

    # Another user's contact, or none at all, is a 404.
    resp = await client.get(f"{path}/stages", headers=bearer(bob))
    await problem(resp, 404)
    resp = await client.get(f"/v1/contacts/{'0' * 32}/stages", headers=bearer(alice))
    await problem(resp, 404)
    # A deleted contact keeps its history; the export carries it.
    assert (await client.delete(path, headers=bearer(alice))).status == 204
    resp = await client.get(f"{path}/stages", headers=bearer(alice))
    assert len((await resp.json())["items"]) == 4
    export = await (await client.get("/v1/me/export", headers=bearer(alice))).json()
    assert len(export["stage_changes"]) == 5


# --- editing interactions ---------------------------------------------------------------------


async def test_interactions_are_edited_with_if_match_and_the_feed_carries_it(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    cid = (await create(client, alice, name="Dana Lee", tier="A"))["id"]
    resp = await log(
        client, alice, cid, kind="call", occurred_at="2026-03-01T10:00:00Z", notes="quick call"
    )
    created = await resp.json()
    iid = created["id"]
    assert resp.headers["Location"] == f"/v1/interactions/{iid}"
    etag = resp.headers["ETag"]
    assert etag == f'"{iid}-1"'
    assert created["updated_at"] == created["created_at"]
    path = f"/v1/interactions/{iid}"

    got = await client.get(path, headers=bearer(alice))
    assert (got.status, got.headers["ETag"]) == (200, etag)
    assert (await got.json())["notes"] == "quick call"
    resp = await client.get(path, headers={**bearer(alice), "If-None-Match": etag})
    assert resp.status == 304

    # Refused edits change nothing.
    for body, field in (
        ({"kind": None}, "kind"),
        ({"occurred_at": None}, "occurred_at"),
        ({"kind": "lunch"}, "kind"),
        ({"occurred_at": "2026-03-01T10:00:00"}, "occurred_at"),
        ({"occurred_at": "2026-03-05T10:00:00Z"}, "occurred_at"),  # more than a day ahead
        ({"occurred_at": "1899-01-01T00:00:00Z"}, "occurred_at"),
        ({"source": "sms"}, "source"),
        ({"contact_id": cid}, "contact_id"),
        ({"notes": "x" * 5001}, "notes"),
        ({"next_action": "bad\x00"}, "next_action"),
    ):
        resp = await client.patch(path, json=body, headers=bearer(alice))
        problem_body = await problem(resp, 422)
        assert [e["field"] for e in problem_body["errors"]] == [field], body
    resp = await client.patch(
        path, json={"notes": "changed"}, headers={**bearer(alice), "If-Match": f'"{iid}-7"'}
    )
    await problem(resp, 412)
    resp = await client.patch(path, json={"notes": "changed"}, headers=bearer(bob))
    await problem(resp, 404)
    resp = await client.delete(path, headers=bearer(bob))
    await problem(resp, 404)
    unchanged = await (await client.get(path, headers=bearer(alice))).json()
    assert unchanged == created

    feed = await read_feed(client)
    # The edit: a 1-2-1 a day later, with an agreed next step.
    resp = await client.patch(
        path,
        json={"kind": "one_to_one", "occurred_at": "2026-03-02T08:00:00Z", "next_action": "intro"},
        headers={**bearer(alice), "If-Match": etag},
    )
    assert resp.status == 200, await resp.text()
    edited = await resp.json()
    assert resp.headers["ETag"] == f'"{iid}-2"'
    assert (edited["kind"], edited["occurred_at"]) == ("one_to_one", "2026-03-02T08:00:00Z")
    assert (edited["next_action"], edited["next_action_agreed"]) == ("intro", True)
    assert (edited["notes"], edited["created_at"]) == ("quick call", created["created_at"])
    contact = await (await client.get(f"/v1/contacts/{cid}", headers=bearer(alice))).json()
    assert contact["interactions_by_kind"] == {"one_to_one": 1}
    assert contact["last_interaction_at"] == "2026-03-02T08:00:00Z"
    assert contact["due_at"].startswith("2026-03-16")
    later = await read_feed(client, feed["next"])
    entities = {(c["kind"], c["entity_id"]): c for c in later["changes"]}
    assert entities[("interaction", iid)]["entity"]["kind"] == "one_to_one"
    assert entities[("interaction", iid)]["op"] == "upsert"
    assert entities[("contact", cid)]["entity"]["last_interaction_at"] == "2026-03-02T08:00:00Z"

    # Null clears a note; a blank next action is none agreed; an empty patch changes nothing.
    resp = await client.patch(
        path, json={"notes": None, "next_action": "  "}, headers=bearer(alice)
    )
    cleared = await resp.json()
    assert (cleared["notes"], cleared["next_action"], cleared["next_action_agreed"]) == (
        None,
        None,
        False,
    )
    resp = await client.patch(path, json={}, headers=bearer(alice))
    assert resp.headers["ETag"] == f'"{iid}-3"'

    # Deleting honours If-Match too.
    resp = await client.delete(path, headers={**bearer(alice), "If-Match": etag})
    await problem(resp, 412)
    resp = await client.delete(path, headers={**bearer(alice), "If-Match": f'"{iid}-3"'})
    assert resp.status == 204
    await problem(await client.get(path, headers=bearer(alice)), 404)
    await problem(await client.patch(path, json={"notes": "x"}, headers=bearer(alice)), 404)
    contact = await (await client.get(f"/v1/contacts/{cid}", headers=bearer(alice))).json()
    assert (contact["interaction_count"], contact["last_interaction_at"]) == (0, None)


async def test_interactions_logged_before_versions_can_be_edited(
    client: Client, alice: dict[str, Any]
) -> None:
    cid = (await create(client, alice, name="Dana Lee"))["id"]
    iid = (await (await log(client, alice, cid, kind="call")).json())["id"]
    await client.app[DB]["interactions"].update_one(
        {"_id": iid}, {"$unset": {"version": "", "updated_at": ""}}
    )
    path = f"/v1/interactions/{iid}"
    got = await client.get(path, headers=bearer(alice))
    assert got.headers["ETag"] == f'"{iid}-1"'
    resp = await client.patch(
        path, json={"notes": "later"}, headers={**bearer(alice), "If-Match": f'"{iid}-1"'}
    )
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] == f'"{iid}-2"'


# --- referral create headers ------------------------------------------------------------------


async def test_referral_create_answers_etag_and_location(
    client: Client, alice: dict[str, Any]
) -> None:
    cid = (await create(client, alice, name="Dana Lee"))["id"]
    headers = {**bearer(alice), "Idempotency-Key": "ref-1"}
    body = {"direction": "given", "contact_id": cid, "for_name": "Pat"}
    resp = await client.post("/v1/referrals", json=body, headers=headers)
    assert resp.status == 201
    ref = await resp.json()
    assert resp.headers["Location"] == f"/v1/referrals/{ref['id']}"
    assert resp.headers["ETag"] == f'"{ref["id"]}-1"'
    replay = await client.post("/v1/referrals", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (replay.headers["Location"], replay.headers["ETag"]) == (
        resp.headers["Location"],
        resp.headers["ETag"],
    )
    got = await client.get(resp.headers["Location"], headers=bearer(alice))
    assert got.headers["ETag"] == resp.headers["ETag"]
    resp = await client.patch(
        f"/v1/referrals/{ref['id']}",
        json={"status": "contacted"},
        headers={**bearer(alice), "If-Match": resp.headers["ETag"]},
    )
    assert resp.status == 200
    # A refused create has neither header.
    resp = await client.post(
        "/v1/referrals", json={"direction": "given", "contact_id": "0" * 32}, headers=bearer(alice)
    )
    await problem(resp, 422)
    assert "Location" not in resp.headers
    assert "ETag" not in resp.headers


async def test_account_deletion_removes_the_stage_history(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    cid = (await create(client, alice, name="Dana Lee"))["id"]
    await client.patch(f"/v1/contacts/{cid}", json={"stage": "trust"}, headers=bearer(alice))
    await create(client, bob, name="Someone")
    stages = client.app[DB]["stage_changes"]
    alice_id, bob_id = alice["user"]["id"], bob["user"]["id"]
    assert await stages.count_documents({"user_id": alice_id}) == 2
    resp = await client.delete("/v1/me", headers=bearer(alice))
    assert resp.status == 204
    assert await stages.count_documents({"user_id": alice_id}) == 0
    assert await stages.count_documents({"user_id": bob_id}) == 1
