"""Suite-wide fixtures: one database server per run, a fresh database per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from shared.devdb import DevDatabase


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """A MongoDB-wire server for the whole run (MONGODB_URI if set, else shared.devdb's engine)."""
    server = DevDatabase()
    uri = server.start()
    try:
        yield uri
    finally:
        server.close()


@pytest.fixture
def db_name(mongodb_uri: str) -> Iterator[str]:
    """A fresh database name for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_uri)
    try:
        for attempt in range(1, 6):
            try:
                client.drop_database(name)
                break
            except OperationFailure:
                # mongo-java-server 1.47 refuses a drop that races an index build: the app just
                # closed may have left one in flight, and it ends within milliseconds.
                if attempt == 5:
                    raise
                time.sleep(0.05 * attempt)
    finally:
        client.close()
