"""The inter-service client's retry rules, and log redaction."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from shared.auth import verify_service_token
from shared.clock import SystemClock
from shared.errors import UpstreamError
from shared.http import ServiceClient
from shared.logs import JsonFormatter, RedactingFilter, mask_phone, request_id_var
from tests.support.settings import INTERNAL_SECRET


class Upstream:
    """A small upstream whose answers are scripted per call."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        caller = verify_service_token(INTERNAL_SECRET, token, "notifier").subject
        self.calls.append(
            {
                "caller": caller,
                "key": request.headers.get("Idempotency-Key"),
                "rid": request.headers.get("X-Request-ID"),
            }
        )
        status = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return web.json_response({"n": len(self.calls)}, status=status)


async def make_client(aiohttp_server: Any, upstream: Upstream, attempts: int = 4) -> ServiceClient:
    app = web.Application()
    app.router.add_route("*", "/x", upstream.handle)
    server = await aiohttp_server(app)
    client = ServiceClient(
        base_url=str(server.make_url("")),
        caller="reminders",
        audience="notifier",
        secret=INTERNAL_SECRET,
        clock=SystemClock(),
        attempts=attempts,
        backoff_s=0.001,
    )
    await client.start()
    return client


async def test_idempotent_calls_retry_transient_failures(aiohttp_server: Any) -> None:
    upstream = Upstream([503, 429, 200])
    client = await make_client(aiohttp_server, upstream)
    token = request_id_var.set("rid-1")
    try:
        resp = await client.request("POST", "/x", json_body={}, idempotency_key="k1")
    finally:
        request_id_var.reset(token)
        await client.close()
    assert resp.status == 200
    assert [call["key"] for call in upstream.calls] == ["k1", "k1", "k1"]
    assert {call["caller"] for call in upstream.calls} == {"reminders"}
    assert {call["rid"] for call in upstream.calls} == {"rid-1"}


async def test_unkeyed_posts_are_never_repeated(aiohttp_server: Any) -> None:
    upstream = Upstream([503, 200])
    client = await make_client(aiohttp_server, upstream)
    try:
        with pytest.raises(UpstreamError) as info:
            await client.request("POST", "/x", json_body={})
    finally:
        await client.close()
    assert info.value.upstream_status == 503
    assert len(upstream.calls) == 1


async def test_client_errors_are_returned_not_retried(aiohttp_server: Any) -> None:
    upstream = Upstream([404])
    client = await make_client(aiohttp_server, upstream)
    try:
        resp = await client.request("GET", "/x")
    finally:
        await client.close()
    assert resp.status == 404
    assert len(upstream.calls) == 1


async def test_retries_give_up_after_the_attempt_budget(aiohttp_server: Any) -> None:
    upstream = Upstream([502])
    client = await make_client(aiohttp_server, upstream, attempts=3)
    try:
        with pytest.raises(UpstreamError):
            await client.request("GET", "/x")
    finally:
        await client.close()
    assert len(upstream.calls) == 3


async def test_unreachable_upstream_is_an_upstream_error() -> None:
    client = ServiceClient(
        base_url="http://127.0.0.1:9",
        caller="reminders",
        audience="notifier",
        secret=INTERNAL_SECRET,
        clock=SystemClock(),
        attempts=2,
        backoff_s=0.001,
    )
    try:
        with pytest.raises(UpstreamError, match="unreachable"):
            await client.request("GET", "/x")
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent to +14155550123", "sent to +*********23"),
        ("call (415) 555-0123 now", "call +********23 now"),
        ("+44 20 7946 0958", "+**********58"),
        ("user 42 has 3 contacts", "user 42 has 3 contacts"),
        ("at 2026-11-26", "at 2026-11-26"),
        ("next run at: 2026-11-26 05:01:37 UTC", "next run at: 2026-11-26 05:01:37 UTC"),
        ("to=+14155550123,", "to=+*********23,"),
        ("phone:+14155550123", "phone:+*********23"),
        ("id 123456789012", "id +**********12"),
        # The short and long ends of E.164: Niue's 7 digits, St Helena's, a 15-digit number.
        ("sandbox SMS to +6834002", "sandbox SMS to +*****02"),
        ("from:+6834002,", "from:+*****02,"),
        ("tel:+290 51234", "tel:+******34"),
        ("to +882345678901234 done", "to +*************34 done"),
        ("'To': '+6834002'", "'To': '+*****02'"),
    ],
)
def test_phone_numbers_are_masked(text: str, expected: str) -> None:
    assert mask_phone(text) == expected


def test_json_logs_mask_messages_arguments_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter("contacts"))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("rid-9")
    try:
        logger.warning("otp for %s", "+14155550123", extra={"to": "+14155550123"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert "4155550123" not in stream.getvalue()
    assert line["msg"].endswith("23")
    assert line["to"] == "+*********23"
    assert line["request_id"] == "rid-9"
    assert line["service"] == "contacts"


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter("contacts"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate = False
    return logger, stream, handler


def test_credentials_are_masked_in_messages_and_tracebacks() -> None:
    logger, stream, handler = _capture("tests.redaction.tokens")
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
    try:
        logger.warning("headers: Authorization: Bearer %s", token)
        try:
            raise ValueError(f"bad request Authorization: Bearer {token}")
        except ValueError:
            logger.exception("while handling %s", "+14155550123")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert token not in text
    assert "c2lnbmF0dXJl" not in text
    assert "4155550123" not in text
    assert text.count("[redacted]") >= 2


def test_malformed_http_requests_are_one_info_line_without_the_bytes() -> None:
    from aiohttp.http_exceptions import BadHttpMessage

    logger, stream, handler = _capture("tests.redaction.parser")
    try:
        try:
            raise BadHttpMessage("bad line", headers=None)
        except BadHttpMessage:
            logger.exception("Error handling request from %s: b'GET / HTTP/1.1 Auth: secret'", "x")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["level"] == "INFO"
    assert line["msg"] == "refused a malformed HTTP request (BadHttpMessage)"
    assert "exc" not in line
    assert "secret" not in stream.getvalue()
