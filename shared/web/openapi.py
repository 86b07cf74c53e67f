"""OpenAPI 3.1 documents built from pydantic models and a table of operations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Security = Literal["service", "user", "operator", "signed", "none"]


@dataclass(frozen=True)
class Operation:
    """One operation: its path, what it takes and returns, and who may call it."""

    method: str
    path: str
    summary: str
    body: str | None = None
    answer: str | None = None
    security: Security = "user"
    query: str | None = None
    form: bool = False
    status: int = 200


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": spec}
        for name, spec in schema.get("properties", {}).items()
    ]


def build_document(
    title: str,
    models: list[type[BaseModel]],
    operations: list[Operation],
    queries: dict[str, type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """The document: schemas from ``models`` (referred to by class name), paths from the table."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    security_scheme: dict[str, list[dict[str, list[str]]]] = {
        "service": [{"serviceToken": []}],
        "user": [{"bearer": []}],
        "operator": [{"bearer": []}],
        "signed": [],
        "none": [],
    }
    paths: dict[str, Any] = {}
    for op in operations:
        answer_schema: dict[str, Any] = (
            {"$ref": f"#/components/schemas/{op.answer}"} if op.answer else {"type": "object"}
        )
        spec: dict[str, Any] = {
            "summary": op.summary,
            "security": security_scheme[op.security],
            "responses": {
                str(op.status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": answer_schema}},
                },
                "default": {"description": "An RFC 9457 problem (application/problem+json)"},
            },
        }
        if op.status == 204:
            spec["responses"]["204"] = {"description": "Done"}
        if op.security == "operator":
            spec["description"] = "Needs a user access token with role operator."
        if op.security == "signed":
            spec["description"] = "Needs a valid X-Twilio-Signature; anything else is a 403."
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(op.path)
        ]
        if op.query and queries:
            parameters += _query_parameters(queries[op.query])
        if parameters:
            spec["parameters"] = parameters
        if op.body:
            media = "application/x-www-form-urlencoded" if op.form else "application/json"
            spec["requestBody"] = {
                "required": True,
                "content": {media: {"schema": {"$ref": f"#/components/schemas/{op.body}"}}},
            }
        paths.setdefault(op.path, {})[op.method] = spec
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def _path_names(path: str) -> list[str]:
    # Templates may share a segment with a literal (``/v1/touchpoints/{id}:done``).
    return re.findall(r"\{([^{}/]+)\}", path)
