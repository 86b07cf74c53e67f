"""The operator role granted and revoked by the manage command, against FerretDB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.contacts.manage import set_operator_role
from services.contacts.settings import ContactsSettings
from shared.auth import verify_access_token
from shared.errors import NotFound, ValidationFailed
from tests.contacts.conftest import OPERATOR, Client, FakeUpstream, bearer, sign_in
from tests.contacts.test_internal import read_feed
from tests.support.settings import JWT_SECRET, base_env

ROOT = Path(__file__).resolve().parents[2]


async def refreshed_role(client: Client, tokens: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The role in a freshly refreshed access token, and the new token pair."""
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200, await resp.text()
    pair: dict[str, Any] = await resp.json()
    principal = verify_access_token(JWT_SECRET, pair["access_token"])
    assert principal.role is not None
    return principal.role, pair


async def user_entities(client: Client, user_id: str) -> list[dict[str, Any]]:
    feed = await read_feed(client)
    return [
        c["entity"] for c in feed["changes"] if c["kind"] == "user" and c["entity_id"] == user_id
    ]


async def test_grant_and_revoke_the_operator_role(
    client: Client, settings: ContactsSettings, alice: dict[str, Any]
) -> None:
    uid = alice["user"]["id"]
    assert alice["user"]["role"] == "networker"
    before = len(await user_entities(client, uid))

    assert await set_operator_role(settings, "+14155550123", True) == uid
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["role"] == "operator"
    role, tokens = await refreshed_role(client, alice)
    assert role == "operator"
    entities = await user_entities(client, uid)
    assert len(entities) == before + 1
    assert entities[-1]["role"] == "operator"

    # Granting again changes nothing and records nothing; national form in DEFAULT_REGION works.
    assert await set_operator_role(settings, "(415) 555-0123", True) == uid
    assert len(await user_entities(client, uid)) == before + 1

    assert await set_operator_role(settings, "+14155550123", False) == uid
    me = await (await client.get("/v1/me", headers=bearer(tokens))).json()
    assert me["role"] == "networker"
    role, _ = await refreshed_role(client, tokens)
    assert role == "networker"
    entities = await user_entities(client, uid)
    assert entities[-1]["role"] == "networker"


async def test_operator_phones_still_count_after_a_revoke(
    client: Client, settings: ContactsSettings, notifier: FakeUpstream
) -> None:
    tokens = await sign_in(client, notifier, OPERATOR)
    assert tokens["user"]["role"] == "operator"
    assert await set_operator_role(settings, OPERATOR, False) == tokens["user"]["id"]
    role, _ = await refreshed_role(client, tokens)
    assert role == "operator"  # stored role OR membership in OPERATOR_PHONES


async def test_unknown_or_invalid_phone_changes_nothing(
    client: Client, settings: ContactsSettings, alice: dict[str, Any]
) -> None:
    before = await read_feed(client)
    with pytest.raises(NotFound, match="no user has this phone number"):
        await set_operator_role(settings, "+14155550177", True)
    with pytest.raises(ValidationFailed, match="phone") as invalid:
        await set_operator_role(settings, "12345", True)
    assert invalid.value.extra["errors"][0]["field"] == "phone"
    after = await read_feed(client)
    assert len(after["changes"]) == len(before["changes"])
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["role"] == "networker"


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.contacts.manage", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_command_line(
    client: Client, mongodb_uri: str, db_name: str, alice: dict[str, Any]
) -> None:
    env = base_env(mongodb_uri, db_name, operator_phones=OPERATOR)
    done = run_manage(env, "grant-operator", "+14155550123")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == alice["user"]["id"]
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["role"] == "operator"
    assert "4155550123" not in done.stdout + done.stderr

    done = run_manage(env, "grant-operator", "+14155550123", "--revoke")
    assert done.returncode == 0, done.stderr
    me = await (await client.get("/v1/me", headers=bearer(alice))).json()
    assert me["role"] == "networker"

    done = run_manage(env, "grant-operator", "+14155550177")
    assert done.returncode == 1
    assert "no user has this phone number" in done.stderr
    done = run_manage(env, "grant-operator", "not-a-phone")
    assert done.returncode == 1
    assert "phone" in done.stderr
    done = run_manage(env, "grant-operator", OPERATOR, "--revoke")
    assert done.returncode == 1  # nobody signed up with it in this test
    # An unreachable database is a clear error, without the driver's details. (Run as a process:
    # the driver may leave a socket it was still connecting unclosed when the client closes.)
    away = {**env, "MONGODB_URI": "mongodb://127.0.0.1:9/", "MONGO_TIMEOUT_MS": "200"}
    done = run_manage(away, "grant-operator", "+14155550123")
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "error: cannot reach the contacts database (ServerSelectionTimeoutError)"
    )
    done = run_manage(env, "grant-operator")
    assert done.returncode == 2
    done = run_manage({k: v for k, v in env.items() if k != "MONGODB_URI"}, "grant-operator", "+1")
    assert done.returncode == 2
    assert "MONGODB_URI" in done.stderr
