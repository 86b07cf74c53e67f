"""Any text a user can send gets an answer from the reply endpoint, never a 4xx or 5xx.

The notifier turns anything but a 200 into "Got it. We'll text you back shortly." and retries,
so an answer is the only acceptable outcome. The texts are arbitrary Unicode (controls, emoji,
any script), alone or after a command word and an item number, sent
one after another to the same user, so earlier answers (a pending "Which Dana?", UNDO, an item
already done) shape the state later ones meet.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.clock import ControllableClock
from tests.reminders.conftest import START, Fakes, MakeClient, svc, sync, user_headers
from tests.reminders.test_replies_api import Chat

PREFIXES = [
    "",
    "DONE ",
    "done 1 ",
    "2 ",
    "MET ",
    "MET 1 ",
    "met 3 ",
    "NOTE ",
    "NOTE 2: ",
    "REF ",
    "REF 1 > ",
    "GOT REF from ",
    "SNOOZE ",
    "SNOOZE 3 ",
    "SKIP ",
    "PAUSE ",
    "Dana ",
    "MET Dana ",
    "NOTE Dana: ",
    "REF Dana > ",
]

texts = st.tuples(
    st.sampled_from(PREFIXES),
    # Every code point but lone surrogates: text arrives as valid Unicode (the endpoint's
    # model refuses JSON that escapes a lone surrogate, and a Twilio webhook cannot carry one).
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=120)
    | st.text(alphabet=st.sampled_from(" 0123:.,>-#*😀é\x00\x1b\u200bDanLeSm"), max_size=40),
).map("".join)


@pytest.fixture
async def chat(make_client: MakeClient, fakes: Fakes, clock: ControllableClock) -> Chat:
    """A user whose last digest lists contacts and a one-off about someone not in contacts."""
    client = await make_client()
    uid = fakes.contacts.add_user(phone="+15550000000")
    old = START - timedelta(days=45)
    fakes.contacts.add_contact(uid, "Dana Lee", tier="B", last_interaction_at=old)
    fakes.contacts.add_contact(uid, "Dana Park", tier="B", last_interaction_at=old)
    fakes.contacts.add_contact(uid, "Sam Lee", tier="A", last_interaction_at=old)
    await sync(client)
    resp = await client.post(
        "/v1/touchpoints",
        json={"contact_name": "Plumber Bob", "reason": "Call back", "due_at": START.isoformat()},
        headers=user_headers(clock, uid),
    )
    assert resp.status == 201, await resp.text()
    user = await svc(client).repo.get_user(uid)
    assert user is not None
    clock.set(user["next_digest_at"], frozen=True)
    assert await svc(client).sweep() == {"sent": 1}
    return Chat(client, clock, uid)


# The fixture's app and user live for the whole test, shared by every example on purpose.
@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=texts)
async def test_every_text_gets_an_answer(chat: Chat, text: str) -> None:
    # Chat.say asserts the 200: anything else is what the notifier would retry in vain.
    answer = await chat.say(text)

    assert isinstance(answer["reply"], str)
    assert answer["reply"].strip(), text
    assert isinstance(answer["actions"], list)
