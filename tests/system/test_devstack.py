"""The README's run command: everything comes up ready, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT


def _free_block(size: int = 4) -> int:
    for base in range(21000, 60000, 97):
        ok = True
        for port in range(base, base + size):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


def _children_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie is reaped already as far as the user is concerned.
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "zombie" not in status.read_text():
            alive.append(pid)
    return alive


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        parents.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(bool(os.environ.get("MONGODB_URI")), reason="runs its own development database")
def test_run_command_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    base = _free_block()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shared.devstack",
            "--data-dir",
            str(tmp_path),
            "--db-port",
            str(base),
            "--base-port",
            str(base),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert any("Ctrl-C stops everything" in line for line in lines), "".join(lines)
        for offset, name in enumerate(("contacts", "reminders", "notifier"), start=1):
            assert any(f"{name}" in line and f":{base + offset}" in line for line in lines)
            with urllib.request.urlopen(f"http://127.0.0.1:{base + offset}/readyz") as resp:
                body = json.loads(resp.read())
            assert body["checks"]["mongodb"]["status"] == "up"
        children = _descendants(proc.pid)
        assert len(children) >= 4  # the database and three services
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while _children_alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _children_alive(children) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
