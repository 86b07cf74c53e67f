"""Digests: one per user per window, quiet hours, pauses, notifier outages, crash recovery,
and several replicas sweeping the same database."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.reminders import service as service_module
from services.reminders.service import RemindersService
from shared.clock import ControllableClock
from tests.reminders.conftest import START, Fakes, MakeClient, operator_headers, svc, sync


class Crash(Exception):
    """Stands for a replica dying at that point."""


def _due_contacts(fakes: Fakes, uid: str, count: int) -> list[str]:
    return [
        fakes.contacts.add_contact(
            uid,
            f"Person{n} Test",
            company="Acme",
            tier="A",
            last_interaction_at=START - timedelta(days=20 + n),
        )
        for n in range(count)
    ]


async def _to_digest_time(
    service: RemindersService, clock: ControllableClock, uid: str
) -> datetime:
    user = await service.repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    return user["next_digest_at"]


async def test_digest_goes_out_once_per_window(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user(tz="America/New_York", phone="+15551230000")
    _due_contacts(fakes, uid, 3)
    await sync(client)
    at = await _to_digest_time(service, clock, uid)
    assert at.isoformat() == "2026-03-02T14:00:00+00:00"  # 09:00 EST
    stats = await service.sweep()
    assert stats == {"sent": 1}
    sent = fakes.notifier.sent(uid)
    assert len(sent) == 1
    message = sent[0]
    assert message["to"] == "+15551230000"
    assert message["purpose"] == "nudge"
    assert message["idempotency_key"] == f"digest:{uid}:2026-03-02T0900"
    assert message["body"].startswith("touchbase: 3 due\n1) Person2 Test (Acme): last touch 22d")
    # The same window again: nothing (the next one is tomorrow, 09:00 local).
    assert await service.sweep() == {}
    user = await service.repo.get_user(uid)
    assert user is not None
    assert user["next_digest_at"].isoformat() == "2026-03-03T14:00:00+00:00"
    assert [i["n"] for i in user["last_digest"]["items"]] == [1, 2, 3]
    tps = await service.repo.open_touchpoints(uid)
    assert {tp["state"] for tp in tps if tp["source"] == "cadence"} == {"nudged"}
    # Still due tomorrow: one more digest, in the next window.
    clock.set(user["next_digest_at"], frozen=True)
    assert await service.sweep() == {"sent": 1}
    assert len(fakes.notifier.sent(uid)) == 2


async def test_nothing_due_and_never_in_quiet_hours(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    idle = fakes.contacts.add_user(tz="Europe/London")
    fakes.contacts.add_contact(idle, "Fresh F", last_interaction_at=START)
    late = fakes.contacts.add_user(tz="Australia/Sydney")
    _due_contacts(fakes, late, 1)
    await sync(client)
    await _to_digest_time(service, clock, idle)
    assert (await service.sweep()).get("nothing_due") == 1
    # The Sydney user's window was missed entirely (replicas down all day): it is 22:00 there.
    late_user = await service.repo.get_user(late)
    assert late_user is not None
    clock.set(late_user["next_digest_at"] + timedelta(hours=13), frozen=True)
    stats = await service.sweep()
    assert stats.get("window_missed") == 1
    assert fakes.notifier.sent(late) == []
    user = await service.repo.get_user(late)
    assert user is not None
    assert user["next_digest_at"] > clock.now()


async def test_pauses(make_client: MakeClient, fakes: Fakes, clock: ControllableClock) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 1)
    await sync(client)
    at = await _to_digest_time(service, clock, uid)
    await service.set_global_pause("op", True, "carrier issue")
    assert await service.sweep() == {"paused_all": 1}
    await service.set_global_pause("op", False, None)
    await service.set_user_pause("op", uid, at + timedelta(days=2))
    await service.reschedule_all()
    await _to_digest_time(service, clock, uid)
    assert await service.sweep() == {"paused": 1}
    assert fakes.notifier.sent() == []


async def test_notifier_outage_delays_never_loses_never_duplicates(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 2)
    await sync(client)
    await _to_digest_time(service, clock, uid)
    fakes.notifier.down = True
    assert await service.sweep() == {"deferred": 1}
    assert fakes.notifier.sent() == []
    clock.advance(timedelta(seconds=10))
    assert await service.recover() == {}  # not yet time to retry
    fakes.notifier.down = False
    clock.advance(timedelta(minutes=5))
    assert await service.recover() == {"sent": 1}
    assert await service.recover() == {}
    assert len(fakes.notifier.sent(uid)) == 1
    claims = await service.repo.list_claims(uid, None, 10)
    assert claims[0]["state"] == "recorded"
    assert claims[0]["attempts"] == 2


async def test_permanent_refusal_is_recorded_as_failure(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 2)  # two: a lone item may wait a window
    await sync(client)
    await _to_digest_time(service, clock, uid)
    fakes.notifier.refuse = True
    assert await service.sweep() == {"failed": 1}
    failed = await service.repo.list_claims(None, "failed", 10)
    assert len(failed) == 1
    assert "refused" in failed[0]["error"]


async def test_a_digest_the_notifier_gives_up_on_is_surfaced_and_offered_again(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user(tz="America/New_York")
    _due_contacts(fakes, uid, 2)
    await sync(client)
    await _to_digest_time(service, clock, uid)
    assert await service.sweep() == {"sent": 1}
    message = fakes.notifier.sent(uid)[0]
    # Still on its way: nothing to record yet.
    assert "undelivered" not in await service.recover()
    # The notifier ran out of attempts.
    fakes.notifier.messages[message["id"]].update({"status": "failed", "error_code": 30003})
    stats = await service.recover()
    assert stats["undelivered"] == 1
    failed = await service.repo.list_claims(uid, "failed", 10)
    assert len(failed) == 1
    assert failed[0]["error"] == "notifier reports failed (error 30003)"
    # Operators see it, and it is not counted twice.
    resp = await client.get(
        "/admin/v1/nudges", params={"status": "failed"}, headers=operator_headers(clock)
    )
    assert [n["user_id"] for n in (await resp.json())["items"]] == [uid]
    assert "undelivered" not in await service.recover()
    # The touchpoints are still open: the next window offers them again.
    user = await service.repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    assert await service.sweep() == {"sent": 1}
    assert len(fakes.notifier.sent(uid)) == 2


async def test_crash_after_claim_before_dispatch(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 2)
    await sync(client)
    await _to_digest_time(service, clock, uid)

    async def crash(claims: object) -> str:
        raise Crash("replica died")  # the process dies right after claiming

    original = service.dispatch_many
    service.dispatch_many = crash  # type: ignore[method-assign]
    with contextlib.suppress(Crash):
        await service.sweep()
    service.dispatch_many = original  # type: ignore[method-assign]
    assert fakes.notifier.sent() == []
    # Another sweep does not send twice: the claim is owned.
    assert await service.sweep() == {"owned_elsewhere": 1}
    # The reaper finishes it once the claim is stale.
    clock.advance(timedelta(minutes=3))
    assert await service.recover() == {"sent": 1}
    assert len(fakes.notifier.sent(uid)) == 1
    assert (await service.repo.list_claims(uid, None, 5))[0]["state"] == "recorded"


async def test_crash_after_dispatch_before_record(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 2)
    await sync(client)
    await _to_digest_time(service, clock, uid)

    async def crash(dispatched: object) -> None:
        raise Crash("replica died")  # sent, but the dispatch was never recorded

    original = service.record_many
    service.record_many = crash  # type: ignore[method-assign]
    with contextlib.suppress(Crash):
        await service.sweep()
    service.record_many = original  # type: ignore[method-assign]
    assert len(fakes.notifier.sent(uid)) == 1
    clock.advance(timedelta(minutes=3))
    # The claim is re-dispatched with the same key: the notifier answers with the stored one.
    assert await service.recover() == {"sent": 1}
    assert len(fakes.notifier.sent(uid)) == 1
    user = await service.repo.get_user(uid)
    assert user is not None
    assert len(user["last_digest"]["items"]) == 2


async def test_crash_before_dispatch_state_saved_resends_with_same_key(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """The notifier accepted the message but the replica died before noting it: the retry
    carries the same idempotency key, so the notifier answers with the stored message."""
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 2)  # two: a lone item may wait a window
    await sync(client)
    await _to_digest_time(service, clock, uid)
    original = service.repo.update_claims

    async def crash(*args: object, **kwargs: object) -> None:
        raise Crash("replica died")

    service.repo.update_claims = crash  # type: ignore[method-assign]
    with contextlib.suppress(Crash):
        await service.sweep()
    service.repo.update_claims = original  # type: ignore[method-assign]
    assert fakes.notifier.posts == 1
    clock.advance(timedelta(minutes=3))
    assert await service.recover() == {"sent": 1}
    assert fakes.notifier.posts == 2
    assert len(fakes.notifier.sent(uid)) == 1


async def test_replicas_send_exactly_one_digest_per_user_per_window(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    replicas = [await make_client() for _ in range(3)]
    zones = ["America/New_York", "Europe/London", "Australia/Sydney", "UTC"]
    users = [fakes.contacts.add_user(tz=zones[n % 4]) for n in range(12)]
    for uid in users:
        _due_contacts(fakes, uid, 2)
    # Every replica consumes the feed (replays are harmless).
    await asyncio.gather(*(sync(r) for r in replicas))
    services = [svc(r) for r in replicas]
    # Walk two days in 30-minute steps; all replicas sweep concurrently at each step.
    clock.set(datetime(2026, 3, 2, 0, 0, tzinfo=UTC), frozen=True)
    for _ in range(96):
        await asyncio.gather(*(s.sweep() for s in services))
        clock.advance(timedelta(minutes=30))
    per_user = {uid: fakes.notifier.sent(uid) for uid in users}
    for uid, messages in per_user.items():
        keys = [m["idempotency_key"] for m in messages]
        assert len(keys) == len(set(keys)), uid
        assert len(messages) == 2, (uid, keys)  # one per local day in the two days walked
    assert fakes.notifier.posts == 24


async def test_replicas_with_running_schedulers(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Two full app instances with their APScheduler jobs running against one database."""
    users = [fakes.contacts.add_user() for _ in range(5)]
    for uid in users:
        _due_contacts(fakes, uid, 2)  # two: a lone item may wait
    clock.set(datetime(2026, 3, 2, 8, 59, 59, tzinfo=UTC), frozen=True)
    fast = {
        "sync_interval_s": 0.2,
        "sweep_interval_s": 0.2,
        "retry_interval_s": 0.3,
        "reap_interval_s": 0.3,
        "timings_refresh_s": 0.5,
    }
    replicas = [await make_client(scheduler_enabled=True, **fast) for _ in range(2)]
    # Generous bounds (each loop ends as soon as its condition holds): a loaded machine is slow.
    # Wait for every user's touchpoints, not just the users: a sweep that reaches a user whose
    # contacts the feed has not brought yet finds nothing due and moves on to tomorrow.
    repo = svc(replicas[0]).repo
    for _ in range(300):
        open_by_user = [await repo.open_touchpoints(u) for u in users]
        if all(len({tp["contact_id"] for tp in tps}) == 2 for tps in open_by_user):
            break
        await asyncio.sleep(0.1)
    clock.set(datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC), frozen=True)
    for _ in range(300):
        if len(fakes.notifier.sent()) >= 5:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # give any duplicate a chance to appear
    assert sorted(m["user_id"] for m in fakes.notifier.sent()) == sorted(users)
    assert fakes.notifier.posts == 5


