"""Fixtures for the reminders service: a controllable clock, fake upstreams, app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.reminders.keys import SERVICE
from services.reminders.main import create_app
from services.reminders.service import RemindersService
from services.reminders.settings import RemindersSettings
from services.reminders.sync import ChangeFeedConsumer
from shared.auth import issue_access_token, issue_service_token
from shared.clock import ControllableClock
from shared.mongo import INDEXES_READY
from tests.reminders.fakes import FakeContacts, FakeNotifier
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET, make_settings

# A Monday, 06:00 UTC.
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@dataclass
class Fakes:
    """The fake upstream services and where they listen."""

    contacts: FakeContacts
    notifier: FakeNotifier
    contacts_url: str
    notifier_url: str


@pytest.fixture
def clock() -> ControllableClock:
    """A frozen clock every app in the test shares."""
    return ControllableClock(START, frozen=True)


@pytest.fixture
async def fakes(aiohttp_server: Any, clock: ControllableClock) -> Fakes:
    """Fake contacts and notifier servers on 127.0.0.1."""
    contacts = FakeContacts(clock)
    # reminders asks contacts for the role on /admin/ routes: the default subjects of
    # operator_headers are operators there.
    contacts.operators.update({"op-1", "op-7"})
    notifier = FakeNotifier(clock)
    cs = await aiohttp_server(contacts.app())
    ns = await aiohttp_server(notifier.app())
    return Fakes(
        contacts, notifier, str(cs.make_url("")).rstrip("/"), str(ns.make_url("")).rstrip("/")
    )


MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(
    aiohttp_client: Any, mongodb_uri: str, db_name: str, fakes: Fakes, clock: ControllableClock
) -> MakeClient:
    """Start a reminders app (one replica) on the test database; call again for more replicas."""

    async def make(**extra: Any) -> TestClient[web.Request, web.Application]:
        extra.setdefault("scheduler_enabled", False)
        settings = make_settings(
            RemindersSettings,
            mongodb_uri,
            db_name,
            contacts_url=fakes.contacts_url,
            notifier_url=fakes.notifier_url,
            **extra,
        )
        app = create_app(settings, clock=clock)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        await app[INDEXES_READY].wait()
        await app[SERVICE].init_defaults()
        return client

    return make


def svc(client: TestClient[web.Request, web.Application]) -> RemindersService:
    """The service object of a test app."""
    return client.app[SERVICE]


async def sync(client: TestClient[web.Request, web.Application]) -> int:
    """Drain the change feed into the app."""
    return await ChangeFeedConsumer(svc(client), 500).run_once()


def operator_headers(clock: ControllableClock, subject: str = "op-1") -> dict[str, str]:
    """Headers of an operator's request (tokens follow the wall clock, not the app clock)."""
    token = issue_access_token(JWT_SECRET, subject, "operator")
    return {"Authorization": f"Bearer {token}"}


def user_headers(clock: ControllableClock, user_id: str) -> dict[str, str]:
    """Headers of a networker's request."""
    token = issue_access_token(JWT_SECRET, user_id, "networker")
    return {"Authorization": f"Bearer {token}"}


def service_headers(clock: ControllableClock, caller: str = "notifier") -> dict[str, str]:
    """Headers of another service's request."""
    token = issue_service_token(INTERNAL_SECRET, caller, "reminders")
    return {"Authorization": f"Bearer {token}"}
