"""Authentication: deny by default; service tokens on /internal, user tokens elsewhere.

Operator rights are checked where they are used: on an ``/admin/`` route of an app that
registers a :data:`ROLE_LOOKUP` (reminders asks contacts), the caller's role is read at request
time, so a grant or a revoke counts from the next request; the ``role`` claim of the access
token is not trusted there, since it is fixed for the token's lifetime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from shared.auth import Principal, Role, verify_access_token, verify_service_token
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.web.keys import PRINCIPAL, SETTINGS

F = TypeVar("F", bound=Callable[..., object])

INTERNAL_PREFIX = "/internal/"
ADMIN_PREFIX = "/admin/"

# The current role of a user by id, None when there is no such user (it may raise an
# UpstreamError when the source cannot be asked: the request then fails, never falls back).
RoleLookup = Callable[[str], Awaitable[Role | None]]
ROLE_LOOKUP: web.AppKey[RoleLookup] = web.AppKey("role_lookup")


def public(handler: F) -> F:
    """Mark a handler as reachable without credentials (health, metrics, signed webhooks)."""
    handler.__public__ = True  # type: ignore[attr-defined]
    return handler


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


def _is_public(request: web.Request) -> bool:
    handler = request.match_info.handler
    return bool(getattr(handler, "__public__", False))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller's :class:`Principal` or reject the request."""
    if request.match_info.http_exception is not None or _is_public(request):
        return await handler(request)
    settings = request.app[SETTINGS]
    token = _bearer(request)
    if request.path.startswith(INTERNAL_PREFIX):
        request[PRINCIPAL] = verify_service_token(
            settings.internal_auth_secret.get_secret_value(), token, settings.service_name
        )
    else:
        who = verify_access_token(settings.auth_jwt_secret.get_secret_value(), token)
        lookup = request.app.get(ROLE_LOOKUP)
        if lookup is not None and request.path.startswith(ADMIN_PREFIX):
            who = replace(who, role=await lookup(who.subject))
        request[PRINCIPAL] = who
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """The authenticated caller of this request."""
    return request[PRINCIPAL]


def require_operator(request: web.Request) -> Principal:
    """The caller, who must be a user with the operator role."""
    who = principal(request)
    if not who.is_operator:
        raise Forbidden("this action needs the operator role")
    return who


def require_user(request: web.Request) -> str:
    """The signed-in user's id (a service token is not enough here)."""
    who = principal(request)
    if who.kind != "user":
        raise NotFound()
    return who.subject
