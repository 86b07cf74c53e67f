"""Prometheus metrics: one registry per app, request counters and latency, ``/metrics``."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from shared.web.keys import METRICS

REQUESTS: web.AppKey[Counter] = web.AppKey("metric_requests", Counter)
LATENCY: web.AppKey[Histogram] = web.AppKey("metric_latency", Histogram)


def setup_metrics(app: web.Application, service: str) -> CollectorRegistry:
    """Create the app's registry and HTTP metrics, and mount ``GET /metrics``."""
    registry = CollectorRegistry(auto_describe=True)
    app[METRICS] = registry
    app[REQUESTS] = Counter(
        "touchbase_http_requests_total",
        "HTTP requests handled, by route template, method and status.",
        ["service", "method", "route", "status"],
        registry=registry,
    )
    app[LATENCY] = Histogram(
        "touchbase_http_request_duration_seconds",
        "Time to handle an HTTP request, by route template.",
        ["service", "method", "route"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    app.router.add_get("/metrics", metrics_handler)
    app.middlewares.append(_metrics_middleware(service))
    return registry


def _route_label(request: web.Request) -> str:
    # The route template (not the raw path) keeps label cardinality bounded.
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def _metrics_middleware(service: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_label(request)
            app = request.app
            app[REQUESTS].labels(service, request.method, route, str(status)).inc()
            app[LATENCY].labels(service, request.method, route).observe(time.perf_counter() - start)

    return middleware


async def metrics_handler(request: web.Request) -> web.Response:
    """Serve the registry in the Prometheus text format."""
    body = generate_latest(request.app[METRICS])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


metrics_handler.__public__ = True  # type: ignore[attr-defined]
