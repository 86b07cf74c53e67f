"""The OpenAPI 3.1 description of the reminders API (reply endpoint, user and operator APIs)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

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
from services.reminders.replies import ActionKind
from shared.web.auth import public
from shared.web.openapi import Operation, build_document


class ReplyAction(BaseModel):
    """One thing a reply did (or asked), machine-readable."""

    kind: ActionKind
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

OPERATIONS: list[Operation] = [
    Operation(
        "post",
        "/internal/v1/replies",
        "Interpret an inbound SMS (idempotent by message_sid)",
        "ReplyIn",
        "ReplyOut",
        "service",
    ),
    Operation(
        "delete",
        "/internal/v1/users/{user_id}",
        "Delete a user's schedules and history",
        security="service",
        status=204,
    ),
    Operation(
        "get",
        "/internal/v1/users/{user_id}/export",
        "A user's reminders data",
        security="service",
    ),
    Operation("get", "/v1/preferences", "The signed-in user's nudge preferences"),
    Operation("put", "/v1/preferences", "Change nudge preferences", "Preferences"),
    Operation("get", "/v1/touchpoints", "Upcoming touchpoints"),
    Operation("post", "/v1/touchpoints", "Add a one-off touchpoint", "OneOffIn", status=201),
    Operation("get", "/admin/v1/tiers", "Default cadence per tier", None, "Tiers", "operator"),
    Operation("put", "/admin/v1/tiers", "Replace the tier defaults", "Tiers", "Tiers", "operator"),
    Operation(
        "get", "/admin/v1/follow-up-rules", "Follow-up rules", None, "FollowUpRules", "operator"
    ),
    Operation(
        "put",
        "/admin/v1/follow-up-rules",
        "Replace the follow-up rules",
        "FollowUpRules",
        "FollowUpRules",
        "operator",
    ),
    Operation(
        "get", "/admin/v1/send-window", "Send-window defaults", None, "WindowDefaults", "operator"
    ),
    Operation(
        "put",
        "/admin/v1/send-window",
        "Replace the send-window defaults",
        "WindowDefaults",
        "WindowDefaults",
        "operator",
    ),
    Operation("get", "/admin/v1/jobs", "System job timings", security="operator"),
    Operation(
        "put",
        "/admin/v1/jobs",
        "Change job timings (applied without restart)",
        "JobTimings",
        security="operator",
    ),
    Operation(
        "put", "/admin/v1/pause", "Pause or resume all nudges", "GlobalPause", security="operator"
    ),
    Operation(
        "put",
        "/admin/v1/users/{user_id}/pause",
        "Pause one user",
        "UserPause",
        security="operator",
    ),
    Operation(
        "get", "/admin/v1/users/{user_id}/schedule", "A user's schedule", security="operator"
    ),
    Operation(
        "get",
        "/admin/v1/nudges",
        "Recent digests; status=failed for failures",
        security="operator",
    ),
    Operation(
        "get", "/admin/v1/dry-run", "What would be sent in the next days", security="operator"
    ),
    Operation("get", "/admin/v1/audit", "Audit log of operator changes", security="operator"),
]


def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    return build_document("touchbase reminders", MODELS, OPERATIONS)


@public
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(document())
