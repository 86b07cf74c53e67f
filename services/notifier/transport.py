"""How messages leave: the SmsTransport protocol, Twilio (official SDK, async) and the sandbox."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Protocol

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from services.notifier.models import SendOutcome

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"


class SmsTransport(Protocol):
    """Sends one SMS and reports what happened; never raises for provider or network errors."""

    name: str

    async def send(
        self, *, to: str, body: str, status_callback: str | None, purpose: str
    ) -> SendOutcome:
        """Hand one message to the provider."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class BaseUrlHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's async HTTP client with ``https://api.twilio.com`` replaced by another base URL.

    Used by tests to point the real SDK at Prism or a local stub; requests are otherwise
    exactly what the SDK would send to Twilio. SDK retries stay off (``max_retries=None``):
    they re-POST after a 5xx, which can send the same message twice.
    """

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout, max_retries=None)
        self._base_url = base_url.rstrip("/") if base_url else None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the SDK's own signature)
        allow_redirects: bool = False,
    ) -> Response:
        """Send the SDK's request, to the configured base URL when one is set."""
        if self._base_url and url.startswith(TWILIO_API):
            url = self._base_url + url[len(TWILIO_API) :]
        headers = dict(headers or {})
        if auth is not None:
            # Same Basic credentials, sent as a header: aiohttp deprecates its BasicAuth helper.
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        return await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


class TwilioTransport:
    """Sends through Twilio's Messages API with ``messages.create_async``."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = BaseUrlHttpClient(base_url, timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._from = from_number
        self._service = messaging_service_sid
        self._timeout_s = timeout_s

    async def send(
        self, *, to: str, body: str, status_callback: str | None, purpose: str
    ) -> SendOutcome:
        """Create the message; errors come back as an outcome for the retry policy to judge."""
        params: dict[str, Any] = {"to": to, "body": body}
        if self._service:
            params["messaging_service_sid"] = self._service
        else:
            params["from_"] = self._from
        if status_callback:
            params["status_callback"] = status_callback
        try:
            # The outer timeout bounds the whole call, including reading the answer.
            message = await asyncio.wait_for(
                self._client.messages.create_async(**params), self._timeout_s + 1.0
            )
        except TwilioRestException as exc:
            return SendOutcome(
                error_code=int(exc.code) if exc.code is not None else None,
                error_message=str(exc.msg)[:500],
                http_status=int(exc.status),
            )
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached Twilio: safe to retry without a duplicate risk.
            return SendOutcome(
                error_message=f"connect failed: {type(exc).__name__}", connect_failed=True
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Twilio before the answer was lost.
            return SendOutcome(error_message=f"no answer: {type(exc).__name__}", timed_out=True)
        return SendOutcome(provider_sid=str(message.sid), provider_status=str(message.status))

    async def close(self) -> None:
        """Close the SDK's connection pool."""
        await self._http.close()


class SandboxTransport:
    """Sends nothing: the stored message is the outbox, shown by the sandbox endpoint and logs."""

    name = "sandbox"

    async def send(
        self, *, to: str, body: str, status_callback: str | None, purpose: str
    ) -> SendOutcome:
        """Accept the message as Twilio would, and report it delivered."""
        sid = "SM" + uuid.uuid4().hex
        # Bodies stay out of info-level logs (they carry names and, for otp, codes); the
        # outbox endpoint and `touchbase sandbox outbox` show them, and DEBUG logs them.
        log.info(
            "sandbox SMS to %s (%s, %d characters); see the sandbox outbox",
            to,
            purpose,
            len(body),
            extra={"provider_sid": sid},
        )
        if purpose != "otp":
            log.debug("sandbox SMS body: %s", body)
        return SendOutcome(provider_sid=sid, provider_status="delivered")

    async def close(self) -> None:
        """Nothing to release."""
