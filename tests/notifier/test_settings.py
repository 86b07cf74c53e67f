"""Notifier settings: transport selection and the checks that stop a bad configuration."""

from __future__ import annotations

import pytest

from services.notifier.settings import NotifierSettings
from shared.config import ConfigurationError, load_settings
from tests.support.settings import base_env

SID = "AC" + "1" * 32


def settings(**extra: str) -> NotifierSettings:
    return load_settings(NotifierSettings, base_env("mongodb://127.0.0.1:1", "t", **extra))


def test_sandbox_without_credentials_twilio_with_them() -> None:
    assert settings().effective_transport == "sandbox"
    assert settings().sender == "+15005550006"
    live = settings(
        twilio_account_sid=SID, twilio_auth_token="token", twilio_from_number="+15551230000"
    )
    assert live.effective_transport == "twilio"
    assert live.sender == "+15551230000"
    assert live.webhook_auth_token() == "token"
    service = settings(
        twilio_account_sid=SID,
        twilio_auth_token="token",
        twilio_messaging_service_sid="MG" + "2" * 32,
        twilio_from_number="+15551230000",
    )
    assert service.sender == "MG" + "2" * 32
    forced = settings(sms_transport="sandbox", twilio_account_sid=SID, twilio_auth_token="t")
    assert forced.effective_transport == "sandbox"


def test_sandbox_token_signs_sandbox_webhooks() -> None:
    assert settings(twilio_sandbox_auth_token="abc").webhook_auth_token() == "abc"
    # Without one, a per-process token still lets the sandbox sign its own requests.
    assert len(settings().webhook_auth_token()) == 32


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"sms_transport": "twilio"}, "TWILIO_ACCOUNT_SID"),
        (
            {"sms_transport": "twilio", "twilio_account_sid": SID, "twilio_auth_token": "t"},
            "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
        ),
        ({"twilio_account_sid": "nope"}, "TWILIO_ACCOUNT_SID"),
        ({"twilio_from_number": "5551230000"}, "TWILIO_FROM_NUMBER"),
        ({"lease_s": "10", "send_timeout_s": "10"}, "LEASE_S"),
        ({"send_rate_per_second": "0"}, "SEND_RATE_PER_SECOND"),
        ({"public_base_url": "sms.example.com"}, "PUBLIC_BASE_URL"),
        ({"sms_transport": "carrier-pigeon"}, "SMS_TRANSPORT"),
    ],
)
def test_bad_configuration_is_refused(extra: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        settings(**extra)
