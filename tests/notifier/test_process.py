"""The notifier as a real process: sandbox by default, sends, answers STOP, stops cleanly."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.notifier.conftest import SANDBOX_TOKEN, service_headers
from tests.support.processes import service_process
from tests.support.settings import base_env


def call(url: str, method: str = "GET", body: Any = None, **headers: str) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    for key, value in {**service_headers("cli"), **headers}.items():
        request.add_header(key, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_sandbox_process_end_to_end(mongodb_uri: str, db_name: str, tmp_path: Path) -> None:
    env = base_env(
        mongodb_uri,
        db_name,
        twilio_sandbox_auth_token=SANDBOX_TOKEN,
        public_base_url="https://sms.example.com",
        poll_interval_s=0.1,
    )
    env.pop("TEST_MODE")
    proc = service_process("notifier", env, tmp_path)
    proc.start()
    try:
        created = call(
            proc.url + "/internal/v1/messages",
            "POST",
            {"to": "+14155550188", "body": "Your code is 123456", "purpose": "otp"},
            **{"Idempotency-Key": "otp:1"},
        )
        assert created["status"] == "queued"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            outbox = call(proc.url + "/internal/v1/sandbox/outbox")
            if outbox["items"]:
                break
            time.sleep(0.1)
        assert [m["id"] for m in outbox["items"]] == [created["id"]]
        assert outbox["items"][0]["status"] == "delivered"
        stop = call(
            proc.url + "/internal/v1/sandbox/inbound",
            "POST",
            {"from": "+14155550188", "text": "stop"},
        )
        assert "unsubscribed" in stop["reply"]
    finally:
        code = proc.stop()
    assert code == 0
    logs = proc.logs()
    assert "123456" not in logs  # one-time codes never reach the logs
    assert "4155550188" not in logs  # phone numbers are masked
    assert "sandbox SMS to" in logs


def test_two_processes_share_the_queue_without_double_sends(
    mongodb_uri: str, db_name: str, tmp_path: Path
) -> None:
    env = base_env(
        mongodb_uri,
        db_name,
        twilio_sandbox_auth_token=SANDBOX_TOKEN,
        poll_interval_s=0.05,
        send_rate_per_second=100,
    )
    first = service_process("notifier", env, tmp_path)
    second = service_process("notifier", env, tmp_path)
    first.start()
    second.start()
    try:
        ids = [
            call(
                (first if i % 2 else second).url + "/internal/v1/messages",
                "POST",
                {"to": f"+1415555{i:04d}", "body": f"nudge {i}", "purpose": "nudge"},
                **{"Idempotency-Key": f"k{i}"},
            )["id"]
            for i in range(30)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            items = call(first.url + "/internal/v1/sandbox/outbox?limit=100")["items"]
            if len(items) == 30:
                break
            time.sleep(0.2)
        assert sorted(m["id"] for m in items) == sorted(ids)
        assert all(m["attempts"] == 1 for m in items)
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
    sends = first.logs().count("sandbox SMS to") + second.logs().count("sandbox SMS to")
    assert sends == 30
