"""Sign-in and account deletion against the real notifier app (sandbox transport)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from services.contacts.main import create_app
from services.contacts.settings import ContactsSettings
from services.notifier.main import create_app as create_notifier
from services.notifier.repository import MESSAGES
from services.notifier.settings import NotifierSettings
from shared.auth import issue_service_token
from shared.mongo import INDEXES_READY
from shared.web.keys import DB
from tests.contacts.conftest import FakeUpstream, bearer
from tests.support.settings import INTERNAL_SECRET, make_settings

PHONE = "+14155550123"


@pytest.fixture
async def real_notifier(
    aiohttp_server: Callable[..., Awaitable[TestServer]], mongodb_uri: str
) -> AsyncIterator[TestServer]:
    """The notifier service itself, with its sandbox transport, on its own database."""
    db = f"t_{uuid.uuid4().hex[:16]}"
    settings = make_settings(NotifierSettings, mongodb_uri, db, sms_transport="sandbox")
    app = create_notifier(settings)
    server = await aiohttp_server(app)
    await asyncio.wait_for(app[INDEXES_READY].wait(), 20)
    yield server
    await server.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    await client.drop_database(db)
    await client.close()


async def _outbox(server: TestServer, to: str) -> list[dict[str, Any]]:
    token = issue_service_token(INTERNAL_SECRET, "contacts", "notifier")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server.make_url("/internal/v1/sandbox/outbox"),
            params={"to": to},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        items: list[dict[str, Any]] = (await resp.json())["items"]
        return items


async def test_sign_in_and_delete_account_through_the_real_notifier(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    real_notifier: TestServer,
    reminders: FakeUpstream,
    mongodb_uri: str,
    db_name: str,
) -> None:
    settings = make_settings(
        ContactsSettings,
        mongodb_uri,
        db_name,
        notifier_url=str(real_notifier.make_url("")).rstrip("/"),
        reminders_url=reminders.url,
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    await asyncio.wait_for(app[INDEXES_READY].wait(), 20)

    resp = await client.post("/v1/auth/otp/start", json={"phone": PHONE})
    assert resp.status == 202, await resp.text()
    challenge = (await resp.json())["challenge_id"]
    # notifier's worker sends queued messages in the background; wait for the sandbox to have it.
    messages: list[dict[str, Any]] = []
    for _ in range(100):
        messages = await _outbox(real_notifier, PHONE)
        if messages:
            break
        await asyncio.sleep(0.1)
    assert len(messages) == 1
    assert messages[0]["purpose"] == "otp"
    found = re.search(r"\b(\d{6})\b", messages[0]["body"])
    assert found
    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": challenge, "code": found.group(1)}
    )
    assert resp.status == 200, await resp.text()
    tokens = await resp.json()

    resp = await client.delete("/v1/me", headers=bearer(tokens))
    assert resp.status == 204, await resp.text()
    assert reminders.deleted_users == [tokens["user"]["id"]]
    assert (await client.get("/v1/me", headers=bearer(tokens))).status == 404
    # The first sign-in code went out before the account existed (no user id at the notifier);
    # it is the phone's personal data and goes with the account.
    assert await _outbox(real_notifier, PHONE) == []
    stored = await real_notifier.app[DB][MESSAGES].find({"to": PHONE}).to_list()
    assert stored == []
