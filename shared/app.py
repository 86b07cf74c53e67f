"""The common skeleton of every service's app factory and process entry point."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from aiohttp import web

from shared.clock import Clock, ControllableClock, SystemClock, parse_instant
from shared.config import ConfigurationError, ServiceSettings, SettingsT, load_settings
from shared.logs import setup_logging
from shared.mongo import IndexHook, setup_mongo
from shared.web.auth import auth_middleware
from shared.web.health import setup_health
from shared.web.keys import CLOCK, READINESS, SETTINGS
from shared.web.metrics import setup_metrics
from shared.web.problems import problem_middleware
from shared.web.request_id import request_id_middleware
from shared.web.testing import setup_test_clock
from shared.web.validation import MAX_BODY_BYTES

log = logging.getLogger(__name__)


def clock_from_settings(settings: ServiceSettings) -> Clock:
    """The wall clock, or a controllable one when test mode asks for it."""
    if settings.controllable_clock:
        start = parse_instant(settings.clock_start) if settings.clock_start else None
        return ControllableClock(start)
    return SystemClock()


def create_base_app(
    settings: ServiceSettings,
    *,
    clock: Clock | None = None,
    index_hooks: tuple[IndexHook, ...] = (),
) -> web.Application:
    """An application with settings, clock, middlewares, database, health and metrics wired.

    Middleware order, outermost first: request id (so every log line has it), metrics (so
    every answer is counted, errors included), problem mapping, then authentication.
    """
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[request_id_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock or clock_from_settings(settings)
    app[READINESS] = {}
    setup_metrics(app, settings.service_name)
    app.middlewares.append(problem_middleware)
    app.middlewares.append(auth_middleware)
    setup_health(app)
    setup_mongo(app, *index_hooks)
    if settings.test_mode and isinstance(app[CLOCK], ControllableClock):
        setup_test_clock(app)
    return app


def run_service(
    settings_cls: type[SettingsT], factory: Callable[[SettingsT], web.Application]
) -> None:
    """Read settings (exiting with one clear message if invalid), build the app and serve it."""
    try:
        settings = load_settings(settings_cls)
    except ConfigurationError as exc:
        print(f"touchbase: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.service_name, settings.log_level, settings.log_format)
    if settings.test_mode:
        log.warning("TEST_MODE is on: test-only endpoints are enabled; never use in production")
    app = factory(settings)

    def announce(text: str) -> None:
        log.info(
            "%s listening on http://%s:%d", settings.service_name, settings.host, settings.port
        )

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=announce,
        shutdown_timeout=10.0,
        handler_cancellation=True,
    )
