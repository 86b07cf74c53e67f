"""Configuration of the notifier service, read from the environment."""

from __future__ import annotations

import secrets
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from shared.config import ServiceSettings


class NotifierSettings(ServiceSettings):
    """Notifier service settings."""

    service_name: Literal["notifier"] = "notifier"
    db_name: str = Field(default="touchbase_notifier", pattern=r"^[A-Za-z0-9_-]+$")
    port: int = Field(default=8083, ge=0, le=65535)
    contacts_url: str = Field(default="http://127.0.0.1:8081", pattern=r"^https?://")
    reminders_url: str = Field(default="http://127.0.0.1:8082", pattern=r"^https?://")

    # Transport: "sandbox" stores messages instead of sending them; the default when no Twilio
    # credentials are configured.
    sms_transport: Literal["sandbox", "twilio"] | None = None
    twilio_account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    twilio_messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    # Tests point the SDK at Prism or a local stub; production leaves this unset.
    twilio_api_base_url: str | None = Field(default=None, pattern=r"^https?://")
    # The URL Twilio calls (and signs) for our webhooks; behind a proxy it differs from ours.
    public_base_url: str | None = Field(default=None, pattern=r"^https?://")
    # Signs and verifies the sandbox's simulated webhooks (same RequestValidator code path).
    twilio_sandbox_auth_token: SecretStr | None = None
    sandbox_number: str = Field(default="+15005550006", pattern=r"^\+[1-9]\d{6,14}$")

    # Sending.
    send_rate_per_second: float = Field(default=1.0, gt=0, le=10_000)
    send_burst: int = Field(default=1, ge=1, le=10_000)
    send_concurrency: int = Field(default=16, ge=1, le=1000)
    max_send_attempts: int = Field(default=5, ge=1, le=50)
    send_timeout_s: float = Field(default=10.0, gt=0, le=120)
    retry_base_s: float = Field(default=2.0, ge=0, le=3600)
    retry_max_s: float = Field(default=300.0, ge=0, le=86_400)
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    reap_interval_s: float = Field(default=15.0, gt=0, le=3600)
    worker_enabled: bool = True

    # Inbound.
    reply_timeout_s: float = Field(default=8.0, gt=0, le=14)
    inbound_rate_per_minute: float = Field(default=20.0, gt=0, le=10_000)
    inbound_burst: int = Field(default=10, ge=1, le=10_000)
    program_name: str = Field(default="touchbase", min_length=1, max_length=40)
    help_contact: str = Field(default="support@touchbase.dev", min_length=1, max_length=80)

    @model_validator(mode="after")
    def _check_transport(self) -> Self:
        if self.lease_s < self.send_timeout_s + 5:
            raise ValueError("LEASE_S must exceed SEND_TIMEOUT_S by at least 5 seconds")
        if self.effective_transport == "twilio":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                )
                if value is None
            ]
            if self.twilio_from_number is None and self.twilio_messaging_service_sid is None:
                missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
            if missing:
                raise ValueError("SMS_TRANSPORT=twilio needs " + ", ".join(missing))
        return self

    @property
    def effective_transport(self) -> Literal["sandbox", "twilio"]:
        """The transport in use: explicit, else twilio when credentials are set, else sandbox."""
        if self.sms_transport is not None:
            return self.sms_transport
        if self.twilio_account_sid and self.twilio_auth_token:
            return "twilio"
        return "sandbox"

    @property
    def sender(self) -> str:
        """The sender the MPS limit applies to: the Messaging Service or the number."""
        if self.effective_transport == "sandbox":
            return self.sandbox_number
        return self.twilio_messaging_service_sid or self.twilio_from_number or "unknown"

    def webhook_auth_token(self) -> str:
        """The auth token webhooks are signed with: Twilio's, or the sandbox's."""
        if self.effective_transport == "twilio" and self.twilio_auth_token is not None:
            return self.twilio_auth_token.get_secret_value()
        if self.twilio_sandbox_auth_token is not None:
            return self.twilio_sandbox_auth_token.get_secret_value()
        # No token configured: a per-process one still lets the sandbox sign its own requests.
        return _PROCESS_SANDBOX_TOKEN


_PROCESS_SANDBOX_TOKEN = secrets.token_hex(16)
