"""docker-compose.yml cannot run here; check that what it names exists in the code."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from services.contacts.settings import ContactsSettings
from services.notifier.settings import NotifierSettings
from services.reminders.settings import RemindersSettings
from shared.config import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "contacts": ContactsSettings,
    "reminders": RemindersSettings,
    "notifier": NotifierSettings,
}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_each_service_module_with_known_settings() -> None:
    services = _compose()["services"]
    assert set(services) == {"mongo", *SETTINGS}
    assert services["mongo"]["image"].startswith("mongo:8")
    assert "--replSet" in services["mongo"]["command"]
    for name, cls in SETTINGS.items():
        spec = services[name]
        module = spec["command"][-1]
        assert module == f"services.{name}"
        importlib.import_module(f"{module}.__main__")
        assert (ROOT / spec["build"]["dockerfile"]).is_file()
        env = spec["environment"]
        fields = {field.upper() for field in cls.model_fields}
        assert set(env) <= fields, set(env) - fields
        assert int(env["PORT"]) == cls.model_fields["port"].default
        assert spec["ports"] == [f"{env['PORT']}:{env['PORT']}"]
        assert "healthcheck" in spec
        assert f":{env['PORT']}/readyz" in " ".join(spec["healthcheck"]["test"])
        for upstream in ("CONTACTS_URL", "REMINDERS_URL", "NOTIFIER_URL"):
            if upstream in env:
                target = upstream.removesuffix("_URL").lower()
                assert env[upstream].endswith(f":{services[target]['environment']['PORT']}")
