"""RFC 9457 problem+json responses: every error body in every service has this one shape."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pymongo.errors import ConnectionFailure, PyMongoError

from shared.errors import DomainError
from shared.logs import request_id_var

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://touchbase.dev/problems/"


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    slug: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The problem document itself (also the per-item error of a batch answer)."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or _slug(status)),
        "title": title or phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update(extra)
    return body


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Build a problem+json response with a stable ``type`` and the current request id."""
    body = problem_body(status, title=title, detail=detail, slug=slug, **extra)
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False, default=str),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() not in {"content-type", "content-length"}
    }
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    if exc.status == 413:
        detail = "the request body is too large"
    elif exc.status == 405:
        detail = f"method not allowed; allowed: {headers.get('Allow', '')}".rstrip(" ;:")
    return problem_response(exc.status, detail=detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors, aiohttp HTTP errors and crashes into problem+json."""
    try:
        return await handler(request)
    except DomainError as exc:
        return problem_response(
            exc.status,
            title=exc.title,
            detail=exc.detail,
            slug=exc.slug,
            headers=exc.headers,
            **exc.extra,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except ConnectionFailure:
        log.warning("database unavailable during %s %s", request.method, request.path)
        return problem_response(
            503,
            slug="service-unavailable",
            detail="the database is unavailable; retry shortly",
            headers={"Retry-After": "5"},
        )
    except PyMongoError:
        log.exception("database error during %s %s", request.method, request.path)
        return problem_response(500, slug="internal-error", detail="an internal error occurred")
    except Exception:
        log.exception("unhandled error during %s %s", request.method, request.path)
        return problem_response(500, slug="internal-error", detail="an internal error occurred")
