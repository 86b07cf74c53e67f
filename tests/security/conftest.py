"""One running system (contacts, reminders, notifier as real processes) for the security suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.security.support import OPERATOR_PHONE, SANDBOX_AUTH_TOKEN, User, sign_in
from tests.support.stack import SERVICES, Stack

LOG_SCAN_MODULE = "test_logs.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scan the logs after every other test of this suite has had its say."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    ours = sorted((items[i] for i in slots), key=lambda item: item.path.name == LOG_SCAN_MODULE)
    for slot, item in zip(slots, ours, strict=True):
        items[slot] = item


def stack_env() -> dict[str, dict[str, str]]:
    """Settings of the suite's system: fast workers, a known sandbox token, one operator."""
    return {
        # Every client here comes from 127.0.0.1: the per-address limit is tested in
        # tests/contacts; the per-phone limit stays at its default of 5 an hour.
        "contacts": {"OPERATOR_PHONES": OPERATOR_PHONE, "OTP_MAX_PER_IP": "100000"},
        "reminders": {"SYNC_INTERVAL_S": "0.5", "SWEEP_INTERVAL_S": "0.5"},
        "notifier": {
            "POLL_INTERVAL_S": "0.1",
            "SEND_RATE_PER_SECOND": "100",
            "SEND_BURST": "50",
            "TWILIO_SANDBOX_AUTH_TOKEN": SANDBOX_AUTH_TOKEN,
            "INBOUND_RATE_PER_MINUTE": "1000",
            "INBOUND_BURST": "200",
        },
    }


def running_stack(mongodb_uri: str, log_dir: Path, **kwargs: Any) -> Iterator[Stack]:
    """Start a system on fresh databases; stop it and drop them afterwards."""
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    stack = Stack(mongodb_uri, prefix, log_dir, extra_env=stack_env(), **kwargs)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
        try:
            for name in SERVICES:
                client.drop_database(f"{prefix}_{name}")
        finally:
            client.close()


@pytest.fixture(scope="package")
def security_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the shared system's services write their logs."""
    return tmp_path_factory.mktemp("security-logs")


@pytest.fixture(scope="package")
def stack(mongodb_uri: str, security_logs: Path) -> Iterator[Stack]:
    """The system every module of the suite attacks."""
    yield from running_stack(mongodb_uri, security_logs, clock_start="2026-06-01T14:00:00Z")


@pytest.fixture(scope="package")
def operator(stack: Stack) -> User:
    """A signed-in operator (listed in OPERATOR_PHONES)."""
    return sign_in(stack, OPERATOR_PHONE)


def db(stack: Stack, service: str) -> Any:
    """A read handle on one service's database, to prove nothing was stored."""
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongodb_uri)
    return client, client[f"{stack.db_prefix}_{service}"]
