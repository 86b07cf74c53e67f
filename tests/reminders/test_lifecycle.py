"""Touchpoints close when their purpose is met: referrals, 1-2-1 follow-ups, expiry, birthdays,
the bounded wait of every due item, repeated reply items and undelivered digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient

from services.reminders.service import RemindersService
from services.reminders.sync import ChangeFeedConsumer
from shared.clock import ControllableClock
from tests.reminders.conftest import (
    START,
    Fakes,
    MakeClient,
    operator_headers,
    service_headers,
    svc,
    sync,
)

Client = TestClient[web.Request, web.Application]


async def _digest(service: RemindersService, clock: ControllableClock, uid: str) -> str | None:
    """Move to the user's next digest time, sweep, and return the body recorded (if any)."""
    user = await service.repo.get_user(uid)
    assert user is not None
    if user["next_digest_at"] < clock.now():
        await service.reschedule_all()  # the clock moved past windows nobody swept
        user = await service.repo.get_user(uid)
        assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    await service.sweep()
    claims = await service.repo.list_claims(uid, "recorded", 1)
    if not claims or claims[0]["created_at"] != clock.now():
        return None
    return str(claims[0]["body"])


async def _state(service: RemindersService, tp_id: str) -> str:
    tp = await service.repo.get_touchpoint(tp_id)
    assert tp is not None, tp_id
    return str(tp["state"])


