"""Configuration of the contacts service, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import ServiceSettings


class ContactsSettings(ServiceSettings):
    """Contacts service settings."""

    service_name: Literal["contacts"] = "contacts"
    db_name: str = Field(default="touchbase_contacts", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8081, ge=0, le=65535)
    notifier_url: str = Field(default="http://127.0.0.1:8083", pattern=r"^https?://")
    reminders_url: str = Field(default="http://127.0.0.1:8082", pattern=r"^https?://")
