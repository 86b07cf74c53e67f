"""Typed client for calls between services: one session per upstream, auth, retries, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.auth import issue_service_token
from shared.clock import Clock
from shared.errors import UpstreamError
from shared.logs import request_id_var

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A decoded answer from another service."""

    status: int
    body: Any
    headers: Mapping[str, str]


class ServiceClient:
    """Calls one upstream service's internal API as ``caller``."""

    def __init__(
        self,
        *,
        base_url: str,
        caller: str,
        audience: str,
        secret: str,
        clock: Clock,
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._caller = caller
        self._audience = audience
        self._secret = secret
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = max(attempts, 1)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """Where the upstream listens."""
        return self._base_url

    async def start(self) -> None:
        """Open the connection pool (inside the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=100),
            )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        token = issue_service_token(self._secret, self._caller, self._audience)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        rid = request_id_var.get()
        if rid:
            headers["X-Request-ID"] = rid
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), self._max_backoff_s)
            except ValueError:
                pass
        # Full jitter: spreads retries from many replicas instead of synchronising them.
        return random.uniform(0, min(self._max_backoff_s, self._backoff_s * 2**attempt))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        retry: bool | None = None,
    ) -> UpstreamResponse:
        """Send a request; retry transport errors, 429 and 502-504 when it is safe to repeat.

        A call is safe to repeat when its method is idempotent or it carries an idempotency key.
        4xx answers other than 429 are returned to the caller, not raised.
        """
        if self._session is None:
            await self.start()
        assert self._session is not None
        method = method.upper()
        if retry is None:
            retry = method in IDEMPOTENT_METHODS or idempotency_key is not None
        attempts = self._attempts if retry else 1
        url = self._base_url + path
        last_error = "no attempt made"
        for attempt in range(attempts):
            retry_after: str | None = None
            try:
                async with self._session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers=self._headers(idempotency_key),
                ) as resp:
                    raw = await resp.read()
                    body: Any = None
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = raw.decode("utf-8", "replace")
                    if resp.status in RETRYABLE_STATUS or resp.status >= 500:
                        last_error = f"{self._audience} answered {resp.status}"
                        retry_after = resp.headers.get("Retry-After")
                        if attempt + 1 >= attempts:
                            raise UpstreamError(
                                f"{self._audience} failed: {last_error}",
                                upstream_status=resp.status,
                            )
                    else:
                        return UpstreamResponse(resp.status, body, dict(resp.headers))
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                if attempt + 1 >= attempts:
                    raise UpstreamError(f"{self._audience} unreachable: {last_error}") from None
            delay = self._delay(attempt, retry_after)
            log.info(
                "retrying %s %s in %.2fs (%s)",
                method,
                path,
                delay,
                last_error,
                extra={"upstream": self._audience},
            )
            await asyncio.sleep(delay)
        raise UpstreamError(f"{self._audience} failed: {last_error}")
