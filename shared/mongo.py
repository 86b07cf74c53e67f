"""The MongoDB client, index bootstrap and readiness check, as an aiohttp cleanup context."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.tasks import cancel_and_wait
from shared.web.keys import DB, MONGO_CLIENT, READINESS, SETTINGS

log = logging.getLogger(__name__)

Document = dict[str, Any]
Database = AsyncDatabase[Document]
IndexHook = Callable[[Database], Awaitable[None]]

INDEX_HOOKS: web.AppKey[list[IndexHook]] = web.AppKey("index_hooks", list)
INDEXES_READY: web.AppKey[asyncio.Event] = web.AppKey("indexes_ready", asyncio.Event)
_INDEX_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("index_task", asyncio.Task)


def create_client(uri: str, app_name: str, timeout_ms: int = 5000) -> AsyncMongoClient[Document]:
    """A client that returns tz-aware datetimes and fails fast when the server is away."""
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        appname=app_name,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=min(timeout_ms, 5000),
        # Retryable writes need sessions and a replica set; the driver turns them off otherwise.
        retryWrites=True,
    )


def is_duplicate_key(exc: BaseException) -> bool:
    """Whether ``exc`` is a unique-index violation (the claim guard's signal)."""
    return isinstance(exc, DuplicateKeyError)


async def _bootstrap_indexes(app: web.Application) -> None:
    # The service starts even when the database is down; indexes are created as soon as it
    # answers, and /readyz reports "indexes pending" until then.
    delay = 0.5
    while True:
        try:
            for hook in app[INDEX_HOOKS]:
                await hook(app[DB])
        except PyMongoError as exc:
            log.warning("index bootstrap failed, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        else:
            app[INDEXES_READY].set()
            log.info("indexes ready")
            return


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the client inside the running loop, bootstrap indexes, close on shutdown."""
    settings = app[SETTINGS]
    client = create_client(settings.mongodb_uri, settings.service_name, settings.mongo_timeout_ms)
    app[MONGO_CLIENT] = client
    app[DB] = client[settings.db_name]
    app[INDEXES_READY] = asyncio.Event()
    app[_INDEX_TASK] = asyncio.create_task(_bootstrap_indexes(app), name="index-bootstrap")

    async def check() -> dict[str, Any]:
        start = time.perf_counter()
        await app[DB].command("ping")
        latency = round((time.perf_counter() - start) * 1000, 1)
        if not app[INDEXES_READY].is_set():
            return {"status": "down", "reason": "indexes pending", "latency_ms": latency}
        return {"status": "up", "latency_ms": latency}

    app[READINESS]["mongodb"] = check
    try:
        yield
    finally:
        await cancel_and_wait([app[_INDEX_TASK]])
        await client.close()


def setup_mongo(app: web.Application, *hooks: IndexHook) -> None:
    """Register the Mongo cleanup context and this service's index hooks."""
    app[INDEX_HOOKS] = list(hooks)
    app.cleanup_ctx.append(mongo_ctx)
