"""Times far from now: refused at the boundary, and stored ones never stop a job for others."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from services.reminders.sync import ChangeFeedConsumer
from shared.clock import ControllableClock
from tests.reminders.conftest import (
    START,
    Fakes,
    MakeClient,
    operator_headers,
    svc,
    sync,
    user_headers,
)

FAR = ["0001-01-01T00:00:00+01:00", "9999-12-31T00:00:00Z", "2200-01-01T00:00:00Z"]


@pytest.mark.parametrize("when", FAR)
async def test_far_due_at_and_pause_until_are_a_422(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock, when: str
) -> None:
    """A one-off due far away, or a pause until then, is refused and changes nothing."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    await sync(client)
    me = user_headers(clock, uid)
    body = {"contact_name": "Sam", "reason": "call back", "due_at": when}
    resp = await client.post("/v1/touchpoints", json=body, headers=me)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["errors"][0]["field"] == "due_at"
    listed = await (await client.get("/v1/touchpoints", headers=me)).json()
    assert listed["items"] == []
    ops = operator_headers(clock)
    resp = await client.put(f"/admin/v1/users/{uid}/pause", json={"until": when}, headers=ops)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["errors"][0]["field"] == "until"
    user = await svc(client).repo.get_user(uid)
    assert user is not None
    assert not user.get("paused_until")


async def test_a_stored_far_time_is_skipped_and_other_users_go_on(
    make_client: MakeClient,
    fakes: Fakes,
    clock: ControllableClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Older data out of range (stored before the check) never halts the change feed."""
    client = await make_client()
    bad_user = fakes.contacts.add_user()
    bad = fakes.contacts.add_contact(bad_user, "Far Future", last_interaction_at=START)
    entry = fakes.contacts.log(bad_user, bad, {"kind": "one_to_one", "next_action": "x"})
    # What contacts stored before it checked the range.
    fakes.contacts.interactions[entry["id"]]["occurred_at"] = "9999-12-30T00:00:00Z"
    fakes.contacts.contacts[bad]["last_interaction_at"] = "9999-12-30T00:00:00Z"
    good_user = fakes.contacts.add_user()
    good = fakes.contacts.add_contact(
        good_user, "Dana Lee", tier="B", last_interaction_at=START - timedelta(days=40)
    )
    with caplog.at_level(logging.WARNING):
        await sync(client)
    repo = svc(client).repo
    tp = await repo.get_touchpoint(f"cad:{good_user}:{good}")
    assert tp is not None
    assert tp["due_at"] == START - timedelta(days=10)
    # The feed moved past the bad records: a second run has nothing left to apply.
    assert await sync(client) == 0
    assert any("out of range" in r.getMessage() for r in caplog.records), caplog.text
    # The nightly reconciliation reads the same contact and goes on too.
    stats = await ChangeFeedConsumer(svc(client), 500).reconcile()
    assert stats["contacts"] == 2


async def test_a_change_that_cannot_be_applied_is_skipped_not_retried_forever(
    make_client: MakeClient,
    fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A data error in one change (not an outage) is logged and the feed moves on."""
    client = await make_client()
    service = svc(client)
    bad_user = fakes.contacts.add_user()
    bad = fakes.contacts.add_contact(bad_user, "Broken Record")
    good_user = fakes.contacts.add_user()
    good = fakes.contacts.add_contact(good_user, "Dana Lee")
    real = service.apply_contact

    async def apply_contact(entity: dict[str, object], **kwargs: object) -> object:
        if entity["id"] == bad:
            raise OverflowError("date value out of range")
        return await real(entity, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "apply_contact", apply_contact)
    with caplog.at_level(logging.WARNING):
        await sync(client)
    assert await service.repo.get_contact(good_user, good) is not None
    assert await service.repo.get_contact(bad_user, bad) is None
    assert await sync(client) == 0
    assert any("skipped change" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_one_off_due_before_the_account_existed_is_a_422(
    make_client: MakeClient, fakes: Fakes, clock: ControllableClock
) -> None:
    """Due dates reach back at most a day before the account; later ones are kept."""
    client = await make_client()
    uid = fakes.contacts.add_user()
    await sync(client)
    me = user_headers(clock, uid)
    body = {"contact_name": "Sam", "reason": "call back"}
    too_old = (START - timedelta(days=2)).isoformat()
    resp = await client.post("/v1/touchpoints", json={**body, "due_at": too_old}, headers=me)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["errors"][0]["field"] == "due_at"
    overdue = (START - timedelta(hours=3)).isoformat()
    resp = await client.post("/v1/touchpoints", json={**body, "due_at": overdue}, headers=me)
    assert resp.status == 201, await resp.text()
