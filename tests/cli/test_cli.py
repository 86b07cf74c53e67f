"""The ``touchbase`` CLI against the three services running as real processes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import commands
from cli.main import main
from tests.support.settings import INTERNAL_SECRET
from tests.support.stack import Stack

PHONE = "+14155550142"
OPERATOR = "+14155550143"


@pytest.fixture(scope="module")
def stack(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("cli-logs")
    prefix = f"cli_{logs.name[-8:].replace('-', '_')}"
    extra = {
        "contacts": {"OPERATOR_PHONES": OPERATOR},
        "reminders": {"SYNC_INTERVAL_S": "0.5", "SWEEP_INTERVAL_S": "0.5"},
        "notifier": {"POLL_INTERVAL_S": "0.2", "SEND_RATE_PER_SECOND": "20", "SEND_BURST": "5"},
    }
    running = Stack(mongodb_uri, prefix, logs, extra_env=extra)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cli_env(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("contacts", "reminders", "notifier"):
        monkeypatch.setenv(f"TOUCHBASE_{name.upper()}_URL", stack.url(name))
    monkeypatch.setenv("INTERNAL_AUTH_SECRET", INTERNAL_SECRET)
    monkeypatch.setenv("TOUCHBASE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TOUCHBASE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run one command with --json; returns (exit code, parsed stdout, stderr)."""
    code = main(["--json", *argv])
    captured = capsys.readouterr()
    out = json.loads(captured.out) if captured.out.strip() else None
    return code, out, captured.err


def outbox_ids(stack: Stack, phone: str) -> list[str]:
    status, body = stack.internal(
        "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=50"
    )
    assert status == 200, body
    return [item["id"] for item in body["items"]]


