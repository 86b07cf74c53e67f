"""Typed application and request keys shared by every service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from shared.clock import Clock

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.asynchronous.mongo_client import AsyncMongoClient

    from shared.auth import Principal
    from shared.config import ServiceSettings

ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]

SETTINGS: web.AppKey[ServiceSettings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock", Clock)
METRICS: web.AppKey[CollectorRegistry] = web.AppKey("metrics", CollectorRegistry)
MONGO_CLIENT: web.AppKey[AsyncMongoClient[dict[str, Any]]] = web.AppKey("mongo_client")
DB: web.AppKey[AsyncDatabase[dict[str, Any]]] = web.AppKey("db")
READINESS: web.AppKey[dict[str, ReadinessCheck]] = web.AppKey("readiness", dict)

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
