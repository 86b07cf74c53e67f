"""Typed service settings read from the environment, failing fast with every problem listed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")


class ConfigurationError(Exception):
    """Raised when the environment does not describe a valid configuration."""


class ServiceSettings(BaseModel):
    """Settings shared by every service; each service subclasses it with its own defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    service_name: str = "touchbase"
    # Environment variable names are the field names upper-cased (MONGODB_URI, PORT, ...).
    mongodb_uri: str = Field(min_length=1, description="MongoDB connection string.")
    db_name: str = Field(
        default="touchbase", min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_-]+$"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    internal_auth_secret: SecretStr = Field(
        description="HMAC secret for service-to-service tokens."
    )
    auth_jwt_secret: SecretStr = Field(description="HMAC secret for user access tokens.")
    test_mode: bool = False
    controllable_clock: bool = False
    clock_start: str | None = None
    mongo_timeout_ms: int = Field(default=5000, ge=100, le=120_000)
    http_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("internal_auth_secret", "auth_jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _check_clock(self) -> Self:
        if self.controllable_clock and not self.test_mode:
            raise ValueError("CONTROLLABLE_CLOCK is honoured only with TEST_MODE=true")
        if self.clock_start is not None and not self.controllable_clock:
            raise ValueError("CLOCK_START requires CONTROLLABLE_CLOCK=true")
        return self


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "(settings)"
        message = item["msg"]
        if item["type"] == "missing":
            message = "is required but not set"
        lines.append(f"  - {name}: {message}")
    return "\n".join(lines)


def load_settings(cls: type[SettingsT], env: Mapping[str, str] | None = None) -> SettingsT:
    """Build settings from ``env`` (default: the process environment) or raise one clear error."""
    source: Mapping[str, str] = os.environ if env is None else env
    # service_name is fixed by each subclass: it is the audience of service tokens.
    values: dict[str, Any] = {
        name: source[name.upper()]
        for name in cls.model_fields
        if name != "service_name" and name.upper() in source
    }
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid configuration for {cls.__name__}:\n{_describe(exc)}"
        ) from None
