"""Liveness (``/healthz``) and readiness (``/readyz``) endpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from shared.web.auth import public
from shared.web.keys import READINESS, SETTINGS

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0


@public
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving; says nothing about dependencies."""
    return web.json_response({"status": "ok", "service": request.app[SETTINGS].service_name})


@public
async def readyz(request: web.Request) -> web.Response:
    """Every dependency answers; 503 with each failing check's reason otherwise."""
    checks: dict[str, dict[str, Any]] = {}
    items = list(request.app[READINESS].items())

    async def run(name: str, check: Any) -> None:
        try:
            checks[name] = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            checks[name] = {"status": "down", "reason": f"no answer within {CHECK_TIMEOUT_S:g}s"}
        except Exception as exc:
            checks[name] = {"status": "down", "reason": f"{type(exc).__name__}: {exc}"[:300]}

    await asyncio.gather(*(run(name, check) for name, check in items))
    ready = all(c.get("status") == "up" for c in checks.values())
    if not ready:
        log.warning("not ready: %s", {k: v for k, v in checks.items() if v.get("status") != "up"})
    body = {
        "status": "ready" if ready else "not ready",
        "service": request.app[SETTINGS].service_name,
        "checks": checks,
    }
    return web.json_response(body, status=200 if ready else 503)


def setup_health(app: web.Application) -> None:
    """Mount ``/healthz`` and ``/readyz``."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
