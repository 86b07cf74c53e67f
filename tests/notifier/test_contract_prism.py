"""Contract tests: the real twilio SDK's requests checked by Prism against Twilio's own spec."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.notifier.keys import MESSAGE_SERVICE, WORKER
from services.notifier.transport import BaseUrlHttpClient, TwilioTransport
from services.notifier.worker import classify
from tests.notifier.conftest import (
    ACCOUNT_SID,
    FROM_NUMBER,
    TWILIO_TOKEN,
    AppFactory,
    service_headers,
)
from tests.notifier.prism import PrismServer

pytestmark = pytest.mark.slow

MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SERVICE_SID = "MG" + "3" * 32


@pytest.fixture
async def transport(prism: PrismServer) -> AsyncIterator[TwilioTransport]:
    sms = TwilioTransport(
        account_sid=ACCOUNT_SID,
        auth_token=TWILIO_TOKEN,
        from_number=FROM_NUMBER,
        messaging_service_sid=None,
        base_url=prism.url,
        timeout_s=10,
    )
    yield sms
    await sms.close()


async def test_sdk_create_message_conforms_to_the_spec(transport: TwilioTransport) -> None:
    outcome = await transport.send(
        to="+14155550101",
        body="Time to reconnect with Dana Lee",
        status_callback="https://notify.example.com/webhooks/twilio/status?message_id=m1",
        purpose="nudge",
    )
    assert outcome.accepted, outcome
    assert outcome.provider_sid is not None
    assert outcome.provider_sid.startswith("SM")
    assert outcome.provider_status in {"queued", "accepted"}
    assert classify(outcome) == "sent"


async def test_sdk_create_with_a_messaging_service(prism: PrismServer) -> None:
    sms = TwilioTransport(
        account_sid=ACCOUNT_SID,
        auth_token=TWILIO_TOKEN,
        from_number=None,
        messaging_service_sid=SERVICE_SID,
        base_url=prism.url,
    )
    try:
        outcome = await sms.send(to="+14155550101", body="hi", status_callback=None, purpose="otp")
    finally:
        await sms.close()
    assert outcome.accepted, outcome


async def test_prism_rejects_requests_that_break_the_spec(
    prism: PrismServer, transport: TwilioTransport
) -> None:
    # A StatusCallback that is not a URI breaks the spec: Prism answers 422, which our policy
    # treats as a permanent failure (never retried).
    bad = await transport.send(
        to="+14155550101", body="hi", status_callback="not a url", purpose="nudge"
    )
    assert bad.http_status == 422
    assert classify(bad) == "permanent"
    http = BaseUrlHttpClient(prism.url, timeout=10)
    try:
        no_to = await http.request(
            "POST",
            MESSAGES_URL,
            data={"From": FROM_NUMBER, "Body": "hi"},
            auth=(ACCOUNT_SID, TWILIO_TOKEN),
        )
        assert no_to.status_code == 422
        assert "To" in no_to.text
        no_auth = await http.request(
            "POST", MESSAGES_URL, data={"To": "+14155550101", "From": FROM_NUMBER, "Body": "hi"}
        )
        assert no_auth.status_code == 401
        bad_service = await http.request(
            "POST",
            MESSAGES_URL,
            data={"To": "+14155550101", "MessagingServiceSid": "MG12", "Body": "hi"},
            auth=(ACCOUNT_SID, TWILIO_TOKEN),
        )
        assert bad_service.status_code == 422
    finally:
        await http.close()


async def test_notifier_sends_through_prism(prism: PrismServer, notifier_app: AppFactory) -> None:
    client = await notifier_app(
        worker_enabled=False,
        sms_transport="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_from_number=FROM_NUMBER,
        twilio_api_base_url=prism.url,
        public_base_url="https://notify.example.com",
    )
    payload: dict[str, Any] = {
        "user_id": "u1",
        "to": "+14155550101",
        "body": "Hi 👋",
        "purpose": "nudge",
    }
    resp = await client.post(
        "/internal/v1/messages", json=payload, headers=service_headers(**{"Idempotency-Key": "p1"})
    )
    message_id = (await resp.json())["id"]
    await client.app[WORKER].poll_once()
    await client.app[WORKER].drain()
    doc = await client.app[MESSAGE_SERVICE].get(message_id)
    assert doc["status"] == "sending"
    assert doc["provider_sid"].startswith("SM")
    assert doc["encoding"] == "UCS-2"
    assert doc["attempts"] == 1
