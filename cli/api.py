"""HTTP calls from the command line: user tokens with refresh, service tokens for dev commands."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import aiohttp

from cli.config import Credentials, Endpoints, internal_secret
from shared.auth import issue_service_token


class CliError(Exception):
    """A failure to report to the user, with the exit code scripts can rely on."""

    exit_code = 1

    def __init__(self, message: str, *, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = problem or {}


class Refused(CliError):
    """The service answered with a 4xx problem."""

    exit_code = 1


class Unavailable(CliError):
    """A service is down, unreachable or failing (5xx)."""

    exit_code = 3


class NotSignedIn(CliError):
    """No valid credentials: run ``touchbase login``."""

    exit_code = 4


def _problem_text(status: int, body: Any) -> str:
    if isinstance(body, dict):
        text = str(body.get("detail") or body.get("title") or status)
        errors = body.get("errors") or []
        if errors:
            text += ": " + "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors)
        return text
    return f"HTTP {status}"


class Api:
    """One HTTP session for the life of a command."""

    def __init__(self, endpoints: Endpoints, credentials: Credentials, timeout_s: float = 15.0):
        self.endpoints = endpoints
        self.credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, service: str, path: str) -> str:
        base: str = getattr(self.endpoints, service)
        return base + path

    async def _send(
        self,
        method: str,
        service: str,
        path: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        assert self._session is not None
        url = self._url(service, path)
        try:
            async with self._session.request(
                method, url, json=json_body, params=params, headers=headers
            ) as resp:
                body: Any = None
                if resp.content_type.endswith("json"):
                    body = await resp.json(content_type=None)
                else:
                    body = await resp.text()
                return resp.status, body, dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(
                f"{service} is not reachable at {self._url(service, '')} ({type(exc).__name__}); "
                "is it running? (`make run` starts everything)"
            ) from None

    def _check(self, service: str, status: int, body: Any) -> Any:
        if status >= 500:
            raise Unavailable(f"{service} failed: {_problem_text(status, body)}", problem=body)
        if status == 401:
            raise NotSignedIn("not signed in, or the session expired: run `touchbase login`")
        if status >= 400:
            raise Refused(_problem_text(status, body), problem=body)
        return body

    async def public(self, method: str, service: str, path: str, json_body: Any = None) -> Any:
        """Call an endpoint that needs no credentials (sign-in)."""
        headers = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
        status, body, _ = await self._send(
            method, service, path, headers=headers, json_body=json_body
        )
        return self._check(service, status, body)

    async def user(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Call as the signed-in user, refreshing the access token once if it has expired."""
        stored = self.credentials.load()
        if not stored:
            raise NotSignedIn("not signed in: run `touchbase login --phone +1...`")
        extra = dict(headers or {})
        if method == "POST":
            # One key per command: a retried command is a new intent, a retried request is not.
            extra.setdefault("Idempotency-Key", uuid.uuid4().hex)
        for attempt in range(2):
            auth = {"Authorization": f"Bearer {stored['access_token']}", **extra}
            status, body, _ = await self._send(
                method, service, path, headers=auth, json_body=json_body, params=params
            )
            if status == 401 and attempt == 0 and stored.get("refresh_token"):
                stored = await self._refresh(stored)
                continue
            return self._check(service, status, body)
        raise NotSignedIn("the session expired: run `touchbase login`")

    async def _refresh(self, stored: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = await self._send(
            "POST",
            "contacts",
            "/v1/auth/refresh",
            headers={},
            json_body={"refresh_token": stored["refresh_token"]},
        )
        if status != 200 or not isinstance(body, dict):
            self.credentials.clear()
            raise NotSignedIn("the session expired: run `touchbase login`")
        updated = {**stored, **body}
        self.credentials.save(updated)
        return updated

    async def internal(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Call an internal API as the CLI (needs INTERNAL_AUTH_SECRET or the dev stack)."""
        secret = internal_secret()
        if not secret:
            raise CliError(
                "this command needs INTERNAL_AUTH_SECRET (or a dev stack started by `make run`)"
            )
        headers = {"Authorization": f"Bearer {issue_service_token(secret, 'cli', service)}"}
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        status, body, _ = await self._send(
            method, service, path, headers=headers, json_body=json_body, params=params
        )
        return self._check(service, status, body)

    async def ready(self, service: str) -> tuple[int, Any]:
        """A service's /readyz answer."""
        status, body, _ = await self._send("GET", service, "/readyz", headers={})
        return status, body
