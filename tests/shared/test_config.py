"""Settings: every missing or invalid variable named in one error; test-only knobs guarded."""

from __future__ import annotations

import pytest

from services.contacts.settings import ContactsSettings
from shared.config import ConfigurationError, load_settings
from tests.support.settings import base_env


def test_all_problems_are_listed_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(ContactsSettings, {"PORT": "99999", "AUTH_JWT_SECRET": "short"})
    message = str(info.value)
    assert "MONGODB_URI: is required but not set" in message
    assert "INTERNAL_AUTH_SECRET: is required but not set" in message
    assert "PORT:" in message
    assert "AUTH_JWT_SECRET: Value error, must be at least 32 characters" in message
    assert "short" not in message


def test_controllable_clock_requires_test_mode() -> None:
    env = base_env("mongodb://127.0.0.1:1/", "x", TEST_MODE="false", CONTROLLABLE_CLOCK="true")
    with pytest.raises(ConfigurationError, match="only with TEST_MODE=true"):
        load_settings(ContactsSettings, env)


def test_service_name_cannot_be_overridden() -> None:
    env = base_env("mongodb://127.0.0.1:1/", "x", SERVICE_NAME="notifier")
    assert load_settings(ContactsSettings, env).service_name == "contacts"
