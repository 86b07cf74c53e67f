"""Configuration of the notifier service, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import ServiceSettings


class NotifierSettings(ServiceSettings):
    """Notifier service settings."""

    service_name: Literal["notifier"] = "notifier"
    db_name: str = Field(default="touchbase_notifier", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8083, ge=0, le=65535)
    contacts_url: str = Field(default="http://127.0.0.1:8081", pattern=r"^https?://")
    reminders_url: str = Field(default="http://127.0.0.1:8082", pattern=r"^https?://")
