"""The shared ETag and Idempotency-Key helpers, and the expiry sweep of the contacts service."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from pymongo import AsyncMongoClient

from services.contacts.main import _cleanup_once
from shared.clock import ControllableClock
from shared.errors import Conflict, PreconditionFailed, PreconditionRequired, ValidationFailed
from shared.web.etag import check_if_match, if_match_tags, make_etag, not_modified
from shared.web.idempotency import IdempotencyStore
from tests.contacts.conftest import START, Client, FakeUpstream


def test_etag_preconditions() -> None:
    tag = make_etag("abc", 3)
    assert tag == '"abc-3"'
    check_if_match(make_mocked_request("PATCH", "/", headers={"If-Match": tag}), tag)
    check_if_match(make_mocked_request("PATCH", "/", headers={"If-Match": "*"}), tag)
    check_if_match(make_mocked_request("PATCH", "/"), tag)
    with pytest.raises(PreconditionRequired):
        check_if_match(make_mocked_request("PATCH", "/"), tag, required=True)
    with pytest.raises(PreconditionFailed):
        check_if_match(make_mocked_request("PATCH", "/", headers={"If-Match": '"abc-2"'}), tag)
    with pytest.raises(PreconditionFailed):
        check_if_match(make_mocked_request("PATCH", "/", headers={"If-Match": f"W/{tag}"}), tag)
    assert not_modified(make_mocked_request("GET", "/", headers={"If-None-Match": f"W/{tag}"}), tag)
    assert if_match_tags(make_mocked_request("PATCH", "/")) is None
    assert if_match_tags(make_mocked_request("PATCH", "/", headers={"If-Match": "*"})) is None
    listed = make_mocked_request("PATCH", "/", headers={"If-Match": f'"a-1", {tag}, W/"b-2"'})
    assert if_match_tags(listed) == {'"a-1"', tag}
    assert not not_modified(make_mocked_request("GET", "/", headers={"If-None-Match": '"x"'}), tag)


@pytest.fixture
async def store(mongodb_uri: str, db_name: str) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    clock = ControllableClock(START, frozen=True)
    yield IdempotencyStore(client[db_name]["idem"], clock, timedelta(hours=1)), clock
    await client.close()


async def test_idempotency_runs_once_and_replays(store: Any) -> None:
    idem, clock = store
    calls = 0
    gate = asyncio.Event()

    async def produce() -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 201, {"n": calls}

    first = asyncio.create_task(idem.run(scope="s", key="k", body={"a": 1}, produce=produce))
    await asyncio.sleep(0.05)
    with pytest.raises(Conflict):  # the first one is still running
        await idem.run(scope="s", key="k", body={"a": 1}, produce=produce)
    gate.set()
    done = await first
    assert (done.status, done.body, done.replayed) == (201, {"n": 1}, False)
    again = await idem.run(scope="s", key="k", body={"a": 1}, produce=produce)
    assert (again.body, again.replayed) == ({"n": 1}, True)
    with pytest.raises(ValidationFailed):
        await idem.run(scope="s", key="k", body={"a": 2}, produce=produce)
    other_scope = await idem.run(scope="t", key="k", body={"a": 1}, produce=produce)
    assert other_scope.body == {"n": 2}
    clock.advance(timedelta(hours=2))
    expired = await idem.run(scope="s", key="k", body={"a": 2}, produce=produce)
    assert (expired.body, expired.replayed) == ({"n": 3}, False)
    assert await idem.purge() == 1  # scope t is older than the retention period


async def test_failed_write_releases_the_key(store: Any) -> None:
    idem, _ = store

    async def boom() -> tuple[int, Any]:
        raise RuntimeError("db down")

    async def ok() -> tuple[int, Any]:
        return 201, {"ok": True}

    with pytest.raises(RuntimeError):
        await idem.run(scope="s", key="k", body={}, produce=boom)
    result = await idem.run(scope="s", key="k", body={}, produce=ok)
    assert result.body == {"ok": True}


async def test_cleanup_removes_expired_records(
    client: Client, notifier: FakeUpstream, clock: ControllableClock, mongodb_uri: str, db_name: str
) -> None:
    await client.post("/v1/auth/otp/start", json={"phone": "+14155550123"})
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        db = mongo[db_name]
        assert await db["otp_challenges"].count_documents({}) == 1
        assert await db["rate_events"].count_documents({}) == 2
        await _cleanup_once(client.app)
        assert await db["otp_challenges"].count_documents({}) == 1
        clock.advance(timedelta(hours=2))
        await _cleanup_once(client.app)
        assert await db["otp_challenges"].count_documents({}) == 0
        assert await db["rate_events"].count_documents({}) == 0
    finally:
        await mongo.close()
