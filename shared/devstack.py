"""Run the whole system locally: the database and the three services, stopped together by Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shared.devdb import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    DevDatabase,
    DevDatabaseError,
    die_with_parent,
)

SERVICES = ("contacts", "reminders", "notifier")


@dataclass
class _Running:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    # Kept across runs so tokens issued yesterday still verify after a restart.
    path = data_dir / "dev-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    values = {
        "INTERNAL_AUTH_SECRET": secrets.token_urlsafe(48),
        "AUTH_JWT_SECRET": secrets.token_urlsafe(48),
        "TWILIO_SANDBOX_AUTH_TOKEN": secrets.token_hex(16),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop_all(running: list[_Running], db: DevDatabase | None) -> None:
    for item in running:
        if item.process.poll() is None:
            item.process.terminate()
    for item in running:
        try:
            item.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait(timeout=5)
    if db is not None:
        db.stop()


def main(argv: list[str] | None = None) -> int:
    """Start everything, print where it listens, and keep it running until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m shared.devstack", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--db-port", type=int, default=27018, help="database port on 127.0.0.1")
    parser.add_argument("--host", default="127.0.0.1", help="address the services bind")
    parser.add_argument(
        "--base-port", type=int, default=8080, help="contacts, reminders, notifier get base+1..3"
    )
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="run on the real clock (by default the services' clocks can be moved, "
        "for trying a month in minutes with `touchbase clock advance`)",
    )
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)

    db = DevDatabase(data_dir=data_dir, port=args.db_port)
    try:
        uri = db.start()
    except DevDatabaseError as exc:
        print(f"touchbase: {exc}", file=sys.stderr)
        return 1
    print(f"  database   {uri}  ({db.description}; state in {data_dir})", flush=True)

    dev_secrets = _dev_secrets(data_dir)
    ports = {name: args.base_port + offset for offset, name in enumerate(SERVICES, start=1)}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {
        **dev_secrets,
        "MONGODB_URI": uri,
        "CONTACTS_URL": urls["contacts"],
        "REMINDERS_URL": urls["reminders"],
        "NOTIFIER_URL": urls["notifier"],
        "SMS_TRANSPORT": "sandbox",
        "PUBLIC_BASE_URL": urls["notifier"],
        "LOG_FORMAT": "text",
        "HOST": args.host,
    }
    if not args.wall_clock:
        common.update({"TEST_MODE": "true", "CONTROLLABLE_CLOCK": "true"})
    # Where things are, for the `touchbase` CLI's defaults (removed again on exit).
    state_file = data_dir / "devstack.json"
    state_file.write_text(
        json.dumps({"mongodb_uri": uri, **{f"{k}_url": v for k, v in urls.items()}})
    )
    running: list[_Running] = []
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        for name, port in ports.items():
            log_path = logs / f"{name}.log"
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    cwd=REPO_ROOT,
                    env={**os.environ, **common, "PORT": str(port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # Own session: Ctrl-C reaches only this runner, which stops things in order.
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            running.append(_Running(name, port, process, log_path))
        deadline = time.monotonic() + 60
        pending = {item.name for item in running}
        while pending and not stopping and time.monotonic() < deadline:
            for item in running:
                if item.process.poll() is not None:
                    tail = item.log_path.read_text(errors="replace")[-3000:]
                    print(f"touchbase: {item.name} exited at start:\n{tail}", file=sys.stderr)
                    return 1
                if item.name in pending and _ready(urls[item.name]):
                    pending.discard(item.name)
                    print(
                        f"  {item.name:<10} {urls[item.name]}  (log: {item.log_path})", flush=True
                    )
            time.sleep(0.2)
        if pending and not stopping:
            print(f"touchbase: not ready after 60s: {', '.join(sorted(pending))}", file=sys.stderr)
            return 1
        if not stopping:
            print(
                "touchbase is running; SMS go to the sandbox outbox. Ctrl-C stops everything.",
                flush=True,
            )
        while not stopping:
            for item in running:
                if item.process.poll() is not None:
                    print(
                        f"touchbase: {item.name} stopped unexpectedly; see {item.log_path}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        print("touchbase: stopping...", flush=True)
        state_file.unlink(missing_ok=True)
        _stop_all(running, db)


if __name__ == "__main__":
    raise SystemExit(main())
