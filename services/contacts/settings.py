"""Configuration of the contacts service, read from the environment."""

from __future__ import annotations

from typing import Literal

import phonenumbers
from pydantic import Field, field_validator

from shared.config import ServiceSettings


class ContactsSettings(ServiceSettings):
    """Contacts service settings."""

    service_name: Literal["contacts"] = "contacts"
    db_name: str = Field(default="touchbase_contacts", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8081, ge=0, le=65535)
    notifier_url: str = Field(default="http://127.0.0.1:8083", pattern=r"^https?://")
    reminders_url: str = Field(default="http://127.0.0.1:8082", pattern=r"^https?://")
    # Comma-separated E.164 numbers whose users get the operator role; never granted by the API.
    operator_phones: str = ""
    # Region assumed for a sign-in phone number written without a leading "+".
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    otp_ttl_s: int = Field(default=300, ge=30, le=3600)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)
    otp_rate_window_s: int = Field(default=3600, ge=60, le=86400)
    otp_max_per_phone: int = Field(default=5, ge=1, le=1000)
    otp_max_per_ip: int = Field(default=30, ge=1, le=100_000)
    # Take the client address from X-Forwarded-For (only behind a trusted proxy).
    trust_forwarded_for: bool = False
    access_token_ttl_s: int = Field(default=900, ge=60, le=86400)
    refresh_token_ttl_s: int = Field(default=30 * 86400, ge=3600, le=365 * 86400)
    change_feed_lag_s: float = Field(default=2.0, ge=0, le=300)
    change_retention_days: int = Field(default=30, ge=1, le=3650)
    idempotency_ttl_s: int = Field(default=86400, ge=60, le=30 * 86400)
    cleanup_interval_s: float = Field(default=600.0, ge=1, le=86400)
    # Contact import (POST /v1/contacts:import): the largest file, and most cards or rows in it.
    import_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    import_max_rows: int = Field(default=5000, ge=1, le=100_000)

    @field_validator("operator_phones")
    @classmethod
    def _e164_list(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                number = phonenumbers.parse(item, None)
            except phonenumbers.NumberParseException:
                raise ValueError(f"not an E.164 number: {item[:3]}...") from None
            if phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != item:
                raise ValueError(f"not an E.164 number: {item[:3]}...")
        return value

    @property
    def operator_phone_set(self) -> frozenset[str]:
        """The operator phone numbers, parsed."""
        return frozenset(p.strip() for p in self.operator_phones.split(",") if p.strip())
