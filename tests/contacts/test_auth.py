"""Sign-in by SMS code, tokens, refresh rotation with reuse detection, me, operator role."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from shared.clock import ControllableClock
from tests.contacts.conftest import OPERATOR, Client, FakeUpstream, bearer, sign_in

PHONE = "+14155550123"


async def start(client: Client, phone: str = PHONE, **headers: str) -> Any:
    return await client.post("/v1/auth/otp/start", json={"phone": phone}, headers=headers)


async def test_sign_in_creates_user_and_sends_code_only_by_sms(
    client: Client, notifier: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    resp = await start(client, "(415) 555-0123")  # national format, read in the default region
    assert resp.status == 202
    started = await resp.json()
    assert set(started) == {"challenge_id", "expires_at"}
    message = notifier.messages[-1]
    assert message["to"] == PHONE
    assert message["purpose"] == "otp"
    assert notifier.keys[-1] == f"otp:{started['challenge_id']}"
    code = notifier.last_code(PHONE)
    assert code not in await resp.text()

    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": started["challenge_id"], "code": code}
    )
    assert resp.status == 200
    text = await resp.text()
    assert code not in text
    tokens = await resp.json()
    assert tokens["user"]["phone"] == PHONE
    assert tokens["user"]["role"] == "networker"
    assert tokens["user"]["region"] == "US"
    assert tokens["user"]["time_zone"] == "America/Los_Angeles"
    assert code not in caplog.text
    assert PHONE not in caplog.text

    resp = await client.get("/v1/me", headers=bearer(tokens))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["id"] == tokens["user"]["id"]

    # The code is single-use.
    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": started["challenge_id"], "code": code}
    )
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"

    # Signing in again finds the same user.
    again = await sign_in(client, notifier, PHONE)
    assert again["user"]["id"] == tokens["user"]["id"]


async def test_wrong_codes_are_limited(client: Client, notifier: FakeUpstream) -> None:
    started = await (await start(client)).json()
    code = notifier.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    body = {"challenge_id": started["challenge_id"], "code": wrong}
    for left in (4, 3, 2, 1, 0):
        resp = await client.post("/v1/auth/otp/verify", json=body)
        assert resp.status == 401
        assert (await resp.json())["attempts_left"] == left
    # The challenge is gone: even the right code no longer works.
    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": started["challenge_id"], "code": code}
    )
    assert resp.status == 401


async def test_code_expires(
    client: Client, notifier: FakeUpstream, clock: ControllableClock
) -> None:
    started = await (await start(client)).json()
    code = notifier.last_code(PHONE)
    clock.advance(timedelta(seconds=301))
    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": started["challenge_id"], "code": code}
    )
    assert resp.status == 401


async def test_rate_limit_per_phone_then_window_passes(
    client: Client, notifier: FakeUpstream, clock: ControllableClock
) -> None:
    for _ in range(5):
        assert (await start(client)).status == 202
    resp = await start(client)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    metrics = await (await client.get("/metrics")).text()
    assert 'touchbase_contacts_otp_requests_total{outcome="sent"} 5.0' in metrics
    assert 'touchbase_contacts_otp_requests_total{outcome="rate_limited"} 1.0' in metrics
    assert len(notifier.messages) == 5
    # Another phone from the same address is still fine.
    assert (await start(client, "+14155550124")).status == 202
    clock.advance(timedelta(hours=1, seconds=1))
    assert (await start(client)).status == 202


@pytest.mark.parametrize("settings_overrides", [{"otp_max_per_ip": 3}])
async def test_rate_limit_per_client_address(client: Client, notifier: FakeUpstream) -> None:
    for i in range(3):
        assert (await start(client, f"+1415555013{i}")).status == 202
    resp = await start(client, "+14155550139")
    assert resp.status == 429
    assert len(notifier.messages) == 3


@pytest.mark.parametrize(
    "phone", ["12", "+1 415 555", "not a phone", "+999123456789", "555-0123-999999999"]
)
async def test_invalid_phone_is_refused(client: Client, notifier: FakeUpstream, phone: str) -> None:
    resp = await start(client, phone)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["errors"][0]["field"] == "phone"
    assert notifier.messages == []


async def test_bad_bodies(client: Client) -> None:
    resp = await client.post("/v1/auth/otp/start", json={"phone": PHONE, "extra": 1})
    assert resp.status == 422
    resp = await client.post(
        "/v1/auth/otp/start", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await client.post("/v1/auth/otp/verify", json={"challenge_id": "x", "code": "12"})
    assert resp.status == 422


async def test_notifier_down_gives_502_and_no_challenge(
    client: Client, notifier: FakeUpstream
) -> None:
    notifier.fail_with = 400
    resp = await start(client)
    assert resp.status == 502
    assert resp.content_type == "application/problem+json"


async def test_refresh_rotation_and_reuse_detection(client: Client, notifier: FakeUpstream) -> None:
    tokens = await sign_in(client, notifier, PHONE)
    first = tokens["refresh_token"]
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert resp.status == 200
    second = (await resp.json())["refresh_token"]
    assert second != first
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": second})
    assert resp.status == 200
    third = (await resp.json())["refresh_token"]

    # The first token comes back: someone replayed it. The whole family is revoked.
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert resp.status == 401
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": third})
    assert resp.status == 401
    metrics = await (await client.get("/metrics")).text()
    assert "touchbase_contacts_refresh_reuse_total 1.0" in metrics

    # A separate sign-in (another family) is unaffected.
    other = await sign_in(client, notifier, PHONE)
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert resp.status == 200


async def test_refresh_token_expires(
    client: Client, notifier: FakeUpstream, clock: ControllableClock
) -> None:
    tokens = await sign_in(client, notifier, PHONE)
    clock.advance(timedelta(days=31))
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401


async def test_logout_revokes_session(client: Client, notifier: FakeUpstream) -> None:
    tokens = await sign_in(client, notifier, PHONE)
    resp = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401  # needs the access token
    resp = await client.post(
        "/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens)
    )
    assert resp.status == 204
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401

    other = await sign_in(client, notifier, PHONE)
    resp = await client.post("/v1/auth/logout", json={"all": True}, headers=bearer(other))
    assert resp.status == 204
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert resp.status == 401


async def test_operator_role_comes_from_configuration(
    client: Client, notifier: FakeUpstream
) -> None:
    tokens = await sign_in(client, notifier, OPERATOR)
    assert tokens["user"]["role"] == "operator"
    resp = await client.patch("/v1/me", json={"role": "operator"}, headers=bearer(tokens))
    assert resp.status == 422
    plain = await sign_in(client, notifier, PHONE)
    resp = await client.patch("/v1/me", json={"role": "operator"}, headers=bearer(plain))
    assert resp.status == 422


async def test_patch_me(client: Client, alice: dict[str, Any]) -> None:
    resp = await client.patch(
        "/v1/me", json={"name": "Alice Doe", "time_zone": "Europe/Paris"}, headers=bearer(alice)
    )
    assert resp.status == 200
    me = await resp.json()
    assert me["name"] == "Alice Doe"
    assert me["time_zone"] == "Europe/Paris"
    for bad in (
        {"time_zone": "Mars/Base"},
        {"time_zone": None},
        {"locale": "english"},
        {"region": "XX"},
        {"name": ""},
    ):
        resp = await client.patch("/v1/me", json=bad, headers=bearer(alice))
        assert resp.status == 422, bad
    resp = await client.get("/v1/me", headers=bearer(alice))
    assert (await resp.json())["time_zone"] == "Europe/Paris"


async def test_business_profile(client: Client, alice: dict[str, Any]) -> None:
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["profile"] == {
        "what_i_do": None,
        "referrals_wanted": None,
        "ideal_partner_categories": [],
    }
    profile = {
        "what_i_do": "Home insurance for young families",
        "referrals_wanted": "New parents buying their first home",
        "ideal_partner_categories": ["mortgage broker", "realtor"],
    }
    resp = await client.patch("/v1/me", json={"profile": profile}, headers=bearer(alice))
    assert resp.status == 200
    assert (await resp.json())["profile"] == profile
    for bad in (
        {"profile": {"what_i_do": "x" * 1001}},
        {"profile": {"ideal_partner_categories": ["x"] * 21}},
        {"profile": {"ideal_partner_categories": [""]}},
        {"profile": {"unknown": 1}},
        {"profile": {"what_i_do": {"$ne": ""}}},
    ):
        resp = await client.patch("/v1/me", json=bad, headers=bearer(alice))
        assert resp.status == 422, bad
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["profile"] == profile, "a refused change changes nothing"
    resp = await client.patch("/v1/me", json={"profile": None}, headers=bearer(alice))
    assert (await resp.json())["profile"]["ideal_partner_categories"] == []


async def test_every_user_route_needs_a_token(client: Client) -> None:
    for method, path in [
        ("GET", "/v1/me"),
        ("GET", "/v1/contacts"),
        ("POST", "/v1/contacts"),
        ("GET", "/v1/stats"),
        ("GET", "/internal/v1/changes"),
    ]:
        resp = await client.request(method, path)
        assert resp.status == 401, path
    resp = await client.get("/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 401


async def test_concurrent_refreshes_with_one_token(client: Client, notifier: FakeUpstream) -> None:
    # Only one of two racing uses of a token can win; the other looks like theft and ends the
    # session (the app then signs in again), which is the safe side to err on.
    tokens = await sign_in(client, notifier, PHONE)
    body = {"refresh_token": tokens["refresh_token"]}
    answers = await asyncio.gather(
        client.post("/v1/auth/refresh", json=body), client.post("/v1/auth/refresh", json=body)
    )
    assert sorted(r.status for r in answers) == [200, 401]


async def test_concurrent_first_sign_ins_make_one_user(
    client: Client, notifier: FakeUpstream
) -> None:
    started = [await (await start(client)).json() for _ in range(2)]
    codes = [m["body"] for m in notifier.messages]
    assert len(codes) == 2
    pairs = []
    for challenge, body in zip(started, codes, strict=True):
        code = next(word for word in body.split() if word.rstrip(".").isdigit()).rstrip(".")
        pairs.append({"challenge_id": challenge["challenge_id"], "code": code})
    answers = await asyncio.gather(
        *(client.post("/v1/auth/otp/verify", json=pair) for pair in pairs)
    )
    assert [r.status for r in answers] == [200, 200]
    users = {(await r.json())["user"]["id"] for r in answers}
    assert len(users) == 1


@pytest.mark.parametrize("settings_overrides", [{"otp_max_per_ip": 2, "trust_forwarded_for": True}])
async def test_rate_limit_uses_the_address_the_proxy_saw(
    client: Client, notifier: FakeUpstream
) -> None:
    # A client cannot dodge the limit by prepending made-up addresses.
    for i in range(2):
        headers = {"X-Forwarded-For": f"10.0.0.{i}, 203.0.113.7"}
        assert (await start(client, f"+1415555014{i}", **headers)).status == 202
    resp = await start(client, "+14155550149", **{"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
    assert resp.status == 429
    resp = await start(client, "+14155550149", **{"X-Forwarded-For": "203.0.113.8"})
    assert resp.status == 202


@pytest.mark.parametrize(
    "settings_overrides", [{"otp_max_per_phone": 1000, "otp_max_per_ip": 100_000}]
)
async def test_no_token_of_a_family_works_after_reuse_whatever_the_interleaving(
    client: Client, notifier: FakeUpstream
) -> None:
    # A burst of parallel refreshes with one token: at most one wins and the others see reuse,
    # which ends the sign-in. The winner's new token must not outlive that, even when its insert
    # lands after the family was revoked (the race that let it through).
    rounds, burst = 25, 5
    for _ in range(rounds):
        tokens = await sign_in(client, notifier, PHONE)
        body = {"refresh_token": tokens["refresh_token"]}
        answers = await asyncio.gather(
            *(client.post("/v1/auth/refresh", json=body) for _ in range(burst))
        )
        statuses = sorted(r.status for r in answers)
        assert statuses.count(200) <= 1, statuses
        assert set(statuses) <= {200, 401}, statuses
        issued = [(await r.json())["refresh_token"] for r in answers if r.status == 200]
        for token in [*issued, tokens["refresh_token"]]:
            resp = await client.post("/v1/auth/refresh", json={"refresh_token": token})
            assert resp.status == 401, "a token of a revoked family still works"


@pytest.mark.parametrize(
    "settings_overrides", [{"otp_max_per_phone": 1000, "otp_max_per_ip": 100_000}]
)
async def test_a_sign_out_racing_a_refresh_ends_the_session(
    client: Client, notifier: FakeUpstream
) -> None:
    # The same rule for a sign-out: a refresh in flight cannot hand out a token that survives it.
    for everywhere in [False, True] * 10:
        tokens = await sign_in(client, notifier, PHONE)
        body = {"refresh_token": tokens["refresh_token"]}
        logout = {"all": True} if everywhere else body
        refreshed, out = await asyncio.gather(
            client.post("/v1/auth/refresh", json=body),
            client.post("/v1/auth/logout", json=logout, headers=bearer(tokens)),
        )
        assert out.status == 204
        if refreshed.status == 200:
            token = (await refreshed.json())["refresh_token"]
            resp = await client.post("/v1/auth/refresh", json={"refresh_token": token})
            assert resp.status == 401, "a token outlived the sign-out"
