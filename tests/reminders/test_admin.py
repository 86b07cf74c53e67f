"""Operator controls under /admin/v1, the user's /v1 endpoints, account deletion and export."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from services.reminders.main import create_app
from services.reminders.settings import RemindersSettings
from shared.clock import ControllableClock
from shared.mongo import INDEXES_READY
from tests.reminders.conftest import (
    START,
    Fakes,
    MakeClient,
    operator_headers,
    service_headers,
    svc,
    sync,
    user_headers,
)
from tests.support.settings import make_settings


async def test_admin_needs_the_operator_role(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    assert (await client.get("/admin/v1/tiers")).status == 401
    resp = await client.get("/admin/v1/tiers", headers=user_headers(clock, "u1"))
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    assert (await client.get("/admin/v1/tiers", headers=service_headers(clock))).status == 401
    resp = await client.put(
        "/admin/v1/pause", json={"paused": True}, headers=user_headers(clock, "u1")
    )
    assert resp.status == 403
    assert not (await svc(client).policy()).paused_all


async def test_tiers_change_live_with_audit(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Ann A", tier="A", last_interaction_at=START)
    await sync(client)
    ops = operator_headers(clock, "op-7")
    resp = await client.get("/admin/v1/tiers", headers=ops)
    assert (await resp.json())["tiers"]["A"] == {"ideal_days": 14, "max_days": 28}
    bad = {"tiers": {"A": {"ideal_days": 10, "max_days": 5}}}
    resp = await client.put("/admin/v1/tiers", json=bad, headers=ops)
    assert resp.status == 422
    assert (await svc(client).policy()).tiers["A"]["ideal_days"] == 14
    resp = await client.put(
        "/admin/v1/tiers",
        json={"tiers": {"A": {"ideal_days": 7, "max_days": 10, "x": 1}}},
        headers=ops,
    )
    assert resp.status == 422
    new = {
        "tiers": {"A": {"ideal_days": 7, "max_days": 10}, "B": {"ideal_days": 30, "max_days": 60}}
    }
    resp = await client.put("/admin/v1/tiers", json=new, headers=ops)
    assert resp.status == 200
    tp = await svc(client).repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert tp["due_at"] == START + timedelta(days=7)
    audit = await (await client.get("/admin/v1/audit", headers=ops)).json()
    [entry] = audit["items"]
    assert entry["actor"] == "op-7"
    assert entry["action"] == "policy.tiers"
    assert entry["before"]["A"]["ideal_days"] == 14
    assert entry["after"]["A"]["ideal_days"] == 7
    assert entry["at"] == "2026-03-02T06:00:00Z"


async def test_cadences_out_of_range_are_refused_and_products_stay_in_range(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Ann A", tier="A", cadence_days=30)
    fakes.contacts.add_contact(uid, "Bo B", tier="A", last_interaction_at=START)
    await sync(client)
    ops = operator_headers(clock)
    for days in (5e-324, 0.5, 3651):
        tiny = {"tiers": {"A": {"ideal_days": days, "max_days": 3650}}}
        resp = await client.put("/admin/v1/tiers", json=tiny, headers=ops)
        assert resp.status == 422, (days, await resp.text())
        assert resp.content_type == "application/problem+json"
        prefs = {"tier_days": {"A": days}}
        resp = await client.put("/v1/preferences", json=prefs, headers=user_headers(clock, uid))
        assert resp.status == 422, (days, await resp.text())
    # Each factor at its bound: the escalation is capped at ten years, never an overflow.
    wide = {"tiers": {"A": {"ideal_days": 1, "max_days": 3650}}}
    assert (await client.put("/admin/v1/tiers", json=wide, headers=ops)).status == 200
    prefs = {"tier_days": {"A": 3650}}
    resp = await client.put("/v1/preferences", json=prefs, headers=user_headers(clock, uid))
    assert resp.status == 200, await resp.text()
    tp = await svc(client).repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert tp["max_at"] - tp["due_at"] <= timedelta(days=3650)


async def test_follow_up_rules_are_data(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    ops = operator_headers(clock)
    rules = (await (await client.get("/admin/v1/follow-up-rules", headers=ops)).json())["rules"]
    assert {r["id"] for r in rules} >= {
        "after-121",
        "thank-referral",
        "referral-48h",
        "new-contact",
    }
    dup = {"rules": [rules[0], rules[0]]}
    assert (await client.put("/admin/v1/follow-up-rules", json=dup, headers=ops)).status == 422
    call_rule = {
        "id": "after-call",
        "trigger": "interaction",
        "kinds": ["call"],
        "delay_hours": 2,
        "window_hours": 24,
        "label": "send the notes from your call",
    }
    resp = await client.put("/admin/v1/follow-up-rules", json={"rules": [call_rule]}, headers=ops)
    assert resp.status == 200
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Cal C")
    one = fakes.contacts.log(uid, cid, {"kind": "one_to_one"})
    call = fakes.contacts.log(uid, cid, {"kind": "call"})
    await sync(client)
    repo = svc(client).repo
    assert await repo.get_touchpoint(f"fu:after-121:{one['id']}") is None
    assert await repo.get_touchpoint(f"fu:new-contact:{cid}") is None
    tp = await repo.get_touchpoint(f"fu:after-call:{call['id']}")
    assert tp is not None
    assert tp["due_at"] == START + timedelta(hours=2)


async def test_send_window_pause_schedule_nudges_and_dry_run(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    ops = operator_headers(clock)
    uid = fakes.contacts.add_user(tz="Europe/London")
    for n in range(3):
        fakes.contacts.add_contact(
            uid, f"P{n} Q", tier="A", last_interaction_at=START - timedelta(days=13 + n)
        )
    await sync(client)
    resp = await client.put("/admin/v1/send-window", json={"digest_time": "25:00"}, headers=ops)
    assert resp.status == 422
    window = {
        "digest_time": "07:30",
        "days": [0, 1, 2, 3, 4],
        "quiet_start": "20:00",
        "quiet_end": "07:00",
        "daily_budget": 2,
        "max_segments": 1,
    }
    resp = await client.put("/admin/v1/send-window", json=window, headers=ops)
    assert resp.status == 200
    user = await service.repo.get_user(uid)
    assert user is not None
    assert user["next_digest_at"].isoformat() == "2026-03-02T07:30:00+00:00"
    # Dry run: what would go out in the next 7 days, without sending.
    resp = await client.get("/admin/v1/dry-run?days=7", headers=ops)
    plan = await resp.json()
    assert fakes.notifier.sent() == []
    bodies = [d for d in plan["digests"] if d["user_id"] == uid]
    assert [d["send_at"] for d in bodies][:2] == ["2026-03-02T07:30:00Z", "2026-03-03T07:30:00Z"]
    assert all(d["segments"] == 1 for d in bodies)
    assert len(bodies[0]["items"]) == 2  # the daily budget
    assert (await client.get("/admin/v1/dry-run?days=30", headers=ops)).status == 422
    # Pause everything, then one user.
    resp = await client.put(
        "/admin/v1/pause", json={"paused": True, "reason": "incident"}, headers=ops
    )
    assert resp.status == 200
    clock.set(user["next_digest_at"], frozen=True)
    assert await service.sweep() == {"paused_all": 1}
    await client.put("/admin/v1/pause", json={"paused": False}, headers=ops)
    resp = await client.put(
        f"/admin/v1/users/{uid}/pause", json={"until": "2026-03-02T12:00:00"}, headers=ops
    )
    assert resp.status == 422  # no offset
    assert await service.sweep() == {"sent": 1}
    resp = await client.get("/admin/v1/nudges", headers=ops)
    [nudge] = (await resp.json())["items"]
    assert nudge["user_id"] == uid
    assert nudge["state"] == "recorded"
    assert nudge["items"] == 2
    assert nudge["segments"] == 1
    assert (await (await client.get("/admin/v1/nudges?status=failed", headers=ops)).json())[
        "items"
    ] == []
    schedule = await (await client.get(f"/admin/v1/users/{uid}/schedule", headers=ops)).json()
    assert schedule["preferences"]["digest_time"] == "07:30"
    assert schedule["preferences"]["next_digest_at"] == "2026-03-03T07:30:00Z"
    states = [tp["state"] for tp in schedule["touchpoints"] if tp["source"] == "cadence"]
    assert sorted(states) == ["nudged", "nudged", "scheduled"]
    assert schedule["touchpoints"][0]["history"]
    assert (await client.get("/admin/v1/users/nobody/schedule", headers=ops)).status == 404
    audit = await (await client.get("/admin/v1/audit", headers=ops)).json()
    assert [e["action"] for e in audit["items"]] == ["pause.all", "pause.all", "policy.window"]


async def test_job_timings_apply_without_restart_on_every_replica(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    a = await make_client(scheduler_enabled=True, timings_refresh_s=0.2)
    b = await make_client(scheduler_enabled=True, timings_refresh_s=0.2)
    ops = operator_headers(clock)
    for _ in range(50):
        if (await (await a.get("/admin/v1/jobs", headers=ops)).json())["running"] and (
            await (await b.get("/admin/v1/jobs", headers=ops)).json()
        )["running"]:
            break
        await asyncio.sleep(0.1)
    body = await (await a.get("/admin/v1/jobs", headers=ops)).json()
    assert body["running"]["sweep"] == 15.0
    assert (await a.put("/admin/v1/jobs", json={"sweep": 0.01}, headers=ops)).status == 422
    resp = await a.put("/admin/v1/jobs", json={"sweep": 0.5, "sync": 2}, headers=ops)
    assert resp.status == 200
    assert (await resp.json())["running"]["sweep"] == 0.5
    for _ in range(30):
        running = (await (await b.get("/admin/v1/jobs", headers=ops)).json())["running"]
        if running["sweep"] == 0.5:
            break
        await asyncio.sleep(0.1)
    assert running == {"sync": 2.0, "sweep": 0.5, "retry": 30.0, "reap": 60.0, "reconcile": 86400.0}
    # And the new interval is really used: the sweep job now runs several times a second.
    before = (await (await b.get("/admin/v1/jobs", headers=ops)).json())["runs"]["sweep"]
    await asyncio.sleep(1.6)
    after = (await (await b.get("/admin/v1/jobs", headers=ops)).json())["runs"]["sweep"]
    assert after - before >= 2
    # Each run is counted and timed for operators' dashboards.
    metrics = await (await b.get("/metrics")).text()
    assert 'touchbase_reminders_job_runs_total{job="sweep",result="ok"}' in metrics
    assert 'touchbase_reminders_job_duration_seconds_count{job="sweep"}' in metrics


async def test_user_endpoints(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user(tz="America/New_York")
    cid = fakes.contacts.add_contact(uid, "Dana Lee", last_interaction_at=START)
    me = user_headers(clock, uid)
    prefs = await (await client.get("/v1/preferences", headers=me)).json()
    assert prefs["time_zone"] == "America/New_York"
    assert prefs["quiet_start"] == "21:00"
    resp = await client.put("/v1/preferences", json={"time_zone": "Mars/Base"}, headers=me)
    assert resp.status == 422
    resp = await client.put(
        "/v1/preferences", json={"digest_time": "18:15", "days": [5, 6]}, headers=me
    )
    assert resp.status == 200
    prefs = await resp.json()
    assert prefs["digest_time"] == "18:15"
    assert prefs["next_digest_at"] == "2026-03-07T23:15:00Z"  # Saturday 18:15 EST
    resp = await client.post(
        "/v1/touchpoints",
        json={
            "contact_id": cid,
            "contact_name": "Dana Lee",
            "reason": "send the article",
            "due_at": "2026-03-05T12:00:00Z",
        },
        headers=me,
    )
    assert resp.status == 201
    created = await resp.json()
    upcoming = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert created["id"] in [i["id"] for i in upcoming["items"]]
    resp = await client.post(
        "/v1/touchpoints",
        json={"contact_name": "x", "reason": "y", "due_at": "tomorrow"},
        headers=me,
    )
    assert resp.status == 422
    # Another user's contact is as unknown as a contact that does not exist.
    other = fakes.contacts.add_user()
    theirs = fakes.contacts.add_contact(other, "Sam Ortiz")
    for contact_id in (theirs, "no-such-contact"):
        resp = await client.post(
            "/v1/touchpoints",
            json={
                "contact_id": contact_id,
                "contact_name": "Sam",
                "reason": "y",
                "due_at": "2026-03-05T12:00:00Z",
            },
            headers=me,
        )
        assert resp.status == 404, contact_id
    upcoming = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert len([i for i in upcoming["items"] if i["source"] == "oneoff"]) == 1
    # A service token is not a user.
    assert (await client.get("/v1/preferences", headers=service_headers(clock))).status == 401


async def test_account_deletion_and_export(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    other = fakes.contacts.add_user()
    fakes.contacts.add_contact(uid, "Dana Lee")
    fakes.contacts.add_contact(other, "Sam Lee")
    await sync(client)
    svc_h = service_headers(clock, "contacts")
    resp = await client.get(f"/internal/v1/users/{uid}/export", headers=svc_h)
    assert resp.status == 200
    data = await resp.json()
    assert data["user"]["_id"] == uid
    assert len(data["contacts"]) == 1
    assert len(data["touchpoints"]) >= 1
    assert (
        await client.get(f"/internal/v1/users/{uid}/export", headers=user_headers(clock, uid))
    ).status == 401
    assert (await client.delete(f"/internal/v1/users/{uid}", headers=svc_h)).status == 204
    assert (await client.get(f"/internal/v1/users/{uid}/export", headers=svc_h)).status == 404
    repo = svc(client).repo
    assert await repo.touchpoints_of(uid) == []
    assert await repo.touchpoints_of(other) != []


async def test_openapi_document_is_valid(make_client: MakeClient) -> None:
    from openapi_spec_validator import validate

    client = await make_client()
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    action = doc["components"]["schemas"]["ReplyAction"]
    assert "undone" in action["properties"]["kind"]["enum"]
    assert doc["paths"]["/internal/v1/replies"]["post"]["requestBody"]


async def test_dry_run_walks_every_user_in_id_order_up_to_the_limit(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    ops = operator_headers(clock)
    users = sorted(fakes.contacts.add_user(tz="Europe/London") for _ in range(4))
    for uid in users[:3]:  # the last user has nothing due
        for n in range(2):
            fakes.contacts.add_contact(
                uid, f"P{n} Q", tier="A", last_interaction_at=START - timedelta(days=20 + n)
            )
    await sync(client)
    # A touchpoint whose user is gone is skipped, not given to the next user.
    tps = await service.repo.open_touchpoints(users[0])
    stray = {**tps[0], "_id": "cad:0:x", "user_id": users[0][:-1] + "!"}
    await service.repo.bulk_touchpoints([stray])
    plan = await (await client.get("/admin/v1/dry-run?days=1", headers=ops)).json()
    assert plan["truncated"] is False
    planned = [d["user_id"] for d in plan["digests"]]
    assert sorted(set(planned)) == users[:3]
    assert all("cad:0:x" not in d["items"] for d in plan["digests"])
    # With a limit the walk stops there, users in id order, and says so.
    plan = await (await client.get("/admin/v1/dry-run?days=1&limit=1", headers=ops)).json()
    assert plan["truncated"] is True
    assert [d["user_id"] for d in plan["digests"]] == [users[0]]
    # One user's dry run.
    plan = await (
        await client.get(f"/admin/v1/dry-run?days=1&user_id={users[1]}", headers=ops)
    ).json()
    assert {d["user_id"] for d in plan["digests"]} == {users[1]}
    assert plan["truncated"] is False


async def test_role_changes_count_from_the_next_request(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    # The role is read from contacts where operator rights are used, not from the token, whose
    # claim is fixed for its lifetime: a grant or a revoke counts from the next request.
    client = await make_client()
    uid = fakes.contacts.add_user()
    as_networker, as_operator = user_headers(clock, uid), operator_headers(clock, uid)
    assert (await client.get("/admin/v1/tiers", headers=as_operator)).status == 403

    fakes.contacts.users[uid]["role"] = "operator"  # touchbase admin grant-operator
    assert (await client.get("/admin/v1/tiers", headers=as_networker)).status == 200
    resp = await client.put("/admin/v1/pause", json={"paused": True}, headers=as_networker)
    assert resp.status == 200

    fakes.contacts.users[uid]["role"] = "networker"  # ... --revoke
    resp = await client.put("/admin/v1/pause", json={"paused": False}, headers=as_operator)
    assert resp.status == 403
    assert (await svc(client).policy()).paused_all
    assert (await client.get("/admin/v1/tiers", headers=as_operator)).status == 403

    del fakes.contacts.users[uid]  # a deleted account has no role
    assert (await client.get("/admin/v1/tiers", headers=as_operator)).status == 403


async def test_admin_fails_closed_when_contacts_cannot_say(
    aiohttp_client: Any, mongodb_uri: str, db_name: str, fakes: Fakes, clock: ControllableClock
) -> None:
    # With contacts unreachable the role is unknown: the request fails, never trusts the token.
    settings = make_settings(
        RemindersSettings,
        mongodb_uri,
        db_name,
        contacts_url="http://127.0.0.1:9",
        notifier_url=fakes.notifier_url,
        scheduler_enabled=False,
    )
    app = create_app(settings, clock=clock)
    client = await aiohttp_client(app)
    await app[INDEXES_READY].wait()
    resp = await client.put(
        "/admin/v1/pause", json={"paused": True}, headers=operator_headers(clock)
    )
    assert resp.status == 502
    assert resp.content_type == "application/problem+json"
    assert not (await svc(client).policy()).paused_all
