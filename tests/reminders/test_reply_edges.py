"""Replies at the edges: items without a contact, names contacts refuses, text contacts refuses.

Every one of these used to end in a 5xx or 4xx from the reply endpoint, which the notifier
answers with "Got it. We'll text you back shortly." and then retries in vain.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from services.contacts.main import create_app as create_contacts_app
from services.contacts.settings import ContactsSettings
from services.reminders.gateways import ContactsGateway
from shared.clock import ControllableClock
from shared.http import ServiceClient
from shared.mongo import INDEXES_READY
from shared.sms import count_segments
from tests.reminders.conftest import START, Fakes, MakeClient, svc, sync, user_headers
from tests.reminders.test_replies_api import Chat
from tests.support.settings import INTERNAL_SECRET, make_settings


@pytest.fixture
async def chat(make_client: MakeClient, fakes: Fakes, clock: ControllableClock) -> Chat:
    """A user whose last digest lists Dana Lee and a one-off about someone not in contacts."""
    client = await make_client()
    uid = fakes.contacts.add_user(phone="+15550000000")
    fakes.contacts.add_contact(
        uid, "Dana Lee", tier="B", last_interaction_at=START - timedelta(days=45)
    )
    await sync(client)
    resp = await client.post(
        "/v1/touchpoints",
        json={
            "contact_name": "Plumber Bob",
            "reason": "Call back about the quote",
            "due_at": START.isoformat(),
        },
        headers=user_headers(clock, uid),
    )
    assert resp.status == 201, await resp.text()
    user = await svc(client).repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    assert await svc(client).sweep() == {"sent": 1}
    return Chat(client, clock, uid)


async def _item(chat: Chat, name: str) -> dict[str, Any]:
    user = await svc(chat.client).repo.get_user(chat.uid)
    assert user is not None
    item: dict[str, Any] = next(
        i for i in user["last_digest"]["items"] if i["contact_name"] == name
    )
    return item


async def _state(chat: Chat, touchpoint_id: str) -> str:
    tp = await svc(chat.client).repo.get_touchpoint(touchpoint_id)
    assert tp is not None
    return str(tp["state"])


@pytest.mark.parametrize("text", ["DONE {n}", "{n}", "done {n} left a voicemail"])
async def test_done_on_an_item_without_a_contact_closes_it(
    chat: Chat, fakes: Fakes, text: str
) -> None:
    bob = await _item(chat, "Plumber Bob")
    assert bob["contact_id"] is None

    answer = await chat.say(text.format(n=bob["n"]))

    assert answer["reply"].startswith("Marked Plumber Bob done."), answer
    assert count_segments(answer["reply"])[1] == 1
    assert await _state(chat, bob["touchpoint_id"]) == "done"
    assert fakes.contacts.interactions == {}
    # UNDO puts the item back on the list.
    undone = await chat.say("UNDO")
    assert undone["reply"].startswith("Undone"), undone
    assert await _state(chat, bob["touchpoint_id"]) != "done"


async def test_met_on_an_item_without_a_contact_closes_it_and_says_nothing_was_logged(
    chat: Chat, fakes: Fakes
) -> None:
    bob = await _item(chat, "Plumber Bob")

    answer = await chat.say(f"MET {bob['n']} coffee, agreed: send the quote")

    assert answer["reply"].startswith("Marked Plumber Bob done."), answer
    assert "not in your contacts" in answer["reply"]
    assert count_segments(answer["reply"])[1] == 1
    assert await _state(chat, bob["touchpoint_id"]) == "done"
    assert fakes.contacts.interactions == {}


@pytest.mark.parametrize(
    "text",
    [
        "NOTE {n} x",
        "NOTE {n}: son starts college",
        "REF {n} > Sam Lee plumber",
        "GOT REF from {n}: job",
    ],
)
async def test_notes_and_referrals_on_an_item_without_a_contact_are_refused_clearly(
    chat: Chat, fakes: Fakes, text: str
) -> None:
    bob = await _item(chat, "Plumber Bob")

    answer = await chat.say(text.format(n=bob["n"]))

    assert "Plumber Bob isn't in your contacts" in answer["reply"], answer
    assert count_segments(answer["reply"])[1] == 1
    assert await _state(chat, bob["touchpoint_id"]) not in ("done", "skipped")
    assert fakes.contacts.interactions == {}
    assert fakes.contacts.referrals == {}
    # Nothing was done, so there is nothing to undo.
    assert "UNDO" not in answer["reply"]
    assert (await chat.say("UNDO"))["reply"].startswith("Nothing to undo")


@pytest.mark.parametrize(
    "text",
    [
        "met .*",
        "MET 😀",
        "MET 😀 coffee",
        "NOTE %%%: hi",
        "DONE ***",
        "SKIP ###",
        "SNOOZE ~~~ 2w",
        "GOT REF from ...: job",
        "REF ### > Sam plumber",
        "DONE " + "Zed" * 60,
        "MET " + " ".join(["Zedekiah"] * 30),
    ],
)
async def test_names_contacts_refuses_get_couldnt_find(chat: Chat, fakes: Fakes, text: str) -> None:
    answer = await chat.say(text)

    assert answer["reply"].startswith("I couldn't find a contact"), answer
    assert count_segments(answer["reply"])[1] == 1, answer["reply"]
    assert answer["actions"] == []
    assert fakes.contacts.interactions == {}


async def test_a_long_run_of_words_still_finds_the_contact_at_its_start(
    chat: Chat, fakes: Fakes
) -> None:
    answer = await chat.say("MET Dana " + " ".join(["coffee"] * 120))

    assert answer["reply"].startswith("Logged 1-2-1 with Dana Lee."), answer


async def test_a_contact_deleted_since_the_digest_gets_an_answer(chat: Chat, fakes: Fakes) -> None:
    dana = await _item(chat, "Dana Lee")
    fakes.contacts.delete_contact(dana["contact_id"])

    answer = await chat.say(f"DONE {dana['n']}")

    assert answer["reply"].startswith("Dana Lee is no longer in your contacts."), answer
    assert "UNDO" not in answer["reply"]
    assert fakes.contacts.interactions == {}


async def test_one_refused_item_does_not_hold_back_the_others(chat: Chat, fakes: Fakes) -> None:
    dana = await _item(chat, "Dana Lee")
    bob = await _item(chat, "Plumber Bob")

    answer = await chat.say(f"DONE {dana['n']} {bob['n']}")

    assert "Logged touch with Dana Lee." in answer["reply"], answer
    assert "Marked Plumber Bob done." in answer["reply"]
    assert len(fakes.contacts.interactions) == 1
    assert await _state(chat, bob["touchpoint_id"]) == "done"


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("NOTE Dana: hi\x01 there\x7f", "hi there"),
        ("MET Dana coffee\x00\x1b, agreed: intro\x08 to Sam", "coffee"),
    ],
)
async def test_control_characters_never_reach_contacts(
    chat: Chat, fakes: Fakes, text: str, stored: str
) -> None:
    answer = await chat.say(text)

    assert "Dana Lee" in answer["reply"], answer
    [logged] = fakes.contacts.interactions.values()
    assert logged["notes"] == stored
    for value in (logged["notes"], logged["next_action"] or ""):
        assert all(ch.isprintable() for ch in value)


async def test_a_long_referral_name_is_kept_within_what_contacts_takes(
    chat: Chat, fakes: Fakes
) -> None:
    answer = await chat.say("REF Dana > " + "Sam " * 80 + ": plumber")

    assert answer["reply"].startswith("Logged referral given to Dana Lee"), answer
    [referral] = fakes.contacts.referrals.values()
    assert len(referral["for_name"]) <= 200


async def test_the_gateway_reads_a_name_real_contacts_refuses_as_no_match(
    aiohttp_server: Any, mongodb_uri: str, db_name: str, clock: ControllableClock
) -> None:
    settings = make_settings(
        ContactsSettings,
        mongodb_uri,
        db_name,
        notifier_url="http://127.0.0.1:9",
        reminders_url="http://127.0.0.1:9",
        log_format="text",
    )
    app = create_contacts_app(settings, clock=clock)
    server: TestServer = await aiohttp_server(app)
    await app[INDEXES_READY].wait()
    client = ServiceClient(
        base_url=str(server.make_url("")),
        caller="reminders",
        audience="contacts",
        secret=INTERNAL_SECRET,
        clock=clock,
        attempts=1,
    )
    gateway = ContactsGateway(client)
    try:
        for name in (".*", "😀", "x" * 101, "-- --"):
            assert await gateway.match("0" * 32, name) == [], name
    finally:
        await client.close()
