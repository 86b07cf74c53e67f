"""The OpenAPI 3.1 description of the contacts API, generated from the route table and models."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.contacts.routes import ID_PATTERN, ROUTES, Route
from shared.web.auth import public

REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "description": "Repeat-safe create: a repeat with the same body replays the answer.",
        "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$"},
    },
    "If-Match": {
        "description": "The ETag last read; a stale one gets 412.",
        "schema": {"type": "string"},
    },
}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _operation(route: Route, schemas: dict[Any, Any]) -> dict[str, Any]:
    doc = (route.handler.__doc__ or "").strip().splitlines()
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": doc[0] if doc else route.handler.__name__,
        "tags": [route.tag],
        "parameters": [],
        "responses": {},
    }
    for name in re.findall(r"\{(\w+)\}", route.path):
        op["parameters"].append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
            }
        )
    if route.query is not None:
        op["parameters"] += _query_parameters(route.query)
    for header in route.headers:
        op["parameters"].append({"name": header, "in": "header", "required": False,
                                 **HEADER_SCHEMAS[header]})  # fmt: skip
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[(route.body, "validation")]}},
        }
    if route.uploads:
        binary = {"type": "string", "format": "binary"}
        content: dict[str, Any] = {media: {"schema": binary} for media in route.uploads}
        content["multipart/form-data"] = {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": binary}}
        }
        op["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": HTTPStatus(route.status).phrase}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": schemas[(route.response, "serialization")]}}
    op["responses"][str(route.status)] = ok
    errors = set(route.errors) | {404}
    if route.uploads:
        errors |= {400, 413, 415, 422}
    if route.body is not None or route.query is not None:
        # 400 for a body that does not parse, or a page cursor that is not one of ours.
        errors |= {400, 413, 415, 422} if route.body is not None else {400, 422}
    # Public sign-in routes answer 401 too: a wrong code or a spent refresh token.
    errors.add(401)
    if route.headers == ("Idempotency-Key",):
        errors |= {409, 422}
    for status in sorted(errors):
        op["responses"][str(status)] = _problem(status)
    if route.public:
        op["security"] = []
    elif route.internal:
        op["security"] = [{"serviceToken": []}]
    return op


def build_spec() -> dict[str, Any]:
    """The whole OpenAPI document."""
    wanted: list[tuple[type[BaseModel], Any]] = []
    for route in ROUTES:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    mapping, defs = models_json_schema(unique, ref_template=REF)
    schemas: dict[Any, Any] = dict(mapping)
    components = dict(defs.get("$defs", {}))
    components["Problem"] = PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "touchbase contacts",
            "version": "1.0.0",
            "description": "Users, contacts, interactions and referrals of touchbase networkers.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
        "security": [{"userToken": []}],
    }


@public
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document of this service."""
    return web.json_response(build_spec())
