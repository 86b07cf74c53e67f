"""Authentication: deny by default; service tokens on /internal, user tokens elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from shared.auth import Principal, verify_access_token, verify_service_token
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.web.keys import PRINCIPAL, SETTINGS

F = TypeVar("F", bound=Callable[..., object])

INTERNAL_PREFIX = "/internal/"


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
        request[PRINCIPAL] = verify_access_token(settings.auth_jwt_secret.get_secret_value(), token)
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
