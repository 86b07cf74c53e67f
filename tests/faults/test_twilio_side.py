"""Twilio answering 5xx, 429 and timeouts; webhooks delivered twice and out of order."""

from __future__ import annotations

import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from twilio.request_validator import RequestValidator

from services.notifier.models import RANK_STATUS
from tests.faults.conftest import ONE_OFFS, USERS
from tests.faults.harness import FaultStack, audit, open_window, seed, wait_settled
from tests.faults.twilio_side import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    FlakyTwilio,
    Request,
)

# Generous: the machine may be shared; alone, each test takes 40-100 s.
pytestmark = pytest.mark.timeout(420)


def test_twilio_fails_a_fifth_of_the_sends(
    make_stack: Callable[..., FaultStack], twilio: FlakyTwilio
) -> None:
    fs = make_stack()
    due = seed(fs, USERS, ONE_OFFS)
    twilio.flaky = True
    open_window(fs)
    wait_settled(fs, 150)
    injected = Counter(r.outcome for r in twilio.snapshot() if r.body.startswith("touchbase: "))
    result = audit(fs)
    print(f"flaky Twilio {dict(injected)}: {result.summary()}")
    assert result.due == due
    assert sum(n for k, n in injected.items() if k != "accepted") > 0, "no fault was injected"
    # Every digest ended accepted by Twilio, or failed/possibly_sent with an explanation (the
    # audit checks each); a digest reached a handset twice only after a lost answer.
    assert result.extra_sms <= injected["timeout_accepted"]
    assert result.possibly_sent > 0, "the lost answers and 5xx are flagged"


def _post_signed(url: str, params: dict[str, str]) -> tuple[int, str]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(params).encode(),
        method="POST",
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status, resp.read().decode()


def test_webhooks_twice_and_status_callbacks_out_of_order(
    make_stack: Callable[..., FaultStack], twilio: FlakyTwilio
) -> None:
    fs = make_stack()
    due = seed(fs, USERS, ONE_OFFS)
    open_window(fs)
    wait_settled(fs, 150)
    result = audit(fs)
    print(f"webhooks: {result.summary()}")
    assert result.due == due

    # Status callbacks: the final state first, earlier ones after it, every one twice.
    digests = [r for r in twilio.snapshot() if r.accepted and r.body.startswith("touchbase: ")]

    def callbacks(request: Request) -> None:
        assert request.status_callback, "the notifier asks for status callbacks"
        for status in ("delivered", "sent", "delivered", "queued"):
            params = {
                "AccountSid": ACCOUNT_SID,
                "MessageSid": str(request.sid),
                "MessageStatus": status,
                "To": request.to,
                "From": FROM_NUMBER,
            }
            assert _post_signed(request.status_callback, params)[0] == 200

    # Several messages' callbacks race each other, as they do from Twilio.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(callbacks, digests))
    messages = fs.read("notifier", "messages", {"purpose": "nudge"})
    assert len(messages) == USERS
    states = Counter(RANK_STATUS[int(m["status_rank"])] for m in messages)
    assert states == {"delivered": USERS}, states
    sids = {r.sid for r in digests}
    assert {m["provider_sid"] for m in messages} == sids

    # Replies delivered twice (Twilio retries a webhook it got no answer to): acted on once.
    inbound_url = fs.stack.url("notifier") + "/webhooks/twilio/sms"
    replied = fs.users[:10]
    for user in replied:
        params = {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": user.phone,
            "To": FROM_NUMBER,
            "Body": "1",
        }
        first = _post_signed(inbound_url, params)
        again = _post_signed(inbound_url, params)
        assert first[0] == again[0] == 200
        assert first[1] == again[1], "a repeated webhook gets the first answer"
    for user in replied:
        (claim,) = fs.read("reminders", "dispatches", {"user_id": user.id})
        first_item = claim["items"][0]["touchpoint_id"]
        (tp,) = fs.read("reminders", "touchpoints", {"_id": first_item})
        done = [h for h in tp["history"] if h.get("state") == "done"]
        assert tp["state"] == "done", tp["history"]
        assert len(done) == 1, tp["history"]
    phones = [u.phone for u in replied]
    assert len(fs.read("notifier", "inbound", {"from": {"$in": phones}})) == len(replied)
    # Nothing more went out: replies are answered in the webhook's TwiML, not as new SMS.
    assert len(fs.read("notifier", "messages", {"purpose": "nudge"})) == USERS
