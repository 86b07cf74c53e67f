"""Operators change policy live; STOP, START and HELP behave as carriers require. Real processes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.http import Http, wait_for
from tests.support.stack import Stack

OPERATOR = "+12125550181"
NETWORKER = "+12125550182"
STRANGER = "+12125550189"


@pytest.fixture(scope="module")
def stack(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("ops")
    extra = {
        "contacts": {"OPERATOR_PHONES": OPERATOR},
        "reminders": {"SYNC_INTERVAL_S": "0.5", "SWEEP_INTERVAL_S": "0.5"},
        "notifier": {"POLL_INTERVAL_S": "0.2", "SEND_RATE_PER_SECOND": "20", "SEND_BURST": "5"},
    }
    running = Stack(mongodb_uri, "ops", logs, extra_env=extra, clock_start="2026-06-01T11:00:00Z")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def outbox(stack: Stack, phone: str) -> list[dict[str, Any]]:
    status, body = stack.internal(
        "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=50"
    )
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


def text(stack: Stack, phone: str, message: str) -> str | None:
    status, body = stack.internal(
        "notifier", "POST", "/internal/v1/sandbox/inbound", {"from": phone, "text": message}
    )
    assert status == 200, body
    reply: str | None = body["reply"]
    return reply


def sign_in(stack: Stack, phone: str) -> tuple[Http, str]:
    anonymous = Http()
    seen = {m["id"] for m in outbox(stack, phone)}
    status, started = anonymous(
        "POST", stack.url("contacts") + "/v1/auth/otp/start", {"phone": phone}
    )
    assert status == 202, started
    fresh = wait_for(
        lambda: [m for m in outbox(stack, phone) if m["id"] not in seen and m["purpose"] == "otp"],
        "the sign-in code",
    )
    code = re.search(r"\b(\d{6})\b", fresh[0]["body"])
    assert code
    status, tokens = anonymous(
        "POST",
        stack.url("contacts") + "/v1/auth/otp/verify",
        {"challenge_id": started["challenge_id"], "code": code.group(1)},
    )
    assert status == 200, tokens
    return Http(tokens["access_token"]), tokens["user"]["id"]


def test_operator_changes_take_effect_without_restart(stack: Stack) -> None:
    operator, _ = sign_in(stack, OPERATOR)
    networker, user_id = sign_in(stack, NETWORKER)
    reminders, contacts = stack.url("reminders"), stack.url("contacts")
    pids = {name: proc.process.pid for name, proc in stack.procs.items() if proc.process}

    # A networker cannot use the admin API at all.
    status, problem = networker("GET", reminders + "/admin/v1/tiers")
    assert status == 403, problem

    status, created = networker("POST", contacts + "/v1/contacts", {"name": "Jo Bell", "tier": "B"})
    assert status == 201

    def cadence_due() -> Any:
        _, upcoming = networker("GET", reminders + "/v1/touchpoints")
        return next(
            (
                tp
                for tp in upcoming.get("items", [])
                if tp.get("source") == "cadence" and tp["contact_id"] == created["id"]
            ),
            None,
        )

    before = wait_for(cadence_due, "the cadence touchpoint")

    # Tier B from 30 to 7 days: the contact's next touch moves earlier.
    status, tiers = operator("GET", reminders + "/admin/v1/tiers")
    assert status == 200
    tiers["tiers"]["B"] = {"ideal_days": 7, "max_days": 14}
    status, body = operator("PUT", reminders + "/admin/v1/tiers", {"tiers": tiers["tiers"]})
    assert status == 200, body
    after = wait_for(
        lambda: (tp := cadence_due()) and tp["due_at"] < before["due_at"] and tp,
        "the new cadence to apply",
    )
    assert after["due_at"] < before["due_at"]

    # A job's timing changes live.
    status, body = operator("PUT", reminders + "/admin/v1/jobs", {"sweep": 3})
    assert status == 200, body
    status, jobs = operator("GET", reminders + "/admin/v1/jobs")
    assert jobs["timings"]["sweep"] == 3
    wait_for(
        lambda: operator("GET", reminders + "/admin/v1/jobs")[1]["running"]["sweep"] == 3,
        "the scheduler to run the sweep every 3 s",
    )

    # The dry run shows what would go out, without sending anything.
    sent_before = len(outbox(stack, NETWORKER))
    status, dry = operator("GET", reminders + "/admin/v1/dry-run?days=7")
    assert status == 200, dry
    assert user_id in str(dry)
    assert len(outbox(stack, NETWORKER)) == sent_before

    # Pausing the user: the schedule says so, and the audit log has every change.
    status, body = operator(
        "PUT", reminders + f"/admin/v1/users/{user_id}/pause", {"until": "2026-07-01T00:00:00Z"}
    )
    assert status == 200, body
    status, schedule = operator("GET", reminders + f"/admin/v1/users/{user_id}/schedule")
    assert status == 200
    assert "2026-07-01" in str(schedule)
    status, audit = operator("GET", reminders + "/admin/v1/audit")
    assert len(audit["items"]) >= 3

    # Nothing was restarted.
    assert {name: proc.process.pid for name, proc in stack.procs.items() if proc.process} == pids


def test_stop_start_help_and_strangers(stack: Stack) -> None:
    _, user_id = sign_in(stack, NETWORKER)

    help_text = text(stack, NETWORKER, "help")
    assert help_text
    assert "STOP" in help_text

    stop = text(stack, NETWORKER, "Stop")
    assert stop
    assert "START" in stop
    # Nothing but a START confirmation goes to a stopped number, whatever the purpose.
    status, message = stack.internal(
        "notifier",
        "POST",
        "/internal/v1/messages",
        {"to": NETWORKER, "body": "a nudge", "purpose": "nudge", "user_id": user_id},
        caller="reminders",
    )
    assert status in (200, 201, 202), message
    status, _ = Http()("POST", stack.url("contacts") + "/v1/auth/otp/start", {"phone": NETWORKER})
    assert status == 202, "the answer does not reveal the opt-out"
    time.sleep(1.5)
    status, stored = stack.internal("notifier", "GET", f"/internal/v1/messages/{message['id']}")
    assert stored["status"] == "suppressed", stored
    delivered_after_stop = [
        m
        for m in outbox(stack, NETWORKER)
        if m["created_at"] > message["created_at"] and m["status"] not in ("suppressed",)
    ]
    assert delivered_after_stop == []

    start = text(stack, NETWORKER, "START")
    assert start

    # A number that is not a user gets one polite line, and nothing else happens.
    answer = text(stack, STRANGER, "MET 1 coffee")
    assert answer
    assert "\n" not in answer.strip()