def new_code(stack: Stack, phone: str, seen: list[str]) -> str:
    """The code in the first sign-in SMS to ``phone`` not in ``seen`` (waits for it)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _status, body = stack.internal(
            "notifier", "GET", f"/internal/v1/sandbox/outbox?to=%2B{phone[1:]}&limit=5"
        )
        fresh = [item for item in body["items"] if item["id"] not in seen]
        if fresh:
            match = re.search(r"\b(\d{6})\b", fresh[0]["body"])
            assert match
            return match.group(1)
        time.sleep(0.1)
    raise AssertionError("no sign-in SMS arrived")


def sign_in(stack: Stack, phone: str, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    # The code arrives by SMS (the sandbox outbox) while the command waits at its prompt.
    seen = outbox_ids(stack, phone)
    monkeypatch.setattr(commands.console, "input", lambda prompt: new_code(stack, phone, seen))
    assert main(["login", "--phone", phone]) == 0
    capsys.readouterr()


def test_status_reports_every_service_ready(cli_env: Path, capsys: Any) -> None:
    # A readiness check may miss its time budget on a loaded machine; ready is ready once seen.
    deadline = time.monotonic() + 20
    code, out, _ = run(capsys, "status")
    while code != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        code, out, _ = run(capsys, "status")
    assert code == 0
    assert {row["service"]: row["ready"] for row in out} == {
        "contacts": True,
        "reminders": True,
        "notifier": True,
    }


def test_login_with_json_needs_the_code_on_the_command_line(cli_env: Path, capsys: Any) -> None:
    code, out, _ = run(capsys, "login", "--phone", "+14155550149")
    assert code == 1
    assert "--code is required" in out["error"]
    code, out, _ = run(capsys, "login", "--phone", "+14155550149", "--code", "000000")
    assert code != 0


def test_commands_need_a_signed_in_user(cli_env: Path, capsys: Any) -> None:
    code, out, _ = run(capsys, "contacts", "list")
    assert code == 4
    assert "touchbase login" in out["error"]


def test_a_down_service_is_exit_code_3(
    cli_env: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOUCHBASE_NOTIFIER_URL", "http://127.0.0.1:9")
    code, out, _ = run(capsys, "sandbox", "outbox")
    assert code == 3
    assert "not reachable" in out["error"]
    code, out, _ = run(capsys, "status")
    assert code == 3


def test_networker_journey(
    stack: Stack, cli_env: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(stack, PHONE, monkeypatch, capsys)
    credentials = cli_env / "config" / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600

    code, me, _ = run(capsys, "me")
    assert code == 0
    assert me["phone"] == PHONE

    code, dana, _ = run(
        capsys,
        "contacts",
        "add",
        "Dana Lee",
        "--company",
        "Lee Insurance",
        "--tier",
        "A",
        "--tag",
        "bni",
        "--phone",
        "415 555 0150",
        "--met-how",
        "BNI visitor day",
        "--met-where",
        "Oakland",
    )
    assert code == 0, dana
    assert dana["phones"][0]["number"] == "+14155550150"
    assert dana["met"]["where"] == "Oakland"
    code, _, _ = run(capsys, "contacts", "add", "Sam Ortiz", "--tier", "C")
    assert code == 0

    code, bad, _ = run(capsys, "contacts", "add", "Bad Tier", "--tier", "Z")
    assert code == 1
    assert "tier" in bad["error"]

    code, listing, _ = run(capsys, "contacts", "list", "--tag", "bni")
    assert code == 0
    assert [c["name"] for c in listing["items"]] == ["Dana Lee"]

    code, logged, _ = run(capsys, "log", dana["id"], "--kind", "coffee", "--notes", "intro")
    assert code == 0
    assert logged["kind"] == "coffee"
    code, _, _ = run(capsys, "log", "no-such-contact", "--kind", "coffee")
    assert code == 1

    code, upcoming, _ = run(capsys, "upcoming")
    assert code == 0
    assert "items" in upcoming

    # The sandbox chat: the outbox shows the sign-in SMS, and a reply gets an answer.
    code, outbox, _ = run(capsys, "sandbox", "outbox", "--to", PHONE)
    assert code == 0
    assert outbox["items"][0]["purpose"] == "otp"
    code, answer, _ = run(capsys, "sandbox", "reply", "--from", PHONE, "HELP")
    assert code == 0
    assert answer["reply"]

    code, _, _ = run(capsys, "logout")
    assert code == 0
    assert not credentials.exists()


def test_operator_commands(
    stack: Stack, cli_env: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(stack, OPERATOR, monkeypatch, capsys)
    code, _, _ = run(capsys, "admin", "cadence", "B", "21")
    assert code == 0
    code, settings, _ = run(capsys, "admin", "settings")
    assert code == 0
    assert settings["tiers"]["tiers"]["B"]["ideal_days"] == 21

    code, _, _ = run(capsys, "admin", "job", "sweep", "--every", "2")
    assert code == 0
    code, jobs, _ = run(capsys, "admin", "jobs")
    assert code == 0
    assert jobs["timings"]["sweep"] == 2

    code, _, _ = run(capsys, "admin", "job", "sweep", "--every", "0")
    assert code == 1

    code, _, _ = run(capsys, "admin", "pause")
    assert code == 0
    code, _, _ = run(capsys, "admin", "resume")
    assert code == 0
    code, dry, _ = run(capsys, "admin", "dry-run", "--days", "7")
    assert code == 0
    assert dry is not None
    code, audit, _ = run(capsys, "admin", "audit")
    assert code == 0
    assert len(audit["items"]) >= 4
    code, _, _ = run(capsys, "admin", "nudges", "--failed")
    assert code == 0


def test_networkers_cannot_use_operator_commands(
    stack: Stack, cli_env: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(stack, "+14155550144", monkeypatch, capsys)
    code, out, _ = run(capsys, "admin", "jobs")
    assert code == 1
    assert "operator" in out["error"]


def test_grant_operator_is_a_cli_command_not_an_api(
    stack: Stack, cli_env: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = "+14155550145"
    sign_in(stack, phone, monkeypatch, capsys)
    code, _, _ = run(capsys, "admin", "jobs")
    assert code == 1
    # The command writes to the contacts database with the contacts service's own settings.
    for key in ("MONGODB_URI", "DB_NAME", "AUTH_JWT_SECRET"):
        monkeypatch.setenv(key, stack.procs["contacts"].env[key])
    code, out, _ = run(capsys, "admin", "grant-operator", phone)
    assert code == 0, out
    assert out["operator"] is True
    code, out, _ = run(capsys, "admin", "grant-operator", "+14155550999")
    assert code == 1
    # A fresh sign-in carries the role.
    sign_in(stack, phone, monkeypatch, capsys)
    code, jobs, _ = run(capsys, "admin", "jobs")
    assert code == 0, jobs
    code, _, _ = run(capsys, "admin", "grant-operator", phone, "--revoke")
    assert code == 0
    sign_in(stack, phone, monkeypatch, capsys)
    code, _, _ = run(capsys, "admin", "jobs")
    assert code == 1
