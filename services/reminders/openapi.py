"""The OpenAPI 3.1 description of the reminders API (reply endpoint, user and operator APIs)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from services.reminders.models import (
    FollowUpRules,
    GlobalPause,
    JobTimings,
    OneOffIn,
    Preferences,
    ReplyIn,
    Tiers,
    UserPause,
    WindowDefaults,
)
from shared.web.auth import public


class ReplyAction(BaseModel):
    """One thing a reply did (or asked), machine-readable."""

    kind: Literal[
        "touched",
        "one_to_one",
        "snoozed",
        "skipped",
        "note",
        "referral_given",
        "referral_received",
        "paused",
        "resumed",
        "undone",
        "help",
        "who",
    ]
    contact_id: str | None = None
    contact_name: str | None = None
    details: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "touched/one_to_one: interaction_id, touchpoint_id, notes?, next_action?; "
            "snoozed: touchpoint_id, until; skipped: touchpoint_id; note: interaction_id; "
            "referral_*: referral_id, for_name?, description?; paused: until; "
            "undone: reverted, interactions, referrals; who: items; help: understood"
        ),
    )


class ReplyOut(BaseModel):
    """The confirmation text for the notifier to send back, and what was done."""

    reply: str
    actions: list[ReplyAction] = Field(
        description="Empty when nothing was done (a question back, nothing to undo)."
    )


MODELS: list[type[BaseModel]] = [
    ReplyIn,
    ReplyOut,
    ReplyAction,
    Preferences,
    OneOffIn,
    Tiers,
    FollowUpRules,
    WindowDefaults,
    JobTimings,
    GlobalPause,
    UserPause,
]

# (method, path, summary, request model, response model, security)
OPERATIONS: list[tuple[str, str, str, str | None, str | None, str]] = [
    (
        "post",
        "/internal/v1/replies",
        "Interpret an inbound SMS (idempotent by message_sid)",
        "ReplyIn",
        "ReplyOut",
        "service",
    ),
    (
        "delete",
        "/internal/v1/users/{user_id}",
        "Delete a user's schedules and history",
        None,
        None,
        "service",
    ),
    (
        "get",
        "/internal/v1/users/{user_id}/export",
        "A user's reminders data",
        None,
        None,
        "service",
    ),
    ("get", "/v1/preferences", "The signed-in user's nudge preferences", None, None, "user"),
    ("put", "/v1/preferences", "Change nudge preferences", "Preferences", None, "user"),
    ("get", "/v1/touchpoints", "Upcoming touchpoints", None, None, "user"),
    ("post", "/v1/touchpoints", "Add a one-off touchpoint", "OneOffIn", None, "user"),
    ("get", "/admin/v1/tiers", "Default cadence per tier", None, "Tiers", "operator"),
    ("put", "/admin/v1/tiers", "Replace the tier defaults", "Tiers", "Tiers", "operator"),
    ("get", "/admin/v1/follow-up-rules", "Follow-up rules", None, "FollowUpRules", "operator"),
    (
        "put",
        "/admin/v1/follow-up-rules",
        "Replace the follow-up rules",
        "FollowUpRules",
        "FollowUpRules",
        "operator",
    ),
    ("get", "/admin/v1/send-window", "Send-window defaults", None, "WindowDefaults", "operator"),
    (
        "put",
        "/admin/v1/send-window",
        "Replace the send-window defaults",
        "WindowDefaults",
        "WindowDefaults",
        "operator",
    ),
    ("get", "/admin/v1/jobs", "System job timings", None, None, "operator"),
    (
        "put",
        "/admin/v1/jobs",
        "Change job timings (applied without restart)",
        "JobTimings",
        None,
        "operator",
    ),
    ("put", "/admin/v1/pause", "Pause or resume all nudges", "GlobalPause", None, "operator"),
    ("put", "/admin/v1/users/{user_id}/pause", "Pause one user", "UserPause", None, "operator"),
    ("get", "/admin/v1/users/{user_id}/schedule", "A user's schedule", None, None, "operator"),
    (
        "get",
        "/admin/v1/nudges",
        "Recent digests; status=failed for failures",
        None,
        None,
        "operator",
    ),
    ("get", "/admin/v1/dry-run", "What would be sent in the next days", None, None, "operator"),
    ("get", "/admin/v1/audit", "Audit log of operator changes", None, None, "operator"),
]


def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, Any] = {}
    for method, path, summary, body, answer, security in OPERATIONS:
        op: dict[str, Any] = {
            "summary": summary,
            "security": [{"serviceToken" if security == "service" else "bearer": []}],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{answer}"}
                            if answer
                            else {"type": "object"}
                        }
                    },
                },
                "default": {"description": "An RFC 9457 problem (application/problem+json)"},
            },
        }
        if security == "operator":
            op["description"] = "Needs a user access token with role operator."
        if "{user_id}" in path:
            op["parameters"] = [
                {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ]
        if body:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                },
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "touchbase reminders", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


@public
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(document())
