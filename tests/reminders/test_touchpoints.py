"""Touchpoints from contacts' data: cadences, reset on interaction, follow-up rules, birthdays."""

from __future__ import annotations

from datetime import timedelta

from shared.clock import ControllableClock
from tests.reminders.conftest import START, Fakes, MakeClient, svc, sync


async def test_cadence_by_tier_and_override(make_client: MakeClient, fakes: Fakes) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    last = START - timedelta(days=10)
    a = fakes.contacts.add_contact(uid, "Ann A", tier="A", last_interaction_at=last)
    c = fakes.contacts.add_contact(uid, "Cal C", tier="C", last_interaction_at=last)
    own = fakes.contacts.add_contact(
        uid, "Own O", tier="A", cadence_days=7, last_interaction_at=last
    )
    assert await sync(client) >= 4
    repo = svc(client).repo
    tp_a = await repo.get_touchpoint(f"cad:{uid}:{a}")
    tp_c = await repo.get_touchpoint(f"cad:{uid}:{c}")
    tp_own = await repo.get_touchpoint(f"cad:{uid}:{own}")
    assert tp_a
    assert tp_c
    assert tp_own
    assert tp_a["due_at"] == last + timedelta(days=14)
    assert tp_a["max_at"] == last + timedelta(days=28)
    assert tp_c["due_at"] == last + timedelta(days=90)
    assert tp_own["due_at"] == last + timedelta(days=7)
    assert tp_own["max_at"] == last + timedelta(days=14)
    # Replaying the whole feed changes nothing.
    await repo.set_cursor("", START)
    await sync(client)
    again = await repo.get_touchpoint(f"cad:{uid}:{a}")
    assert again is not None
    assert again["due_at"] == tp_a["due_at"]
    assert len(again["history"]) == len(tp_a["history"])


