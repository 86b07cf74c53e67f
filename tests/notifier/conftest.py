"""Fixtures of the notifier tests: settings, the app on a real database, fake upstreams, Prism."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from services.notifier.main import create_app
from services.notifier.models import SendOutcome
from services.notifier.settings import NotifierSettings
from services.notifier.transport import SmsTransport
from shared.auth import issue_service_token, verify_service_token
from shared.clock import Clock, SystemClock
from shared.errors import Unauthorized
from tests.notifier.prism import PrismServer, prism_available
from tests.support.settings import INTERNAL_SECRET, make_settings

SANDBOX_TOKEN = "sandbox-signing-token-0123456789ab"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
FROM_NUMBER = "+15005550006"

SettingsFactory = Callable[..., NotifierSettings]
AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def service_headers(caller: str = "reminders", **extra: str) -> dict[str, str]:
    """Headers of a call from another service."""
    token = issue_service_token(INTERNAL_SECRET, caller, "notifier", SystemClock().now())
    return {"Authorization": f"Bearer {token}", **extra}


def sign(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's signature of a webhook request."""
    return str(RequestValidator(token).compute_signature(url, params))


@pytest.fixture
def notifier_settings(mongodb_uri: str, db_name: str) -> SettingsFactory:
    """Settings for a notifier under test; fast timings, sandbox unless told otherwise."""

    def make(**extra: Any) -> NotifierSettings:
        values: dict[str, Any] = {
            "poll_interval_s": 0.05,
            "reap_interval_s": 0.2,
            "send_rate_per_second": 1000,
            "retry_base_s": 0,
            "retry_max_s": 0,
            "twilio_sandbox_auth_token": SANDBOX_TOKEN,
            "reply_timeout_s": 2,
            "http_timeout_s": 2,
        }
        values.update(extra)
        return make_settings(NotifierSettings, mongodb_uri, db_name, **values)

    return make


@pytest.fixture
def notifier_app(aiohttp_client: Any, notifier_settings: SettingsFactory) -> AppFactory:
    """Start a notifier app (the real factory) and return its test client."""

    async def start(
        *, clock: Clock | None = None, transport: SmsTransport | None = None, **extra: Any
    ) -> TestClient[web.Request, web.Application]:
        settings = notifier_settings(**extra)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(settings, clock=clock, transport=transport)
        )
        return client

    return start


@dataclass
class FakeUpstreams:
    """Small fakes of contacts (user by phone) and reminders (replies) for the inbound path."""

    users: dict[str, str] = field(default_factory=dict)
    reply_delay_s: float = 0.0
    reminders_status: int = 200
    contacts_status: int | None = None
    replies: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)

    def app(self) -> web.Application:
        """Both fakes as one app (different paths)."""
        app = web.Application()
        app.router.add_get("/internal/v1/users/by-phone", self._by_phone)
        app.router.add_post("/internal/v1/replies", self._reply)
        return app

    @staticmethod
    def _check(request: web.Request, audience: str) -> None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            verify_service_token(INTERNAL_SECRET, token, audience, SystemClock().now())
        except Unauthorized:
            raise web.HTTPUnauthorized() from None

    async def _by_phone(self, request: web.Request) -> web.Response:
        self._check(request, "contacts")
        if self.contacts_status is not None:
            return web.json_response({}, status=self.contacts_status)
        phone = request.query["phone"]
        if phone not in self.users:
            return web.json_response({"status": 404}, status=404)
        return web.json_response({"id": self.users[phone], "phone": phone, "name": "Ada"})

    async def _reply(self, request: web.Request) -> web.Response:
        self._check(request, "reminders")
        body = await request.json()
        self.replies.append(body)
        if self.reply_delay_s:
            await asyncio.sleep(self.reply_delay_s)
        if self.reminders_status != 200:
            return web.json_response({}, status=self.reminders_status)
        # Idempotent by message_sid, like the real reminders service.
        answer = self.answers.setdefault(
            body["message_sid"], f"Logged: {body['text']} (#{len(self.answers) + 1})"
        )
        return web.json_response({"reply": answer, "actions": []})


@pytest.fixture
async def upstreams(aiohttp_server: Any) -> tuple[FakeUpstreams, TestServer]:
    """Running fakes of contacts and reminders."""
    fake = FakeUpstreams()
    server: TestServer = await aiohttp_server(fake.app())
    return fake, server


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    """Prism mocking Twilio's API from Twilio's published OpenAPI spec, for the whole run."""
    if not prism_available():
        pytest.skip("Prism is not installed: run scripts/bootstrap (npm ci)")
    server = PrismServer(Path(tmp_path_factory.mktemp("prism")) / "prism.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, interval_s: float = 0.05
) -> None:
    """Poll ``check`` until it holds, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval_s)


@dataclass
class RecordingTransport:
    """A transport that records each send (for counting sends across workers) and accepts it."""

    delay_s: float = 0.0
    sends: list[tuple[float, str, str]] = field(default_factory=list)
    name: str = "sandbox"

    async def send(
        self, *, to: str, body: str, status_callback: str | None, purpose: str
    ) -> SendOutcome:
        """Record the send, wait ``delay_s``, accept."""
        self.sends.append((asyncio.get_running_loop().time(), to, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return SendOutcome(provider_sid="SM" + uuid.uuid4().hex, provider_status="queued")

    async def close(self) -> None:
        """Nothing to release."""
