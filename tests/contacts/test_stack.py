"""Contacts in the whole system: real processes for all three services on one database server.

Sign-in codes go out through notifier's sandbox, reminders learns about new contacts from the
change feed, and an SMS reply is logged (and undone) through the internal API.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.support.http import request_json, wait_for
from tests.support.stack import SERVICES, Stack

PHONE = "+14155550123"


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    """A JSON request; returns (status, body)."""
    return request_json(method, url, body, {"Authorization": f"Bearer {token}"} if token else {})


def eventually(check: Any, timeout_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    return wait_for(check, "the condition", timeout_s)


@pytest.fixture
def stack(mongodb_uri: str, tmp_path: Path) -> Iterator[Stack]:
    """The three services, started and stopped by this test."""
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    system = Stack(mongodb_uri, prefix, tmp_path)
    try:
        system.start()
        yield system
    finally:
        system.stop()
        client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
        for name in SERVICES:
            client.drop_database(f"{prefix}_{name}")
        client.close()


def test_sign_in_feed_and_sms_reply(stack: Stack) -> None:
    contacts = stack.url("contacts")
    eventually(lambda: call(contacts + "/readyz")[0] == 200)
    status, started = call(contacts + "/v1/auth/otp/start", "POST", {"phone": PHONE})
    assert status == 202, started

    def code() -> str | None:
        _, box = stack.internal("notifier", "GET", "/internal/v1/sandbox/outbox?to=%2B14155550123")
        items = (box or {}).get("items") or []
        found = re.search(r"\b(\d{6})\b", items[0]["body"]) if items else None
        return found.group(1) if found else None

    body = {"challenge_id": started["challenge_id"], "code": eventually(code)}
    status, tokens = call(contacts + "/v1/auth/otp/verify", "POST", body)
    assert status == 200, tokens
    access, user_id = tokens["access_token"], tokens["user"]["id"]
    status, dana = call(
        contacts + "/v1/contacts", "POST", {"name": "Dana Lee", "tier": "A"}, access
    )
    assert status == 201, dana

    def reminders_knows() -> bool:
        status, export = stack.internal(
            "reminders", "GET", f"/internal/v1/users/{user_id}/export", caller="contacts"
        )
        return status == 200 and any(c["name"] == "Dana Lee" for c in export.get("contacts", []))

    eventually(reminders_knows)

    status, reply = stack.internal(
        "notifier",
        "POST",
        "/internal/v1/sandbox/inbound",
        {"from": PHONE, "text": "MET Dana coffee"},
    )
    assert status == 200, reply
    assert "Dana Lee" in reply["reply"]
    _, contact = call(contacts + f"/v1/contacts/{dana['id']}", token=access)
    assert contact["interaction_count"] == 1
    assert contact["interactions_by_kind"] == {"one_to_one": 1}

    status, reply = stack.internal(
        "notifier", "POST", "/internal/v1/sandbox/inbound", {"from": PHONE, "text": "UNDO"}
    )
    assert status == 200, reply
    _, contact = call(contacts + f"/v1/contacts/{dana['id']}", token=access)
    assert contact["interaction_count"] == 0
    assert contact["last_interaction_at"] is None
