"""The app's touchpoint API: a paged list (due, upcoming, by contact) and done/snooze/skip/delete,
with ETag/If-Match and Idempotency-Key, through the real reminders app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from services.reminders.keys import JOBS
from shared.clock import ControllableClock
from shared.web.keys import DB
from tests.reminders.conftest import START, Fakes, MakeClient, svc, sync, user_headers

Client = TestClient[web.Request, web.Application]


async def _one_off(client: Client, me: dict[str, str], name: str, due: str) -> dict[str, Any]:
    body = {"contact_name": name, "reason": "call back", "due_at": due}
    resp = await client.post("/v1/touchpoints", json=body, headers=me)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def _setup(make_client: MakeClient, fakes: Fakes) -> tuple[Client, str]:
    client = await make_client()
    uid = fakes.contacts.add_user()
    await sync(client)
    return client, uid


async def test_pages_walk_due_and_upcoming_with_a_cursor(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """view=due and view=upcoming split on now; pages of `limit` follow next_cursor to the end."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    due = [await _one_off(client, me, f"Due {i}", "2026-03-01T12:00:00Z") for i in range(5)]
    later = await _one_off(client, me, "Later", "2026-03-09T12:00:00Z")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "view=due&limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/v1/touchpoints?{query}", headers=me)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(tp["id"] for tp in due)  # same fire_at: id order, none twice
    upcoming = await (await client.get("/v1/touchpoints?view=upcoming", headers=me)).json()
    assert [item["id"] for item in upcoming["items"]] == [later["id"]]
    assert upcoming["items"][0]["etag"] == f'"{later["id"]}-1"'
    everything = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert len(everything["items"]) == 6


async def test_by_contact(make_client: MakeClient, fakes: Fakes, clock: ControllableClock) -> None:
    """contact_id keeps that contact's touchpoints only."""
    client, uid = await _setup(make_client, fakes)
    dana = fakes.contacts.add_contact(uid, "Dana Lee")
    fakes.contacts.add_contact(uid, "Sam Park")
    await sync(client)
    me = user_headers(clock, uid)
    page = await (await client.get(f"/v1/touchpoints?contact_id={dana}", headers=me)).json()
    # The cadence and the new-contact follow-up: Dana's only.
    assert page["items"]
    assert {item["contact_id"] for item in page["items"]} == {dana}


async def test_bad_queries_are_problems(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A forged cursor is a 400; an unknown view or a limit out of range is a 422."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    for query, status in (
        ("cursor=not-a-cursor", 400),
        ("cursor=WzEsMl0", 400),  # [1,2]: numbers, not (instant, id)
        ("cursor=W3siJGQiOiJ4In0sIngiXQ", 400),  # a date that is not milliseconds
        ("view=overdue", 422),
        ("limit=0", 422),
        ("limit=201", 422),
        ("colour=red", 422),
    ):
        resp = await client.get(f"/v1/touchpoints?{query}", headers=me)
        assert resp.status == status, (query, await resp.text())
        assert resp.content_type == "application/problem+json"


