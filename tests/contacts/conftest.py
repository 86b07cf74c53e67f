"""Fixtures of the contacts tests: the real app on FerretDB, fake notifier and reminders servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.contacts.main import create_app
from services.contacts.settings import ContactsSettings
from shared.auth import verify_service_token
from shared.clock import ControllableClock
from shared.mongo import INDEXES_READY
from tests.support.settings import INTERNAL_SECRET, make_settings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPERATOR = "+14155550100"


@dataclass
class FakeUpstream:
    """A stand-in for notifier or reminders that records what it was asked."""

    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    deleted_users: list[str] = field(default_factory=list)
    fail_with: int | None = None
    url: str = ""

    def last_code(self, phone: str) -> str:
        """The code in the last SMS sent to ``phone``."""
        for message in reversed(self.messages):
            if message["to"] == phone:
                found = re.search(r"\b(\d{6})\b", message["body"])
                assert found
                return found.group(1)
        raise AssertionError("no SMS to this phone")

    def app(self) -> web.Application:
        """The fake's aiohttp app; it checks service tokens like the real one."""

        def check(request: web.Request) -> None:
            token = request.headers["Authorization"].removeprefix("Bearer ")
            verify_service_token(INTERNAL_SECRET, token, self.name, datetime.now(UTC))

        async def post_message(request: web.Request) -> web.Response:
            check(request)
            if self.fail_with:
                return web.json_response({"status": self.fail_with}, status=self.fail_with)
            self.keys.append(request.headers["Idempotency-Key"])
            body = await request.json()
            self.messages.append(body)
            return web.json_response({"id": f"m{len(self.messages)}", **body}, status=201)

        async def delete_user(request: web.Request) -> web.Response:
            check(request)
            if self.fail_with:
                return web.json_response({"status": self.fail_with}, status=self.fail_with)
            self.deleted_users.append(request.match_info["user_id"])
            return web.Response(status=204)

        async def export(request: web.Request) -> web.Response:
            check(request)
            return web.json_response({"touchpoints": [], "user_id": request.match_info["uid"]})

        app = web.Application()
        app.router.add_post("/internal/v1/messages", post_message)
        app.router.add_delete("/internal/v1/users/{user_id}", delete_user)
        app.router.add_get("/internal/v1/users/{uid}/export", export)
        return app


@pytest.fixture
async def notifier(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeUpstream:
    """A fake notifier."""
    fake = FakeUpstream("notifier")
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def reminders(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeUpstream:
    """A fake reminders service."""
    fake = FakeUpstream("reminders")
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def clock() -> ControllableClock:
    """The app's clock, frozen at a known time."""
    return ControllableClock(START, frozen=True)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Per-module settings changes (override the fixture)."""
    return {}


@pytest.fixture
def settings(
    mongodb_uri: str,
    db_name: str,
    notifier: FakeUpstream,
    reminders: FakeUpstream,
    settings_overrides: dict[str, Any],
) -> ContactsSettings:
    """Contacts settings pointing at the fakes."""
    values: dict[str, Any] = {
        "notifier_url": notifier.url,
        "reminders_url": reminders.url,
        "operator_phones": OPERATOR,
        "change_feed_lag_s": 0,
        "log_format": "text",
    }
    values.update(settings_overrides)
    return make_settings(ContactsSettings, mongodb_uri, db_name, **values)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
    settings: ContactsSettings,
    clock: ControllableClock,
) -> TestClient[web.Request, web.Application]:
    """The real contacts app, with its indexes in place."""
    app = create_app(settings, clock=clock)
    test_client = await aiohttp_client(app)
    await asyncio.wait_for(app[INDEXES_READY].wait(), 20)
    return test_client


Client = TestClient[web.Request, web.Application]


async def sign_in(client: Client, notifier: FakeUpstream, phone: str) -> dict[str, Any]:
    """Sign ``phone`` in through the OTP flow; returns the token pair."""
    resp = await client.post("/v1/auth/otp/start", json={"phone": phone})
    assert resp.status == 202, await resp.text()
    started = await resp.json()
    code = notifier.last_code(phone)
    resp = await client.post(
        "/v1/auth/otp/verify", json={"challenge_id": started["challenge_id"], "code": code}
    )
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    """The Authorization header for a signed-in user."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def alice(client: Client, notifier: FakeUpstream) -> dict[str, Any]:
    """A signed-in networker (US number)."""
    return await sign_in(client, notifier, "+14155550123")


@pytest.fixture
async def bob(client: Client, notifier: FakeUpstream) -> dict[str, Any]:
    """Another signed-in networker (French number)."""
    return await sign_in(client, notifier, "+33612345678")
