"""Sign-in codes: guessing is bounded, requests are rate-limited, and accounts stay secret."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.security.support import Reply, call, code_for, expect_problem, otp_start, outbox, sign_in
from tests.support.stack import Stack

MAX_ATTEMPTS = 5  # OTP_MAX_ATTEMPTS default
MAX_PER_PHONE = 5  # OTP_MAX_PER_PHONE default


def verify(stack: Stack, challenge_id: str, code: str) -> Reply:
    return call(
        "POST",
        stack.url("contacts") + "/v1/auth/otp/verify",
        {"challenge_id": challenge_id, "code": code},
    )


def wrong(code: str, n: int) -> str:
    """The n-th code that is not ``code``."""
    return f"{(int(code) + 1 + n) % 10**6:06d}"


def shape(reply: Reply) -> tuple[int, str, Any]:
    """What a client can see of an answer apart from values that differ per request."""
    body = reply.json
    keys = tuple(sorted(body)) if isinstance(body, dict) else None
    return reply.status, reply.content_type, keys


def test_answers_do_not_reveal_whether_a_number_has_an_account(stack: Stack) -> None:
    known, unknown = "+12125550331", "+12125550332"
    sign_in(stack, known)  # one start used
    timings: dict[str, list[float]] = {known: [], unknown: []}
    replies: dict[str, list[Reply]] = {known: [], unknown: []}
    for _ in range(3):
        for phone in (known, unknown):
            began = time.perf_counter()
            replies[phone].append(otp_start(stack, phone))
            timings[phone].append(time.perf_counter() - began)
    for phone in (known, unknown):
        assert all(r.status == 202 for r in replies[phone]), [r.json for r in replies[phone]]
    assert {shape(r) for r in replies[known]} == {shape(r) for r in replies[unknown]}
    assert len({shape(r) for r in replies[known]}) == 1
    # Not grossly different: both paths do the same work (store, queue an SMS).
    slow, fast = statistics.median(timings[known]), statistics.median(timings[unknown])
    assert abs(slow - fast) < 0.5 or max(slow, fast) < 3 * min(slow, fast), timings
    # Wrong codes and unknown challenges answer alike too.
    a = verify(stack, replies[known][0].json["challenge_id"], "000000")
    b = verify(stack, replies[unknown][0].json["challenge_id"], "000000")
    assert shape(a) == shape(b)
    assert a.json["detail"] == b.json["detail"]
    ghost = verify(stack, uuid.uuid4().hex, "000000")
    assert ghost.status == a.status == 401
    assert ghost.json["detail"] == a.json["detail"]


def test_wrong_codes_lock_the_challenge(stack: Stack) -> None:
    phone = "+12125550333"
    seen = {m["id"] for m in outbox(stack, phone)}
    started = otp_start(stack, phone)
    code = code_for(stack, phone, seen)
    challenge = started.json["challenge_id"]
    lefts = []
    for n in range(MAX_ATTEMPTS):
        got = verify(stack, challenge, wrong(code, n))
        expect_problem(got, 401, got.json)
        lefts.append(got.json.get("attempts_left"))
    assert lefts == [4, 3, 2, 1, 0], lefts
    # The right code no longer helps: the challenge is gone.
    late = verify(stack, challenge, code)
    assert late.status in (401, 429), late.json
    assert "access_token" not in late.raw.decode(), late.json


def test_a_burst_of_guesses_cannot_exceed_the_attempt_limit(stack: Stack) -> None:
    phone = "+12125550334"
    seen = {m["id"] for m in outbox(stack, phone)}
    started = otp_start(stack, phone)
    code = code_for(stack, phone, seen)
    challenge = started.json["challenge_id"]
    guesses = [wrong(code, n) for n in range(40)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda g: verify(stack, challenge, g), guesses))
    assert all(r.status in (401, 429) for r in results), [r.status for r in results]
    late = verify(stack, challenge, code)
    assert late.status in (401, 429), late.json
    # Every answer that reports attempts_left is a guess that was actually compared.
    compared = [r for r in results if "attempts_left" in (r.json or {})]
    assert len(compared) <= MAX_ATTEMPTS, f"{len(compared)} guesses were checked"


def test_codes_are_single_use(stack: Stack) -> None:
    phone = "+12125550335"
    seen = {m["id"] for m in outbox(stack, phone)}
    started = otp_start(stack, phone)
    code = code_for(stack, phone, seen)
    challenge = started.json["challenge_id"]
    first = verify(stack, challenge, code)
    assert first.status == 200, first.json
    again = verify(stack, challenge, code)
    expect_problem(again, 401, again.json)


def test_requests_per_number_are_limited(stack: Stack) -> None:
    phone = "+12125550336"
    answers = [otp_start(stack, phone) for _ in range(MAX_PER_PHONE + 2)]
    assert [a.status for a in answers] == [202] * MAX_PER_PHONE + [429, 429]
    assert answers[-1].is_problem(429)
    assert int(answers[-1].headers["Retry-After"]) > 0
    # Formatting the same number differently does not open a new bucket.
    other = otp_start(stack, "(212) 555-0336")
    assert other.status in (429, 422), other.json


def test_a_burst_of_requests_cannot_exceed_the_limit(stack: Stack) -> None:
    phone = "+12125550337"
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda _: otp_start(stack, phone), range(24)))
    accepted = [a for a in answers if a.status == 202]
    assert all(a.status in (202, 429) for a in answers), [a.status for a in answers]
    time.sleep(1.0)
    sent = [m for m in outbox(stack, phone) if m["purpose"] == "otp"]
    counts = f"{len(accepted)} codes accepted, {len(sent)} SMS queued"
    assert len(accepted) <= MAX_PER_PHONE, counts
    assert len(sent) <= MAX_PER_PHONE, counts
