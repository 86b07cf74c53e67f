"""The three services as real processes: health, readiness, metrics, config errors, db outage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devdb import DevDatabase
from tests.support.processes import REPO_ROOT, ServiceProcess, service_process
from tests.support.settings import base_env

SERVICES = ("contacts", "reminders", "notifier")


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


@pytest.fixture
def running(mongodb_uri: str, db_name: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    procs = [
        service_process(name, base_env(mongodb_uri, f"{db_name}_{name}"), tmp_path)
        for name in SERVICES
    ]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def _wait_status(url: str, status: int, timeout_s: float = 20.0) -> tuple[int, str, str]:
    deadline = time.monotonic() + timeout_s
    answer = _get(url)
    while answer[0] != status and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = _get(url)
    return answer


def test_each_service_is_ready_and_exposes_metrics(running: list[ServiceProcess]) -> None:
    for proc in running:
        status, _, body = _wait_status(proc.url + "/readyz", 200)
        assert status == 200, (proc.name, body)
        ready = json.loads(body)
        assert ready["service"] == proc.name
        assert ready["checks"]["mongodb"]["status"] == "up"

        status, ctype, body = _get(proc.url + "/metrics")
        assert status == 200
        assert ctype.startswith("text/plain")
        assert 'touchbase_http_requests_total{method="GET",route="/readyz"' in body

        status, ctype, body = _get(proc.url + "/no-such-route")
        assert status == 404
        assert ctype.startswith("application/problem+json")
        assert json.loads(body)["status"] == 404


def test_sigterm_stops_the_service_cleanly(running: list[ServiceProcess]) -> None:
    for proc in running:
        assert proc.stop() == 0, proc.logs()[-2000:]


def test_missing_configuration_stops_the_service_with_one_message(tmp_path: Path) -> None:
    for name in SERVICES:
        result = subprocess.run(
            [sys.executable, "-m", f"services.{name}"],
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin", "PORT": "not-a-port", "INTERNAL_AUTH_SECRET": "short"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        err = result.stderr
        assert "invalid configuration" in err
        for variable in ("MONGODB_URI", "PORT", "INTERNAL_AUTH_SECRET", "AUTH_JWT_SECRET"):
            assert variable in err, (name, err)
        assert "Traceback" not in err


def test_readiness_follows_the_database_without_restart(tmp_path: Path) -> None:
    # A database of its own: this test stops and restarts it.
    with DevDatabase(data_dir=tmp_path / "db", uri="") as db:
        proc = service_process("contacts", base_env(db.uri, "outage"), tmp_path)
        proc.start()
        try:
            assert _wait_status(proc.url + "/readyz", 200)[0] == 200
            db.stop()
            status, _, body = _wait_status(proc.url + "/readyz", 503)
            assert status == 503
            check = json.loads(body)["checks"]["mongodb"]
            assert check["status"] == "down"
            assert check["reason"]
            assert _get(proc.url + "/healthz")[0] == 200
            db.restart()
            assert _wait_status(proc.url + "/readyz", 200, timeout_s=40)[0] == 200
        finally:
            proc.stop()
