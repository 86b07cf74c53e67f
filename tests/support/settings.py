"""Settings for services under test: fixed secrets, a per-test database, test mode on."""

from __future__ import annotations

from typing import Any

from shared.config import SettingsT, load_settings

INTERNAL_SECRET = "test-internal-secret-0123456789abcdef"
JWT_SECRET = "test-jwt-secret-0123456789abcdef-xyz"


def base_env(mongodb_uri: str, db_name: str, **extra: Any) -> dict[str, str]:
    """Environment variables a service under test needs."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "DB_NAME": db_name,
        "INTERNAL_AUTH_SECRET": INTERNAL_SECRET,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "TEST_MODE": "true",
        "LOG_LEVEL": "INFO",
        "MONGO_TIMEOUT_MS": "3000",
    }
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


def make_settings(cls: type[SettingsT], mongodb_uri: str, db_name: str, **extra: Any) -> SettingsT:
    """Settings of ``cls`` for a test, overridable per field."""
    return load_settings(cls, base_env(mongodb_uri, db_name, **extra))
