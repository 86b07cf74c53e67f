"""Where the services are and who is signed in: environment, a credentials file, dev secrets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devdb import DEFAULT_DATA_DIR


def config_dir() -> Path:
    """``$TOUCHBASE_CONFIG_DIR`` or ``~/.config/touchbase``."""
    env = os.environ.get("TOUCHBASE_CONFIG_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "touchbase"


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the three services."""

    contacts: str
    reminders: str
    notifier: str

    @classmethod
    def from_env(cls) -> Endpoints:
        """Read ``TOUCHBASE_*_URL`` (or ``*_URL``), defaulting to the dev stack."""

        stack = dev_stack()

        def pick(name: str, default: str) -> str:
            value = os.environ.get(f"TOUCHBASE_{name}_URL") or os.environ.get(f"{name}_URL")
            return (value or stack.get(f"{name.lower()}_url") or default).rstrip("/")

        return cls(
            contacts=pick("CONTACTS", "http://127.0.0.1:8081"),
            reminders=pick("REMINDERS", "http://127.0.0.1:8082"),
            notifier=pick("NOTIFIER", "http://127.0.0.1:8083"),
        )


def _data_dir() -> Path:
    return Path(os.environ.get("TOUCHBASE_DATA_DIR") or DEFAULT_DATA_DIR)


def dev_stack() -> dict[str, str]:
    """What a running ``make run`` recorded: its database URI and the services' URLs."""
    path = _data_dir() / "devstack.json"
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def dev_secrets() -> dict[str, str]:
    """The secrets ``make run`` generated for the local stack."""
    path = _data_dir() / "dev-secrets.json"
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def internal_secret() -> str | None:
    """The service-token secret: ``INTERNAL_AUTH_SECRET``, else the dev stack's generated one."""
    return os.environ.get("INTERNAL_AUTH_SECRET") or dev_secrets().get("INTERNAL_AUTH_SECRET")


class Credentials:
    """The signed-in user's tokens, kept in a file only its owner can read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "credentials.json"

    def load(self) -> dict[str, Any] | None:
        """The stored tokens, or None when nobody is signed in."""
        if not self.path.exists():
            return None
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Store tokens (mode 0600)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def clear(self) -> None:
        """Forget the tokens."""
        self.path.unlink(missing_ok=True)