async def test_snooze_for_a_duration_and_until_an_instant(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """`for` takes the SMS grammar; `until` an instant; each change bumps the ETag."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    resp = await client.post(f"/v1/touchpoints/{tp['id']}:snooze", json={"for": "2w"}, headers=me)
    assert resp.status == 200, await resp.text()
    snoozed = await resp.json()
    assert snoozed["state"] == "snoozed"
    assert snoozed["fire_at"] == (START + timedelta(weeks=2)).isoformat().replace("+00:00", "Z")
    assert resp.headers["ETag"] == snoozed["etag"] == f'"{tp["id"]}-2"'
    body = {"until": "2026-04-01T09:00:00Z"}
    resp = await client.post(f"/v1/touchpoints/{tp['id']}:snooze", json=body, headers=me)
    assert (await resp.json())["fire_at"] == "2026-04-01T09:00:00Z"
    due = await (await client.get("/v1/touchpoints?view=due", headers=me)).json()
    assert due["items"] == []
    history = (await svc(client).repo.get_touchpoint(tp["id"]) or {})["history"]
    assert [h["state"] for h in history] == ["scheduled", "snoozed", "snoozed"]


async def test_snooze_refuses_bad_bodies(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Neither or both, an unreadable duration, the past, or over a year ahead: 422."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    for body in (
        {},
        {"for": "2w", "until": "2026-04-01T09:00:00Z"},
        {"for": "soonish"},
        {"for": "0d"},
        {"for": "13m"},
        {"until": "2026-03-01T00:00:00Z"},
        {"until": "2027-06-01T00:00:00Z"},
        {"until": "2026-04-01"},  # no time zone
        {"for": "2w", "extra": 1},
    ):
        resp = await client.post(f"/v1/touchpoints/{tp['id']}:snooze", json=body, headers=me)
        assert resp.status == 422, (body, await resp.text())
        assert resp.content_type == "application/problem+json"
    stored = await svc(client).repo.get_touchpoint(tp["id"])
    assert stored is not None
    assert stored["state"] == "scheduled"


async def test_if_match_stale_is_412_and_current_or_absent_acts(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A stale ETag is refused with 412 and changes nothing; the current one acts."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    url = f"/v1/touchpoints/{tp['id']}"
    first = await client.post(f"{url}:snooze", json={"for": "1d"}, headers=me)
    assert first.status == 200
    stale = {**me, "If-Match": tp["etag"]}
    resp = await client.post(f"{url}:skip", headers=stale)
    assert resp.status == 412, await resp.text()
    assert resp.content_type == "application/problem+json"
    resp = await client.delete(url, headers=stale)
    assert resp.status == 412
    current = {**me, "If-Match": first.headers["ETag"]}
    resp = await client.post(f"{url}:skip", headers=current)
    assert resp.status == 200
    assert (await resp.json())["state"] == "skipped"


async def test_idempotency_key_replays_the_first_answer(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A repeat with the same key replays; the same key with another body is 422."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    keyed = {**me, "Idempotency-Key": "snooze-1"}
    url = f"/v1/touchpoints/{tp['id']}:snooze"
    first = await client.post(url, json={"for": "3d"}, headers=keyed)
    clock.advance(timedelta(hours=1))
    again = await client.post(url, json={"for": "3d"}, headers=keyed)
    assert (first.status, again.status) == (200, 200)
    assert await again.json() == await first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    stored = await svc(client).repo.get_touchpoint(tp["id"])
    assert stored is not None
    assert stored["version"] == 2
    other = await client.post(url, json={"for": "4d"}, headers=keyed)
    assert other.status == 422
    done = f"/v1/touchpoints/{tp['id']}:done"
    key = {**me, "Idempotency-Key": "done-1"}
    assert (await client.post(done, headers=key)).status == 200
    replay = await client.post(done, headers=key)
    assert replay.status == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    # Without a key a second done is a conflict: the touchpoint is closed.
    assert (await client.post(done, headers=me)).status == 409


async def test_done_on_a_contact_logs_a_touch_and_restarts_the_cadence(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """As DONE by SMS: one interaction is logged through contacts; the cadence restarts."""
    client, uid = await _setup(make_client, fakes)
    dana = fakes.contacts.add_contact(
        uid, "Dana Lee", created_at=START - timedelta(days=90), last_interaction_at=None
    )
    await sync(client)
    me = user_headers(clock, uid)
    before = await svc(client).repo.get_touchpoint(f"cad:{uid}:{dana}")
    assert before is not None
    assert before["fire_at"].replace(tzinfo=None) <= START.replace(tzinfo=None)
    resp = await client.post(f"/v1/touchpoints/cad:{uid}:{dana}:done", headers=me)
    assert resp.status == 200, await resp.text()
    after = await resp.json()
    assert after["due_at"] > START.isoformat().replace("+00:00", "Z")
    logged = [i for i in fakes.contacts.interactions.values() if i["contact_id"] == dana]
    assert [(i["kind"], i["source"]) for i in logged] == [("message", "app")]


async def test_skip_a_cadence_restarts_it_without_logging(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """As SKIP by SMS: the next check-in counts from now; nothing is logged."""
    client, uid = await _setup(make_client, fakes)
    dana = fakes.contacts.add_contact(uid, "Dana Lee", created_at=START - timedelta(days=90))
    await sync(client)
    me = user_headers(clock, uid)
    resp = await client.post(f"/v1/touchpoints/cad:{uid}:{dana}:skip", headers=me)
    assert resp.status == 200, await resp.text()
    mirror = await svc(client).repo.get_contact(uid, dana)
    assert mirror is not None
    assert mirror["skip_base"] is not None
    assert not [i for i in fakes.contacts.interactions.values() if i["contact_id"] == dana]


async def test_delete_only_one_offs(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A one-off is deleted (204, then 404); a cadence touchpoint is a 409 and stays."""
    client, uid = await _setup(make_client, fakes)
    dana = fakes.contacts.add_contact(uid, "Dana Lee")
    await sync(client)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    resp = await client.delete(
        f"/v1/touchpoints/{tp['id']}", headers={**me, "If-Match": tp["etag"]}
    )
    assert resp.status == 204
    assert (await client.delete(f"/v1/touchpoints/{tp['id']}", headers=me)).status == 404
    assert (await client.post(f"/v1/touchpoints/{tp['id']}:done", headers=me)).status == 404
    resp = await client.delete(f"/v1/touchpoints/cad:{uid}:{dana}", headers=me)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert await svc(client).repo.get_touchpoint(f"cad:{uid}:{dana}") is not None


async def test_another_users_touchpoint_is_404(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Someone else's touchpoint cannot be read, acted on or deleted: 404, unchanged."""
    client, uid = await _setup(make_client, fakes)
    other = fakes.contacts.add_user("Eve")
    await sync(client)
    tp = await _one_off(client, user_headers(clock, uid), "Bob", "2026-03-01T12:00:00Z")
    eve = user_headers(clock, other)
    for method, suffix in (("POST", ":done"), ("POST", ":skip"), ("DELETE", "")):
        resp = await client.request(method, f"/v1/touchpoints/{tp['id']}{suffix}", headers=eve)
        assert resp.status == 404, (suffix, await resp.text())
    resp = await client.post(f"/v1/touchpoints/{tp['id']}:snooze", json={"for": "1d"}, headers=eve)
    assert resp.status == 404
    assert (await client.post("/v1/touchpoints/nope:done", headers=eve)).status == 404
    listed = await (await client.get("/v1/touchpoints", headers=eve)).json()
    assert listed["items"] == []
    stored = await svc(client).repo.get_touchpoint(tp["id"])
    assert stored is not None
    assert stored["state"] == "scheduled"
    assert stored["version"] == 1


async def test_actions_need_a_user_and_an_open_touchpoint(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """No token is a 401; acting on a closed touchpoint is a 409; a bad key is a 422."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    assert (await client.post(f"/v1/touchpoints/{tp['id']}:done")).status == 401
    bad_key = {**me, "Idempotency-Key": "has space"}
    assert (await client.post(f"/v1/touchpoints/{tp['id']}:done", headers=bad_key)).status == 422
    assert (await client.post(f"/v1/touchpoints/{tp['id']}:skip", headers=me)).status == 200
    for action in ("done", "skip"):
        resp = await client.post(f"/v1/touchpoints/{tp['id']}:{action}", headers=me)
        assert resp.status == 409, action
    resp = await client.post(f"/v1/touchpoints/{tp['id']}:snooze", json={"for": "1d"}, headers=me)
    assert resp.status == 409


async def test_openapi_describes_the_touchpoint_api(make_client: MakeClient) -> None:
    """The document lists the list's query, the actions' headers and their error statuses."""
    client = await make_client()
    doc = await (await client.get("/openapi.json")).json()
    listing = doc["paths"]["/v1/touchpoints"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["view", "contact_id", "limit", "cursor"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TouchpointPage"
    }
    for action in ("done", "snooze", "skip"):
        spec = doc["paths"][f"/v1/touchpoints/{{touchpoint_id}}:{action}"]["post"]
        names = [p["name"] for p in spec["parameters"]]
        assert names == ["touchpoint_id", "If-Match", "Idempotency-Key"], action
        assert set(spec["responses"]["200"]["headers"]) == {"ETag", "Idempotent-Replayed"}
        assert {"404", "409", "412", "422"} <= set(spec["responses"])
    delete = doc["paths"]["/v1/touchpoints/{touchpoint_id}"]["delete"]
    assert {"204", "404", "409", "412"} <= set(delete["responses"])
    assert "for" in doc["components"]["schemas"]["SnoozeIn"]["properties"]


async def test_the_daily_job_purges_expired_idempotency_records(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A key's record lives 24 hours; the daily reconcile removes older ones."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    keyed = {**me, "Idempotency-Key": "skip-1"}
    assert (await client.post(f"/v1/touchpoints/{tp['id']}:skip", headers=keyed)).status == 200
    records = client.app[DB]["idempotency"]
    assert await records.count_documents({}) == 1
    await client.app[JOBS].jobs["reconcile"]()
    assert await records.count_documents({}) == 1
    clock.advance(timedelta(hours=25))
    await client.app[JOBS].jobs["reconcile"]()
    assert await records.count_documents({}) == 0


async def test_a_change_between_check_and_write_is_refused(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """The writes are conditional on the version read: a concurrent change wins, nothing else."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    service = svc(client)
    read = await service.repo.get_touchpoint(tp["id"])
    assert read is not None
    now = service.now()
    assert await service.snooze_touchpoint(read, now + timedelta(days=1), now, version=1)
    assert not await service.close_touchpoint(read, "skipped", None, now, version=1)
    assert not await service.repo.delete_touchpoint(tp["id"], 1)
    stored = await service.repo.get_touchpoint(tp["id"])
    assert stored is not None
    assert (stored["state"], stored["version"]) == ("snoozed", 2)


async def test_a_touchpoint_stored_before_versions_is_version_0(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Its ETag names version 0; acting on it (with that If-Match) makes it version 1."""
    client, uid = await _setup(make_client, fakes)
    me = user_headers(clock, uid)
    tp = await _one_off(client, me, "Bob", "2026-03-01T12:00:00Z")
    await svc(client).repo.db.touchpoints.update_one({"_id": tp["id"]}, {"$unset": {"version": 1}})
    listed = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert listed["items"][0]["etag"] == f'"{tp["id"]}-0"'
    headers = {**me, "If-Match": f'"{tp["id"]}-0"'}
    resp = await client.post(f"/v1/touchpoints/{tp['id']}:skip", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["ETag"] == f'"{tp["id"]}-1"'