async def test_interaction_resets_cadence_and_starts_follow_ups(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(
        uid, "Dana Lee", tier="B", last_interaction_at=START - timedelta(days=40)
    )
    await sync(client)
    repo = svc(client).repo
    tp = await repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert tp["due_at"] == START - timedelta(days=10)
    clock.advance(timedelta(hours=1))
    entry = fakes.contacts.log(uid, cid, {"kind": "one_to_one", "next_action": "send intro"})
    await sync(client)
    tp = await repo.get_touchpoint(f"cad:{uid}:{cid}")
    assert tp is not None
    assert tp["due_at"] == clock.now() + timedelta(days=30)
    assert tp["state"] == "scheduled"
    follow = await repo.get_touchpoint(f"fu:after-121:{entry['id']}")
    agreed = await repo.get_touchpoint(f"fu:agreed-action:{entry['id']}")
    assert follow is not None
    assert agreed is not None
    assert follow["due_at"] == clock.now() + timedelta(days=1)
    assert agreed["due_at"] == clock.now() + timedelta(days=7)
    # A plain call starts no 1-2-1 follow-up.
    call = fakes.contacts.log(uid, cid, {"kind": "call"})
    await sync(client)
    assert await repo.get_touchpoint(f"fu:after-121:{call['id']}") is None


async def test_referrals_and_new_contacts(make_client: MakeClient, fakes: Fakes) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Dana Lee")
    await sync(client)
    repo = svc(client).repo
    first = await repo.get_touchpoint(f"fu:new-contact:{cid}")
    assert first is not None
    assert first["due_at"] == START + timedelta(days=3)
    # Received referral: thank within a day. Given: check at 48 h and 14 d.
    got = fakes.contacts.referrals["r1"] = {
        "id": "r1",
        "user_id": uid,
        "contact_id": cid,
        "direction": "received",
        "status": "open",
        "created_at": START.isoformat(),
    }
    fakes.contacts._change("referral", "upsert", uid, "r1")
    fakes.contacts.referrals["r2"] = {**got, "id": "r2", "direction": "given"}
    fakes.contacts._change("referral", "upsert", uid, "r2")
    await sync(client)
    thanks = await repo.get_touchpoint("fu:thank-referral:r1")
    assert thanks is not None
    assert thanks["due_at"] == START
    assert thanks["max_at"] == START + timedelta(days=1)
    assert (await repo.get_touchpoint("fu:referral-48h:r2"))["due_at"] == START + timedelta(
        hours=48
    )  # type: ignore[index]
    assert (await repo.get_touchpoint("fu:referral-14d:r2"))["due_at"] == START + timedelta(days=14)  # type: ignore[index]
    assert await repo.get_touchpoint("fu:referral-48h:r1") is None
    # The first interaction satisfies the new-contact rule.
    fakes.contacts.log(uid, cid, {"kind": "call"})
    await sync(client)
    assert (await repo.get_touchpoint(f"fu:new-contact:{cid}"))["state"] == "done"  # type: ignore[index]
    # Deleting a referral cancels its follow-ups.
    fakes.contacts.referrals.pop("r2")
    fakes.contacts._change("referral", "delete", uid, "r2")
    await sync(client)
    assert (await repo.get_touchpoint("fu:referral-14d:r2"))["state"] == "cancelled"  # type: ignore[index]


async def test_birthday_and_deleted_contact(make_client: MakeClient, fakes: Fakes) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user(tz="Australia/Sydney")
    cid = fakes.contacts.add_contact(uid, "Bea B", birthday="03-10")
    await sync(client)
    repo = svc(client).repo
    bd = await repo.get_touchpoint(f"bd:{uid}:{cid}:2026-03-10")
    assert bd is not None
    # Midnight in Sydney (UTC+11 in March).
    assert bd["due_at"].isoformat() == "2026-03-09T13:00:00+00:00"
    fakes.contacts.delete_contact(cid)
    await sync(client)
    assert all(tp["state"] == "cancelled" for tp in await repo.touchpoints_of(uid))


async def test_birthday_changed_or_removed(make_client: MakeClient, fakes: Fakes) -> None:
    """The contact's copy names its open birthday touchpoint; a change cancels the old one."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Bea B", birthday="03-10")
    plain = fakes.contacts.add_contact(uid, "Cal C")
    await sync(client)
    repo = svc(client).repo
    first = f"bd:{uid}:{cid}:2026-03-10"
    assert (await repo.get_contact(uid, cid))["birthday_tp"] == first  # type: ignore[index]
    assert (await repo.get_contact(uid, plain))["birthday_tp"] is None  # type: ignore[index]
    # A new date: the old touchpoint is cancelled, the new one scheduled.
    fakes.contacts.contacts[cid]["birthday"] = "04-20"
    fakes.contacts._change("contact", "upsert", uid, cid)
    await sync(client)
    second = f"bd:{uid}:{cid}:2026-04-20"
    assert (await repo.get_touchpoint(first))["state"] == "cancelled"  # type: ignore[index]
    assert (await repo.get_touchpoint(second))["state"] == "scheduled"  # type: ignore[index]
    # Removed: nothing about a birthday stays open.
    fakes.contacts.contacts[cid]["birthday"] = None
    fakes.contacts._change("contact", "upsert", uid, cid)
    await sync(client)
    assert (await repo.get_touchpoint(second))["state"] == "cancelled"  # type: ignore[index]
    assert (await repo.get_contact(uid, cid))["birthday_tp"] is None  # type: ignore[index]


async def test_birthday_of_a_copy_written_before_it_was_tracked(
    make_client: MakeClient, fakes: Fakes
) -> None:
    """A copy without the field is looked up once, so an older touchpoint is still cancelled."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    cid = fakes.contacts.add_contact(uid, "Bea B", birthday="03-10")
    await sync(client)
    repo = svc(client).repo
    await repo.db.contacts.update_one({"_id": f"{uid}:{cid}"}, {"$unset": {"birthday_tp": ""}})
    fakes.contacts.contacts[cid]["birthday"] = None
    fakes.contacts._change("contact", "upsert", uid, cid)
    await sync(client)
    assert (await repo.get_touchpoint(f"bd:{uid}:{cid}:2026-03-10"))["state"] == "cancelled"  # type: ignore[index]
    assert (await repo.get_contact(uid, cid))["birthday_tp"] is None  # type: ignore[index]


async def test_reconciliation_repairs_missed_changes(make_client: MakeClient, fakes: Fakes) -> None:
    client = await make_client()
    uid = fakes.contacts.add_user()
    keep = fakes.contacts.add_contact(uid, "Keep K")
    gone = fakes.contacts.add_contact(uid, "Gone G")
    await sync(client)
    # Lose the feed entirely: contacts changed behind our back.
    fakes.contacts.changes.clear()
    fakes.contacts.contacts[gone]["deleted"] = True
    fakes.contacts.contacts[keep]["last_interaction_at"] = (START + timedelta(days=1)).isoformat()
    from services.reminders.sync import ChangeFeedConsumer

    stats = await ChangeFeedConsumer(svc(client), 100).reconcile()
    assert stats == {"users": 1, "contacts": 1, "gone": 1}
    repo = svc(client).repo
    tp = await repo.get_touchpoint(f"cad:{uid}:{keep}")
    assert tp is not None
    assert tp["due_at"] == START + timedelta(days=31)
    assert (await repo.get_touchpoint(f"cad:{uid}:{gone}"))["state"] == "cancelled"  # type: ignore[index]
