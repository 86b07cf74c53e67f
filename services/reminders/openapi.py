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
    SnoozeIn,
    Tiers,
    TouchpointQuery,
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


class TouchpointOut(BaseModel):
    """A touchpoint as the app sees it; ``etag`` is its current version (also the ETag header)."""

    id: str
    etag: str = Field(description='The strong ETag of this version, e.g. "one:3f2a-2".')
    contact_id: str | None
    contact_name: str | None
    source: str = Field(description="cadence, followup, birthday or oneoff")
    reason: str | None
    state: str = Field(
        description="scheduled, nudged, snoozed (open); done, skipped, cancelled, expired"
    )
    due_at: str | None
    max_at: str | None
    fire_at: str | None = Field(description="When it is next due: due_at or snoozed-until.")
    nudge_count: int


class TouchpointPage(BaseModel):
    """One page of the user's open touchpoints, by fire_at then id."""

    next_digest_at: str | None
    paused_until: str | None
    items: list[TouchpointOut]
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null at the end."
    )


MODELS: list[type[BaseModel]] = [
    TouchpointOut,
    TouchpointPage,
    SnoozeIn,
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
    Operation(
        "get",
        "/v1/touchpoints",
        "The user's open touchpoints, paged (view=due|upcoming, contact_id)",
        answer="TouchpointPage",
        query="TouchpointQuery",
    ),
    Operation(
        "post",
        "/v1/touchpoints/{touchpoint_id}:done",
        "Mark done (a touch with the contact is logged, as DONE by SMS)",
        answer="TouchpointOut",
    ),
    Operation(
        "post",
        "/v1/touchpoints/{touchpoint_id}:snooze",
        'Snooze for a duration ({"for": "2w"}) or until an instant, at most a year ahead',
        "SnoozeIn",
        "TouchpointOut",
    ),
    Operation(
        "post",
        "/v1/touchpoints/{touchpoint_id}:skip",
        "Skip (a skipped check-in restarts its cadence, as SKIP by SMS)",
        answer="TouchpointOut",
    ),
    Operation(
        "delete",
        "/v1/touchpoints/{touchpoint_id}",
        "Delete a one-off touchpoint (other sources are a 409)",
        status=204,
    ),
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


_PROBLEM = {
    "description": "An RFC 9457 problem",
    "content": {"application/problem+json": {"schema": {"type": "object"}}},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "An ETag from a read; a stale one is refused with 412.",
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
    "description": "A repeat within 24 h replays the first answer (Idempotent-Replayed: true).",
}
_ETAG = {"description": "The touchpoint's new version", "schema": {"type": "string"}}
_REPLAYED = {
    "description": "true when the answer is a replay of an Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}


def _touchpoint_actions(paths: dict[str, Any]) -> None:
    """Headers and statuses the touchpoint actions use, beyond what the table says."""
    for path, ops in paths.items():
        if not path.startswith("/v1/touchpoints/{touchpoint_id}"):
            continue
        for method, spec in ops.items():
            spec["parameters"] = [*spec.get("parameters", []), _IF_MATCH]
            responses = spec["responses"]
            responses["404"] = {**_PROBLEM, "description": "No such touchpoint of this user"}
            responses["409"] = {
                **_PROBLEM,
                "description": "Not open (done, skipped...) or, for DELETE, not a one-off",
            }
            responses["412"] = {**_PROBLEM, "description": "If-Match names an older version"}
            if method == "post":
                spec["parameters"].append(_IDEMPOTENCY_KEY)
                responses["200"]["headers"] = {"ETag": _ETAG, "Idempotent-Replayed": _REPLAYED}
                responses["422"] = {**_PROBLEM, "description": "Invalid body or Idempotency-Key"}
    listing = paths["/v1/touchpoints"]["get"]["responses"]
    listing["400"] = {**_PROBLEM, "description": "A cursor that no page returned"}
    listing["422"] = {**_PROBLEM, "description": "An unknown view or a limit out of 1-200"}


def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    doc = build_document(
        "touchbase reminders", MODELS, OPERATIONS, {"TouchpointQuery": TouchpointQuery}
    )
    _touchpoint_actions(doc["paths"])
    return doc


@public
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(document())