# -- 1. referrals ----------------------------------------------------------------------------------
async def test_referral_won_or_lost_closes_its_follow_ups(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee", last_interaction_at=START)
    won = fakes.contacts.add_referral(uid, cid, "given")
    lost = fakes.contacts.add_referral(uid, cid, "given")
    await sync(client)
    for rid in (won, lost):
        assert await _state(service, f"fu:referral-48h:{rid}") == "scheduled"
        assert await _state(service, f"fu:referral-14d:{rid}") == "scheduled"
    clock.advance(timedelta(days=1))
    fakes.contacts.move_referral(won, "contacted")
    await sync(client)
    assert await _state(service, f"fu:referral-48h:{won}") == "scheduled"  # not closed yet
    fakes.contacts.move_referral(won, "won")
    fakes.contacts.move_referral(lost, "lost")
    await sync(client)
    for rid in (won, lost):
        for rule in ("referral-48h", "referral-14d"):
            tp = await service.repo.get_touchpoint(f"fu:{rule}:{rid}")
            assert tp is not None
            assert tp["state"] == "done"
            assert tp["history"][-1]["why"].startswith("referral ")
    # A given referral that is won starts nothing new; the closed ones never reach a digest.
    assert await service.repo.get_touchpoint(f"fu:thank-business:{won}") is None
    clock.advance(timedelta(days=2))
    body = await _digest(service, clock, uid)
    assert body is None or "referral" not in body
    # A replay of the whole feed does not reopen them.
    await service.repo.set_cursor("", clock.now())
    await sync(client)
    assert await _state(service, f"fu:referral-14d:{won}") == "done"


async def test_won_referral_given_to_you_starts_a_thank_you(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Sam Park", last_interaction_at=START)
    rid = fakes.contacts.add_referral(uid, cid, "received")
    lost = fakes.contacts.add_referral(uid, cid, "received")
    await sync(client)
    assert await _state(service, f"fu:thank-referral:{rid}") == "scheduled"
    assert await service.repo.get_touchpoint(f"fu:thank-business:{rid}") is None
    clock.advance(timedelta(days=5))
    fakes.contacts.move_referral(rid, "won")
    fakes.contacts.move_referral(lost, "lost")
    await sync(client)
    thanks = await service.repo.get_touchpoint(f"fu:thank-business:{rid}")
    assert thanks is not None
    assert thanks["state"] == "scheduled"
    assert thanks["due_at"] == clock.now()
    assert thanks["reason"] == "thank them for the closed business"
    assert await service.repo.get_touchpoint(f"fu:thank-business:{lost}") is None
    body = await _digest(service, clock, uid)
    assert body is not None
    assert "Sam Park: thank them for the closed business" in body
    # The rule is data: an operator can turn it off.
    resp = await client.get("/admin/v1/follow-up-rules", headers=operator_headers(clock))
    rules = (await resp.json())["rules"]
    rule = next(r for r in rules if r["id"] == "thank-business")
    assert rule["on_status"] == "won"
    assert rule["direction"] == "received"


# -- 2. 1-2-1 follow-ups ---------------------------------------------------------------------------
async def test_later_interaction_closes_one_to_one_follow_ups(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee", last_interaction_at=START)
    other = fakes.contacts.add_contact(uid, "Sam Park", last_interaction_at=START)
    await sync(client)
    meeting = fakes.contacts.log(uid, cid, {"kind": "one_to_one", "next_action": "send intro"})
    await sync(client)
    after, agreed = f"fu:after-121:{meeting['id']}", f"fu:agreed-action:{meeting['id']}"
    assert await _state(service, after) == "scheduled"
    # A note, an interaction with someone else and one backdated before the 1-2-1 close nothing.
    clock.advance(timedelta(hours=2))
    fakes.contacts.log(uid, cid, {"kind": "note", "notes": "likes golf"})
    fakes.contacts.log(uid, other, {"kind": "call"})
    early = (clock.now() - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    fakes.contacts.log(uid, cid, {"kind": "call", "occurred_at": early})
    await sync(client)
    assert await _state(service, after) == "scheduled"
    assert await _state(service, agreed) == "scheduled"
    # A message the next day is the follow-up; it is no check on what was agreed.
    clock.advance(timedelta(hours=20))
    fakes.contacts.log(uid, cid, {"kind": "message"})
    await sync(client)
    assert await _state(service, after) == "done"
    assert await _state(service, agreed) == "scheduled"
    # A call a few days later is.
    clock.advance(timedelta(days=4))
    fakes.contacts.log(uid, cid, {"kind": "call"})
    await sync(client)
    tp = await service.repo.get_touchpoint(agreed)
    assert tp is not None
    assert tp["state"] == "done"
    assert tp["history"][-1]["why"] == "later call logged"
    # The rules say which kinds close which follow-ups.
    resp = await client.get("/admin/v1/follow-up-rules", headers=operator_headers(clock))
    rules = {r["id"]: r for r in (await resp.json())["rules"]}
    assert "message" in rules["after-121"]["closed_by_kinds"]
    assert "message" not in rules["agreed-action"]["closed_by_kinds"]
    assert "call" in rules["agreed-action"]["closed_by_kinds"]


async def test_a_new_one_to_one_closes_the_previous_ones_follow_up_but_not_its_own(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee", last_interaction_at=START)
    first = fakes.contacts.log(uid, cid, {"kind": "coffee"})
    await sync(client)
    clock.advance(timedelta(hours=6))
    second = fakes.contacts.log(uid, cid, {"kind": "one_to_one"})
    await sync(client)
    assert await _state(service, f"fu:after-121:{first['id']}") == "done"
    assert await _state(service, f"fu:after-121:{second['id']}") == "scheduled"
    # Replaying the feed keeps it so.
    await service.repo.set_cursor("", clock.now())
    await sync(client)
    assert await _state(service, f"fu:after-121:{second['id']}") == "scheduled"


# -- 3. bounded wait and expiry --------------------------------------------------------------------
async def test_every_due_item_reaches_a_digest_within_three(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Escalated items left unanswered come back every digest; they must not starve the rest."""
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    await service.ensure_user(uid)
    await service.repo.update_user(uid, {"prefs": {"daily_budget": 1}})
    # Escalated: tier A, 40 days since the last touch (maximum 28).
    fakes.contacts.add_contact(
        uid, "Esc Alpha", tier="A", last_interaction_at=START - timedelta(days=40)
    )
    reconnect = fakes.contacts.add_contact(
        uid, "Rae Overdue", tier="B", last_interaction_at=START - timedelta(days=33)
    )
    await sync(client)
    bodies = []
    for _ in range(3):
        body = await _digest(service, clock, uid)
        assert body is not None
        bodies.append(body)
    assert "Esc Alpha" in bodies[0]
    assert any("Rae Overdue" in body for body in bodies), bodies
    tp = await service.repo.get_touchpoint(f"cad:{uid}:{reconnect}")
    assert tp is not None
    assert tp["nudge_count"] == 1
    assert tp.get("waits", 0) == 0


async def test_a_follow_up_past_its_purpose_expires(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee", last_interaction_at=START)
    meeting = fakes.contacts.log(uid, cid, {"kind": "one_to_one"})
    await sync(client)
    after = f"fu:after-121:{meeting['id']}"
    tp = await service.repo.get_touchpoint(after)
    assert tp is not None
    assert tp["expires_at"] == START + timedelta(days=1, hours=96)
    clock.set(START + timedelta(days=6), frozen=True)
    body = await _digest(service, clock, uid)
    assert body is None or "follow up after your 1-2-1" not in body
    assert await _state(service, after) == "expired"


# -- 4. birthdays ----------------------------------------------------------------------------------
async def _birthday_lines(
    client: Client, fakes: Fakes, clock: ControllableClock, birthday: str, days: int
) -> list[tuple[str, bool]]:
    service = svc(client)
    uid = fakes.contacts.add_user(tz="America/New_York")
    fakes.contacts.add_contact(uid, "Bea Born", birthday=birthday, last_interaction_at=START)
    await sync(client)
    seen = []
    for _ in range(days):
        body = await _digest(service, clock, uid)
        local = clock.now().astimezone(ZoneInfo("America/New_York"))
        seen.append((local.date().isoformat(), bool(body and "Bea Born: birthday today" in body)))
        # The daily reconcile runs after the digest.
        await ChangeFeedConsumer(service, 100).reconcile()
    return seen


async def test_leap_day_birthday_is_nudged_once_on_28_february(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    clock.set(datetime(2027, 2, 26, 12, tzinfo=UTC), frozen=True)
    client = await make_client()
    for birthday in ("02-29", "1996-02-29"):
        seen = await _birthday_lines(client, fakes, clock, birthday, 5)
        assert [day for day, said in seen if said] == ["2027-02-28"], (birthday, seen)
        clock.set(datetime(2027, 2, 26, 12, tzinfo=UTC), frozen=True)


async def test_birthday_is_said_only_on_its_day_even_when_reconcile_runs_after_the_digest(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    seen = await _birthday_lines(client, fakes, clock, "03-04", 5)
    assert [day for day, said in seen if said] == ["2026-03-04"], seen
    # Next year's is scheduled, once.
    service = svc(client)
    uid = next(iter(fakes.contacts.users))
    open_bd = [tp for tp in await service.repo.open_touchpoints(uid) if tp["source"] == "birthday"]
    assert [tp["due_at"].date().isoformat() for tp in open_bd] == ["2027-03-04"]


# -- 5. repeated items in one reply ----------------------------------------------------------------
async def _say(client: Client, clock: ControllableClock, uid: str, text: str) -> dict[str, Any]:
    resp = await client.post(
        "/internal/v1/replies",
        json={"user_id": uid, "from": "+15550000000", "text": text, "message_sid": "SM" + "1" * 30},
        headers=service_headers(clock),
    )
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_repeated_items_in_one_reply_act_once(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user(phone="+15550000000")
    dana = fakes.contacts.add_contact(
        uid, "Dana Lee", birthday="03-02", last_interaction_at=START - timedelta(days=45)
    )
    sam = fakes.contacts.add_contact(
        uid, "Sam Park", last_interaction_at=START - timedelta(days=40)
    )
    await sync(client)
    await service.add_one_off(uid, dana, "Dana Lee", "send the deck", START)
    body = await _digest(service, clock, uid)
    assert body is not None
    user = await service.repo.get_user(uid)
    assert user is not None
    items = user["last_digest"]["items"]
    dana_items = [i["n"] for i in items if i["contact_id"] == dana]
    sam_item = next(i["n"] for i in items if i["contact_id"] == sam)
    assert len(dana_items) == 3
    numbers = [*dana_items, sam_item, *dana_items, dana_items[0]]
    answer = await _say(client, clock, uid, "DONE " + " ".join(map(str, numbers)))
    logged = list(fakes.contacts.interactions.values())
    assert sorted(i["contact_id"] for i in logged) == sorted([dana, sam]), answer
    assert answer["reply"].count("Dana Lee") == 1, answer
    assert len([a for a in answer["actions"] if a["contact_id"] == dana]) == 1
    # Every item named is closed all the same: the birthday and the one-off done, the cadence
    # reset by the one touch logged.
    for tp in await service.repo.touchpoints_of(uid):
        if tp["contact_id"] == dana and tp["source"] in ("birthday", "oneoff"):
            assert tp["state"] == "done", tp
    cad = await service.repo.get_touchpoint(f"cad:{uid}:{dana}")
    assert cad is not None
    assert cad["due_at"] > clock.now()
    # UNDO reverts the one interaction and reopens every item.
    clock.advance(timedelta(minutes=1))
    resp = await client.post(
        "/internal/v1/replies",
        json={"user_id": uid, "from": "+15550000000", "text": "UNDO", "message_sid": "SM2"},
        headers=service_headers(clock),
    )
    assert resp.status == 200
    assert [i["contact_id"] for i in fakes.contacts.interactions.values()] == []
    for tp in await service.repo.touchpoints_of(uid):
        if tp["contact_id"] == dana and tp["source"] in ("birthday", "oneoff"):
            assert tp["state"] == "nudged", tp


# -- 6. undelivered digests ------------------------------------------------------------------------
async def test_digest_to_an_opted_out_user_leaves_its_items_due(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user(phone="+15550001111")
    fakes.notifier.opted_out.add("+15550001111")
    cid = fakes.contacts.add_contact(
        uid, "Dana Lee", last_interaction_at=START - timedelta(days=40)
    )
    fakes.contacts.add_contact(uid, "Sam Park", last_interaction_at=START - timedelta(days=41))
    await sync(client)
    user = await service.repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    stats = await service.sweep()
    assert stats == {"suppressed": 1}
    tp = await service.repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert tp["state"] == "scheduled"
    assert tp["nudge_count"] == 0
    user = await service.repo.get_user(uid)
    assert user is not None
    assert user.get("last_digest") is None  # a reply cannot refer to a list never received
    for status in ("failed", "suppressed"):
        resp = await client.get(
            f"/admin/v1/nudges?status={status}", headers=operator_headers(clock)
        )
        [item] = (await resp.json())["items"]
        assert item["state"] == "failed"
        assert item["message_status"] == "suppressed"
        assert "suppressed" in item["error"]
    # START again: the items are offered in the next window.
    fakes.notifier.opted_out.clear()
    body = await _digest(service, clock, uid)
    assert body is not None
    assert "Dana Lee" in body


async def test_digest_the_carrier_did_not_deliver_leaves_its_items_due(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user(phone="+15550002222")
    cid = fakes.contacts.add_contact(
        uid, "Dana Lee", last_interaction_at=START - timedelta(days=40)
    )
    fakes.contacts.add_contact(uid, "Sam Park", last_interaction_at=START - timedelta(days=41))
    await sync(client)
    body = await _digest(service, clock, uid)
    assert body is not None
    tp = await service.repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert (tp["state"], tp["nudge_count"]) == ("nudged", 1)
    [message] = fakes.notifier.sent(uid)
    message["status"] = "undelivered"
    message["error_code"] = 30005
    clock.advance(timedelta(minutes=5))
    stats = await service.recover()
    assert stats.get("undelivered") == 1
    tp = await service.repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert (tp["state"], tp["nudge_count"]) == ("scheduled", 0)
    assert tp["history"][-1]["why"] == "digest not delivered (undelivered)"
    resp = await client.get("/admin/v1/nudges?status=failed", headers=operator_headers(clock))
    [item] = (await resp.json())["items"]
    assert item["message_status"] == "undelivered"
