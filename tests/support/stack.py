"""The whole system as real processes on loopback: three services against one database server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.auth import issue_service_token
from tests.support.http import request_json
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import INTERNAL_SECRET, base_env

SERVICES = ("contacts", "reminders", "notifier")


@dataclass
class Stack:
    """Contacts, reminders and notifier wired to each other, each with a controllable clock."""

    mongodb_uri: str
    db_prefix: str
    log_dir: Path
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    clock_start: str | None = None
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.procs[name] = service_process(name, {}, self.log_dir)
        urls = {f"{name.upper()}_URL": proc.url for name, proc in self.procs.items()}
        for name, proc in self.procs.items():
            extra: dict[str, str] = {"CONTROLLABLE_CLOCK": "true", **urls}
            if self.clock_start:
                extra["CLOCK_START"] = self.clock_start
            if name == "notifier":
                extra.setdefault("PUBLIC_BASE_URL", proc.url)
            extra.update(self.extra_env.get(name, {}))
            proc.env = base_env(self.mongodb_uri, f"{self.db_prefix}_{name}", **extra)

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return self.procs[name].url

    def start(self) -> None:
        """Start every service and wait until each is healthy."""
        for proc in self.procs.values():
            if proc.process is None:
                proc.start()

    def stop(self) -> None:
        """Stop every service."""
        for proc in self.procs.values():
            proc.stop()

    def internal(
        self, name: str, method: str, path: str, body: Any = None, caller: str = "cli"
    ) -> tuple[int, Any]:
        """Call a service's internal API with a service token; returns (status, decoded body)."""
        token = issue_service_token(INTERNAL_SECRET, caller, name)
        return request_json(
            method, self.url(name) + path, body, {"Authorization": f"Bearer {token}"}
        )

    def set_clock(self, now: str, *, frozen: bool = False) -> None:
        """Set every service's clock to the same instant."""
        for name in SERVICES:
            status, body = self.internal(
                name, "PUT", "/internal/v1/test/clock", {"now": now, "frozen": frozen}
            )
            assert status == 200, body

    def advance(self, seconds: float) -> None:
        """Move every service's clock forward."""
        for name in SERVICES:
            status, body = self.internal(
                name, "PUT", "/internal/v1/test/clock", {"advance_seconds": seconds}
            )
            assert status == 200, body