async def test_dst_gap_and_time_zone_change_through_the_service(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """A 02:30 digest on the New York spring-forward day goes at 03:30 EDT, once."""
    client = await make_client()
    service = svc(client)
    clock.set(datetime(2026, 3, 7, 12, tzinfo=UTC), frozen=True)
    uid = fakes.contacts.add_user(tz="America/New_York")
    _due_contacts(fakes, uid, 2)  # two: a lone item may wait a window
    await sync(client)
    await service.update_preferences(
        uid, {"digest_time": "02:30", "quiet_start": "23:00", "quiet_end": "01:00"}
    )
    user = await service.repo.get_user(uid)
    assert user is not None
    assert user["next_digest_at"] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    clock.set(user["next_digest_at"], frozen=True)
    assert await service.sweep() == {"sent": 1}
    assert fakes.notifier.sent(uid)[0]["idempotency_key"].endswith(":2026-03-08T0230")
    user = await service.repo.get_user(uid)
    assert user is not None
    assert user["next_digest_at"] == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # 02:30 EDT
    # The user moves to Sydney: the next digest follows the new zone.
    fakes.contacts.users[uid]["time_zone"] = "Australia/Sydney"
    fakes.contacts._change("user", "upsert", uid, uid)
    await sync(client)
    user = await service.repo.get_user(uid)
    assert user is not None
    local = user["next_digest_at"].astimezone(ZoneInfo("Australia/Sydney"))
    assert (local.hour, local.minute) == (2, 30)
    # Account deleted in contacts: everything goes.
    fakes.contacts.users.pop(uid)
    fakes.contacts._change("user", "delete", uid, uid)
    await sync(client)
    assert await service.repo.get_user(uid) is None
    assert await service.repo.touchpoints_of(uid) == []


async def test_a_large_sweep_records_as_it_goes_and_misses_nobody(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``SWEEP_HOLD`` users a sweep records before going on, so its memory stays bounded."""
    monkeypatch.setattr(service_module, "SWEEP_HOLD", 2)
    client = await make_client(sweep_batch=1)
    service = svc(client)
    users = [fakes.contacts.add_user(tz="America/New_York") for _ in range(5)]
    for uid in users:
        _due_contacts(fakes, uid, 2)
    await sync(client)
    await _to_digest_time(service, clock, users[0])
    assert await service.sweep() == {"sent": 5}
    for uid in users:
        assert len(fakes.notifier.sent(uid)) == 1
        user = await service.repo.get_user(uid)
        assert user is not None
        assert [i["n"] for i in user["last_digest"]["items"]] == [1, 2]
        assert user["next_digest_at"] > clock.now()
    claims = await service.repo.list_claims(None, "recorded", 10)
    assert len(claims) == 5
    assert all(c["message_id"] for c in claims)
    assert await service.sweep() == {}


async def test_a_lone_routine_reconnect_waits_one_window_for_company(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """One fresh cadence item alone is held once; the next window sends it, held or not."""
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    [cid] = _due_contacts(fakes, uid, 1)
    await sync(client)
    first = await _to_digest_time(service, clock, uid)
    tp_id = f"cad:{uid}:{cid}"
    fresh = {"fire_at": first - timedelta(hours=1), "due_at": first - timedelta(hours=1)}
    await service.repo.db.touchpoints.update_one({"_id": tp_id}, {"$set": fresh})
    assert await service.sweep() == {"held_lone": 1}
    assert fakes.notifier.sent(uid) == []
    second = await _to_digest_time(service, clock, uid)
    assert second - first == timedelta(days=1)
    assert await service.sweep() == {"sent": 1}
    [message] = fakes.notifier.sent(uid)
    assert "Person0 Test" in message["body"]


async def test_lone_items_that_must_not_wait_go_at_once(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Already held since due, near its maximum, or holding switched off: sent right away."""
    client = await make_client()
    service = svc(client)
    users = [fakes.contacts.add_user() for _ in range(3)]
    contacts = [_due_contacts(fakes, uid, 1)[0] for uid in users]
    await sync(client)
    when = await _to_digest_time(service, clock, users[0])
    fields = [
        {"fire_at": when - timedelta(hours=30), "held_at": when - timedelta(days=1)},
        {"fire_at": when - timedelta(hours=1), "max_at": when + timedelta(hours=20)},
        {"fire_at": when - timedelta(hours=1)},
    ]
    for uid, cid, changes in zip(users, contacts, fields, strict=True):
        await service.repo.update_user(uid, {"next_digest_at": when})
        await service.repo.db.touchpoints.update_one({"_id": f"cad:{uid}:{cid}"}, {"$set": changes})
    assert await service.sweep() == {"sent": 2, "held_lone": 1}
    assert [bool(fakes.notifier.sent(uid)) for uid in users] == [True, True, False]
    await service.repo.set_config("policy", {"window": {"hold_lone": False}})
    await service.repo.update_user(users[2], {"next_digest_at": when})
    assert await service.sweep() == {"sent": 1}


async def test_a_lone_item_ignored_after_its_nudge_waits_again_once(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Unanswered and still alone, an item goes every other window instead of every window."""
    client = await make_client()
    service = svc(client)
    uid = fakes.contacts.add_user()
    _due_contacts(fakes, uid, 1)
    await sync(client)
    outcomes = []
    for _ in range(4):
        await _to_digest_time(service, clock, uid)
        outcomes.append(await service.sweep())
    assert outcomes == [{"held_lone": 1}, {"sent": 1}, {"held_lone": 1}, {"sent": 1}]
    assert len(fakes.notifier.sent(uid)) == 2
