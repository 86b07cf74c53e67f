"""The shared web stack on a real app: problems, auth, validation, request ids, test clock."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, ConfigDict, Field

from services.contacts.settings import ContactsSettings
from shared.app import create_base_app
from shared.auth import issue_access_token, issue_service_token
from shared.clock import ControllableClock
from shared.errors import Conflict, NotFound
from shared.web.auth import principal, public, require_operator
from shared.web.validation import parse_body, parse_query
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET, make_settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Thing(BaseModel):
    """A body for the validation tests."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=20)
    count: int = Field(default=0, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


class Page(BaseModel):
    """A query for the validation tests."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=10, ge=1, le=100)


async def echo(request: web.Request) -> web.Response:
    body = await parse_body(request, Thing)
    return web.json_response({"thing": body.model_dump(), "who": principal(request).subject})


async def listing(request: web.Request) -> web.Response:
    query = parse_query(request, Page)
    return web.json_response({"limit": query.limit})


async def missing(request: web.Request) -> web.Response:
    raise NotFound("no such thing")


async def conflict(request: web.Request) -> web.Response:
    raise Conflict("already there", current="x")


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals +14155550123")


async def admin(request: web.Request) -> web.Response:
    require_operator(request)
    return web.json_response({"ok": True})


async def internal(request: web.Request) -> web.Response:
    return web.json_response({"caller": principal(request).subject})


@public
async def open_door(request: web.Request) -> web.Response:
    return web.json_response({"open": True})


@pytest.fixture
def clock() -> ControllableClock:
    return ControllableClock(T0)


@pytest.fixture
async def client(
    aiohttp_client: Any, mongodb_uri: str, db_name: str, clock: ControllableClock
) -> TestClient[web.Request, web.Application]:
    settings = make_settings(ContactsSettings, mongodb_uri, db_name, CONTROLLABLE_CLOCK="true")
    app = create_base_app(settings, clock=clock)
    app.router.add_post("/v1/echo", echo)
    app.router.add_get("/v1/list", listing)
    app.router.add_get("/v1/missing", missing)
    app.router.add_get("/v1/conflict", conflict)
    app.router.add_get("/v1/boom", boom)
    app.router.add_get("/admin/v1/x", admin)
    app.router.add_get("/internal/v1/whoami", internal)
    app.router.add_get("/v1/open", open_door)
    result: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    return result


def user_headers(role: str = "networker", now: datetime | None = None, **kw: Any) -> dict[str, str]:
    token = issue_access_token(JWT_SECRET, "u1", role, now, **kw)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def service_headers(caller: str = "reminders", audience: str = "contacts") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_service_token(INTERNAL_SECRET, caller, audience)}"}


async def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["status"] == status
    assert body["type"].startswith("https://touchbase.dev/problems/")
    assert body["title"]
    return body


async def test_requests_without_credentials_are_rejected(client: Any) -> None:
    body = await problem(await client.get("/v1/list"), 401)
    assert body["type"].endswith("/unauthorized")
    await problem(await client.get("/internal/v1/whoami"), 401)
    resp = await client.get("/v1/open")
    assert resp.status == 200


async def test_user_tokens_are_checked(client: Any, clock: ControllableClock) -> None:
    assert (await client.get("/v1/list", headers=user_headers())).status == 200
    # Expiry follows the wall clock, whatever the service's test clock says.
    wall = datetime.now(UTC)
    await problem(
        await client.get("/v1/list", headers=user_headers(now=wall - timedelta(minutes=16))), 401
    )
    clock.advance(timedelta(days=30))
    assert (await client.get("/v1/list", headers=user_headers())).status == 200
    # A token signed with another key, and alg=none.
    forged = issue_access_token("x" * 40, "u1", "networker")
    await problem(await client.get("/v1/list", headers={"Authorization": f"Bearer {forged}"}), 401)
    header = json.dumps({"alg": "none", "typ": "JWT"}).encode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {
        "sub": "u1",
        "aud": "touchbase-api",
        "iss": "touchbase-contacts",
        "role": "operator",
        "typ": "access",
        "iat": int(wall.timestamp()),
        "exp": int(wall.timestamp()) + 600,
    }
    none_token = f"{b64(header)}.{b64(json.dumps(claims).encode())}."
    await problem(
        await client.get("/v1/list", headers={"Authorization": f"Bearer {none_token}"}), 401
    )


async def test_service_tokens_only_on_internal_routes(client: Any) -> None:
    resp = await client.get("/internal/v1/whoami", headers=service_headers())
    assert (await resp.json())["caller"] == "reminders"
    # A token minted for another service's audience is refused.
    await problem(
        await client.get("/internal/v1/whoami", headers=service_headers(audience="notifier")), 401
    )
    # A user token is not a service token, and a service token is not a user token.
    await problem(await client.get("/internal/v1/whoami", headers=user_headers()), 401)
    await problem(await client.get("/v1/list", headers=service_headers()), 401)


async def test_operator_routes_need_the_operator_role(client: Any) -> None:
    await problem(await client.get("/admin/v1/x", headers=user_headers()), 403)
    resp = await client.get("/admin/v1/x", headers=user_headers("operator"))
    assert resp.status == 200


async def test_domain_errors_become_problems(client: Any) -> None:
    body = await problem(await client.get("/v1/missing", headers=user_headers()), 404)
    assert body["detail"] == "no such thing"
    body = await problem(await client.get("/v1/conflict", headers=user_headers()), 409)
    assert body["current"] == "x"
    await problem(await client.get("/nowhere"), 404)
    await problem(await client.delete("/v1/list", headers=user_headers()), 405)


async def test_crashes_become_a_500_without_internals(client: Any, caplog: Any) -> None:
    resp = await client.get("/v1/boom", headers={**user_headers(), "X-Request-ID": "req-123"})
    body = await problem(resp, 500)
    assert "secret" not in json.dumps(body)
    assert body["request_id"] == "req-123"
    assert resp.headers["X-Request-ID"] == "req-123"


async def test_request_ids_are_generated_or_sanitised(client: Any) -> None:
    resp = await client.get("/v1/open")
    assert len(resp.headers["X-Request-ID"]) == 32
    resp = await client.get("/v1/open", headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.headers["X-Request-ID"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b'{"name": "a", "bogus": 1}', "application/json", 422, "bogus"),
        (b'{"name": ""}', "application/json", 422, "name"),
        (b'{"name": "a", "count": -1}', "application/json", 422, "count"),
        (b'{"name": "a", "extra": {"$gt": 1}}', "application/json", 422, "extra.$gt"),
        (b'{"name": "a", "extra": {"a.b": 1}}', "application/json", 422, "extra.a.b"),
        (
            b'{"name": "a", "extra": ' + b'{"x": ' * 20 + b"1" + b"}" * 20 + b"}",
            "application/json",
            422,
            None,
        ),
        (b'{"name": ', "application/json", 400, None),
        (b'{"name": "\xff"}', "application/json", 400, None),
        (b"name=a", "application/x-www-form-urlencoded", 415, None),
        (b'{"name": "' + b"a" * 70_000 + b'"}', "application/json", 413, None),
    ],
)
async def test_bad_bodies_get_clear_problems(
    client: Any, body: bytes, content_type: str, status: int, field: str | None
) -> None:
    resp = await client.post(
        "/v1/echo", data=body, headers={**user_headers(), "Content-Type": content_type}
    )
    problem_body = await problem(resp, status)
    if field is not None:
        assert field in [error["field"] for error in problem_body["errors"]]


async def test_good_bodies_and_queries_parse(client: Any) -> None:
    resp = await client.post("/v1/echo", json={"name": "Dana", "count": 2}, headers=user_headers())
    assert resp.status == 200
    assert (await resp.json())["thing"]["name"] == "Dana"
    resp = await client.get("/v1/list?limit=5", headers=user_headers())
    assert (await resp.json())["limit"] == 5
    for bad in ("limit=0", "limit=abc", "limit=1000000000000000", "nope=1"):
        await problem(await client.get(f"/v1/list?{bad}", headers=user_headers()), 422)


async def test_test_clock_endpoint_moves_time(client: Any, clock: ControllableClock) -> None:
    resp = await client.put(
        "/internal/v1/test/clock",
        json={"now": "2030-01-01T00:00:00Z", "frozen": True},
        headers=service_headers("cli"),
    )
    assert resp.status == 200
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    resp = await client.put(
        "/internal/v1/test/clock", json={"advance_seconds": 60}, headers=service_headers("cli")
    )
    assert (await resp.json())["now"] == "2030-01-01T00:01:00+00:00"
    await problem(
        await client.put(
            "/internal/v1/test/clock",
            json={"now": "2030-01-01T00:00:00"},
            headers=service_headers("cli"),
        ),
        422,
    )


async def test_metrics_count_requests_by_route_template(client: Any) -> None:
    await client.get("/v1/missing", headers=user_headers())
    text = await (await client.get("/metrics")).text()
    assert (
        'touchbase_http_requests_total{method="GET",route="/v1/missing",service="contacts",'
        'status="404"} 1.0' in text
    )
