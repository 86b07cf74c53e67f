"""Configuration of the reminders service, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import ServiceSettings


class RemindersSettings(ServiceSettings):
    """Reminders service settings."""

    service_name: Literal["reminders"] = "reminders"
    db_name: str = Field(default="touchbase_reminders", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8082, ge=0, le=65535)
    contacts_url: str = Field(default="http://127.0.0.1:8081", pattern=r"^https?://")
    notifier_url: str = Field(default="http://127.0.0.1:8083", pattern=r"^https?://")
    scheduler_enabled: bool = True
