"""The internal reply endpoint: acting on replies through contacts, confirmations, UNDO."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from shared.clock import ControllableClock
from shared.sms import is_gsm7
from tests.reminders.conftest import (
    START,
    Fakes,
    MakeClient,
    service_headers,
    svc,
    sync,
    user_headers,
)

Client = TestClient[web.Request, web.Application]


class Chat:
    """A user texting the service through the internal reply endpoint."""

    def __init__(self, client: Client, clock: ControllableClock, uid: str) -> None:
        self.client = client
        self.clock = clock
        self.uid = uid
        self.n = 0

    async def say(self, text: str, sid: str | None = None) -> dict[str, Any]:
        self.n += 1
        resp = await self.client.post(
            "/internal/v1/replies",
            json={
                "user_id": self.uid,
                "from": "+15550000000",
                "text": text,
                "message_sid": sid or f"SM{self.n:030d}",
            },
            headers=service_headers(self.clock),
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


@pytest.fixture
async def chat(make_client: MakeClient, fakes: Fakes, clock: ControllableClock) -> Chat:
    client = await make_client()
    uid = fakes.contacts.add_user(phone="+15550000000")
    old = START - timedelta(days=45)
    fakes.contacts.add_contact(
        uid, "Dana Lee", company="Lee Insurance", tier="B", last_interaction_at=old
    )
    fakes.contacts.add_contact(
        uid, "Dana Park", tier="B", last_interaction_at=old - timedelta(days=1)
    )
    fakes.contacts.add_contact(
        uid, "Sam Lee", tier="A", last_interaction_at=START - timedelta(days=1)
    )
    fakes.contacts.add_contact(uid, "José Núñez", tier="C", last_interaction_at=START)
    await sync(client)
    user = await svc(client).repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    assert await svc(client).sweep() == {"sent": 1}
    return Chat(client, clock, uid)


def _contact(fakes: Fakes, name: str) -> str:
    return next(c["id"] for c in fakes.contacts.contacts.values() if c["name"] == name)


async def test_number_logs_a_touch_and_resets_the_cadence(chat: Chat, fakes: Fakes) -> None:
    digest = fakes.notifier.sent(chat.uid)[0]["body"]
    assert digest.split("\n")[1].startswith("1) Dana Park")
    answer = await chat.say("1")
    assert (
        answer["reply"] == "Logged touch with Dana Park. Next check-in in ~30 days. UNDO to revert."
    )
    [action] = answer["actions"]
    assert action["kind"] == "touched"
    assert action["contact_name"] == "Dana Park"
    park = _contact(fakes, "Dana Park")
    assert action["contact_id"] == park
    [logged] = [i for i in fakes.contacts.interactions.values() if i["contact_id"] == park]
    assert logged["kind"] == "message"
    assert logged["source"] == "sms"
    tp = await svc(chat.client).repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert tp is not None
    assert tp["state"] == "scheduled"
    assert tp["due_at"] == chat.clock.now() + timedelta(days=30)


async def test_same_message_sid_answers_once(chat: Chat, fakes: Fakes) -> None:
    first = await chat.say("DONE 1 2", sid="SMrepeat")
    second = await chat.say("DONE 1 2", sid="SMrepeat")
    assert first == second
    assert len(fakes.contacts.interactions) == 2
    assert [a["contact_name"] for a in first["actions"]] == ["Dana Park", "Dana Lee"]


async def test_met_by_name_with_notes_and_next_action(chat: Chat, fakes: Fakes) -> None:
    answer = await chat.say("MET Dana Lee lunch, agreed intro to Sam")
    assert answer["reply"].startswith("Logged 1-2-1 with Dana Lee. Next check-in in ~30 days.")
    [action] = answer["actions"]
    assert action["kind"] == "one_to_one"
    assert action["details"]["notes"] == "lunch"
    assert action["details"]["next_action"] == "intro to Sam"
    [logged] = fakes.contacts.interactions.values()
    assert logged["kind"] == "one_to_one"
    assert logged["notes"] == "lunch"
    assert logged["next_action"] == "intro to Sam"
    # The 1-2-1 rules started their follow-ups right away.
    repo = svc(chat.client).repo
    assert await repo.get_touchpoint(f"fu:after-121:{logged['id']}") is not None
    assert await repo.get_touchpoint(f"fu:agreed-action:{logged['id']}") is not None


async def test_ambiguous_name_asks_then_acts(chat: Chat, fakes: Fakes) -> None:
    question = await chat.say("MET Dana coffee")
    assert question["reply"] == "Which Dana? 1) Dana Lee, 2) Dana Park. Reply with the number."
    assert question["actions"] == []
    assert fakes.contacts.interactions == {}
    answer = await chat.say("2")
    assert answer["reply"].startswith("Logged 1-2-1 with Dana Park.")
    [logged] = fakes.contacts.interactions.values()
    assert logged["contact_id"] == _contact(fakes, "Dana Park")
    assert logged["notes"] == "coffee"


async def test_accent_insensitive_names(chat: Chat, fakes: Fakes) -> None:
    answer = await chat.say("note jose: daughter graduates in May")
    # "ú" is not in GSM-7 ("é" and "ñ" are): the confirmation folds it rather than go UCS-2.
    assert answer["reply"].startswith("Noted for José Nuñez.")
    [logged] = fakes.contacts.interactions.values()
    assert logged["kind"] == "note"
    assert logged["notes"] == "daughter graduates in May"


async def test_undo_reverts_through_contacts_within_ten_minutes(
    chat: Chat, fakes: Fakes, clock: ControllableClock
) -> None:
    repo = svc(chat.client).repo
    park = _contact(fakes, "Dana Park")
    before = await repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert before is not None
    await chat.say("MET 1 coffee")
    assert len(fakes.contacts.interactions) == 1
    clock.advance(timedelta(minutes=9))
    answer = await chat.say("UNDO")
    assert answer["reply"] == "Undone: 1-2-1."
    assert answer["actions"][0]["kind"] == "undone"
    assert fakes.contacts.interactions == {}
    assert any(c.startswith("DELETE") for c in fakes.contacts.calls)
    after = await repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert after is not None
    assert after["due_at"] == before["due_at"]
    assert after["state"] == "nudged"
    # A replay of the feed (interaction deleted, contact restored) keeps it that way.
    await sync(chat.client)
    again = await repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert again is not None
    assert again["due_at"] == before["due_at"]
    # Nothing left to undo; and an old action is out of reach.
    assert (await chat.say("undo"))["reply"].startswith("Nothing to undo")
    await chat.say("DONE 2")
    clock.advance(timedelta(minutes=11))
    assert (await chat.say("UNDO"))["reply"].startswith("Nothing to undo")
    assert len(fakes.contacts.interactions) == 1


async def test_snooze_skip_and_their_undo(
    chat: Chat, fakes: Fakes, clock: ControllableClock
) -> None:
    repo = svc(chat.client).repo
    park = _contact(fakes, "Dana Park")
    lee = _contact(fakes, "Dana Lee")
    answer = await chat.say("SNOOZE 1 2w")
    assert answer["reply"].startswith("Snoozed Dana Park until ")
    assert answer["actions"][0]["kind"] == "snoozed"
    tp = await repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert tp is not None
    assert tp["state"] == "snoozed"
    assert tp["fire_at"] == clock.now() + timedelta(weeks=2)
    await chat.say("undo")
    tp = await repo.get_touchpoint(f"cad:{chat.uid}:{park}")
    assert tp is not None
    assert tp["state"] == "nudged"
    answer = await chat.say("skip 2")
    assert answer["reply"].startswith("Skipped Dana Lee. Next check-in in ~30 days.")
    tp = await repo.get_touchpoint(f"cad:{chat.uid}:{lee}")
    assert tp is not None
    assert tp["due_at"] == clock.now() + timedelta(days=30)
    assert fakes.contacts.interactions == {}  # skipping logs nothing


async def test_referrals(chat: Chat, fakes: Fakes) -> None:
    given = await chat.say("REF Dana Lee > Sam Lee plumber")
    assert given["reply"].startswith("Logged referral given to Dana Lee for Sam Lee.")
    [referral] = fakes.contacts.referrals.values()
    assert referral["direction"] == "given"
    assert referral["for_name"] == "Sam Lee"
    assert referral["description"] == "plumber"
    assert given["actions"][0]["kind"] == "referral_given"
    received = await chat.say("GOT REF from Sam: kitchen remodel")
    assert received["reply"].startswith("Logged referral from Sam Lee.")
    got = next(r for r in fakes.contacts.referrals.values() if r["direction"] == "received")
    assert got["description"] == "kitchen remodel"
    repo = svc(chat.client).repo
    assert await repo.get_touchpoint(f"fu:thank-referral:{got['id']}") is not None
    await chat.say("UNDO")
    assert got["id"] not in fakes.contacts.referrals
    tp = await repo.get_touchpoint(f"fu:thank-referral:{got['id']}")
    assert tp is not None
    assert tp["state"] == "cancelled"


async def test_who_pause_resume_help(chat: Chat, clock: ControllableClock) -> None:
    who = await chat.say("WHO")
    assert who["reply"].startswith("Due now: 1) Dana Park")
    assert who["actions"][0]["kind"] == "who"
    paused = await chat.say("PAUSE 2w")
    assert paused["actions"][0]["kind"] == "paused"
    user = await svc(chat.client).repo.get_user(chat.uid)
    assert user is not None
    assert user["paused_until"] == clock.now() + timedelta(weeks=2)
    assert (await chat.say("RESUME"))["actions"][0]["kind"] == "resumed"
    user = await svc(chat.client).repo.get_user(chat.uid)
    assert user is not None
    assert "paused_until" not in user
    helped = await chat.say("help")
    assert "SNOOZE" in helped["reply"]
    assert helped["actions"] == [{"kind": "help", "details": {"understood": True}}]


@pytest.mark.parametrize(
    ("text", "reply_start"),
    [
        ("blah blah", "Sorry, I didn't get that."),
        ("MET Zed coffee", 'I couldn\'t find a contact named "Zed coffee"'),
        ("DONE 9", "There's no item 9 in your last list."),
        ("SKIP", "Sorry, I didn't get that."),
    ],
)
async def test_not_understood_never_silent(
    chat: Chat, fakes: Fakes, text: str, reply_start: str
) -> None:
    answer = await chat.say(text)
    assert answer["reply"].startswith(reply_start)
    assert fakes.contacts.interactions == {}


async def test_bad_requests_change_nothing(
    chat: Chat, fakes: Fakes, clock: ControllableClock
) -> None:
    client = chat.client
    url = "/internal/v1/replies"
    good = {"user_id": chat.uid, "from": "+15550000000", "text": "1", "message_sid": "SMx"}
    resp = await client.post(
        url, json={**good, "message_sid": "bad sid!"}, headers=service_headers(clock)
    )
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    resp = await client.post(url, json={"text": "1"}, headers=service_headers(clock))
    assert resp.status == 422
    resp = await client.post(url, data="1", headers=service_headers(clock))
    assert resp.status == 415
    resp = await client.post(url, json=good)
    assert resp.status == 401
    resp = await client.post(url, json=good, headers=user_headers(clock, chat.uid))
    assert resp.status == 401
    resp = await client.post(
        url, json={**good, "user_id": "nobody"}, headers=service_headers(clock)
    )
    assert resp.status == 404
    assert fakes.contacts.interactions == {}
    # The refused attempt for an unknown user did not burn the message id.
    resp = await client.post(url, json=good, headers=service_headers(clock))
    assert resp.status == 200


async def test_contacts_outage_is_a_502_and_a_retry_works(
    chat: Chat, fakes: Fakes, clock: ControllableClock
) -> None:
    good = {
        "user_id": chat.uid,
        "from": "+15550000000",
        "text": "MET Sam coffee",
        "message_sid": "SMretry",
    }
    fakes.contacts.down = True
    resp = await chat.client.post("/internal/v1/replies", json=good, headers=service_headers(clock))
    assert resp.status == 502
    assert resp.content_type == "application/problem+json"
    fakes.contacts.down = False
    assert fakes.contacts.interactions == {}
    resp = await chat.client.post("/internal/v1/replies", json=good, headers=service_headers(clock))
    assert resp.status == 200
    assert len(fakes.contacts.interactions) == 1


async def test_confirmations_stay_in_gsm7_when_a_name_has_an_emoji(
    chat: Chat, fakes: Fakes
) -> None:
    """A confirmation is an SMS too: an emoji or a letter outside GSM-7 must not make it UCS-2."""
    fakes.contacts.add_contact(chat.uid, "Zoë 🏀", tier="C", last_interaction_at=START)
    await sync(chat.client)
    answer = await chat.say("MET Zoë coffee")
    assert answer["reply"].startswith("Logged 1-2-1 with Zoe. Next check-in")
    assert is_gsm7(answer["reply"])
    [action] = answer["actions"]
    assert action["contact_name"] == "Zoë 🏀"  # the record keeps the name as written
