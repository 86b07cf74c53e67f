"""HTTP handlers: parse the request, call the service, serialise the answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from services.reminders.conversation import Conversation
from services.reminders.keys import IDEMPOTENCY, JOBS, SERVICE
from services.reminders.models import (
    MAX_SNOOZE,
    DryRunQuery,
    FollowUpRules,
    GlobalPause,
    JobTimings,
    ListQuery,
    OneOffIn,
    Preferences,
    ReplyIn,
    SnoozeIn,
    Tiers,
    TouchpointQuery,
    UserPause,
    WindowDefaults,
)
from services.reminders.scheduling import parse_duration
from services.reminders.service import public_touchpoint
from shared.errors import NotFound, ValidationFailed
from shared.pagination import decode_cursor, encode_cursor
from shared.web.auth import principal, require_operator, require_user
from shared.web.etag import if_match_tags
from shared.web.idempotency import StoredResponse, idempotency_key
from shared.web.validation import parse_body, parse_query


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def reply_json(data: Any, status: int = 200) -> web.Response:
    """A JSON response that writes datetimes as ISO-8601 instants."""
    return web.Response(
        text=json.dumps(data, default=_default, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def _user_id(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not 0 < len(user_id) <= 64:
        raise NotFound("unknown user")
    return user_id


def _service_only(request: web.Request) -> None:
    if principal(request).kind != "service":
        raise NotFound()


# -- internal API (service tokens) -------------------------------------------------------------
async def post_reply(request: web.Request) -> web.Response:
    """Interpret an inbound SMS of a known user (idempotent by ``message_sid``)."""
    _service_only(request)
    body = await parse_body(request, ReplyIn)
    conversation = Conversation(request.app[SERVICE])
    return reply_json(await conversation.handle(body.user_id, body.text, body.message_sid))


async def delete_user(request: web.Request) -> web.Response:
    """Account deletion: forget a user's schedules and history."""
    _service_only(request)
    await request.app[SERVICE].delete_user(_user_id(request))
    return web.Response(status=204)


async def export_user(request: web.Request) -> web.Response:
    """A user's reminders data, for export."""
    _service_only(request)
    data = await request.app[SERVICE].repo.export_user(_user_id(request))
    if data["user"] is None:
        raise NotFound("unknown user")
    return reply_json(data)


# -- the user's own API (user access tokens) ----------------------------------------------------
async def get_preferences(request: web.Request) -> web.Response:
    """The signed-in user's nudge preferences."""
    return reply_json(await request.app[SERVICE].preferences(require_user(request)))


async def put_preferences(request: web.Request) -> web.Response:
    """Change the signed-in user's nudge preferences."""
    user_id = require_user(request)
    prefs = await parse_body(request, Preferences)
    result = await request.app[SERVICE].update_preferences(user_id, prefs.model_dump())
    return reply_json(result)


async def get_upcoming(request: web.Request) -> web.Response:
    """The signed-in user's open touchpoints, a page at a time (``view=due|upcoming``)."""
    user_id = require_user(request)
    query = parse_query(request, TouchpointQuery)
    after = None
    if query.cursor is not None:
        fire_at, last_id = decode_cursor(query.cursor, (datetime, str), "cursor")
        after = (fire_at, last_id)
    svc = request.app[SERVICE]
    page = await svc.touchpoint_page(
        user_id,
        view=query.view,
        contact_id=query.contact_id,
        after=after,
        limit=query.limit + 1,
    )
    more = len(page) > query.limit
    page = page[: query.limit]
    user = await svc.ensure_user(user_id)
    last = page[-1] if page else None
    return reply_json(
        {
            "next_digest_at": user.get("next_digest_at"),
            "paused_until": user.get("paused_until"),
            "items": [public_touchpoint(tp) for tp in page],
            "next_cursor": encode_cursor([last["fire_at"], last["_id"]]) if more and last else None,
        }
    )


def _plain(data: Any) -> Any:
    """JSON-ready data (instants as strings), as stored for a replay."""
    return json.loads(json.dumps(data, default=_default, ensure_ascii=False))


async def _touchpoint_action(
    request: web.Request, action: str, body: Any, act: Callable[[], Awaitable[dict[str, Any]]]
) -> web.Response:
    """Run an action on a touchpoint once per Idempotency-Key; a repeat replays the answer."""
    user_id = require_user(request)
    tp_id = request.match_info["touchpoint_id"]

    async def produce() -> tuple[int, Any]:
        return 200, _plain(public_touchpoint(await act()))

    key = idempotency_key(request)
    if key is None:
        stored = StoredResponse(*await produce())
    else:
        stored = await request.app[IDEMPOTENCY].run(
            scope=f"touchpoint:{user_id}:{tp_id}:{action}", key=key, body=body, produce=produce
        )
    response = reply_json(stored.body, status=stored.status)
    if isinstance(stored.body, dict) and "etag" in stored.body:
        response.headers["ETag"] = stored.body["etag"]
    if stored.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def post_touchpoint_done(request: web.Request) -> web.Response:
    """Mark a touchpoint done (a touch with its contact is logged, as DONE by SMS)."""
    user_id, tp_id = require_user(request), request.match_info["touchpoint_id"]
    svc = request.app[SERVICE]
    return await _touchpoint_action(
        request,
        "done",
        {},
        lambda: svc.complete_touchpoint(user_id, tp_id, if_match_tags(request)),
    )


async def post_touchpoint_skip(request: web.Request) -> web.Response:
    """Skip a touchpoint (a skipped check-in restarts its cadence, as SKIP by SMS)."""
    user_id, tp_id = require_user(request), request.match_info["touchpoint_id"]
    svc = request.app[SERVICE]
    return await _touchpoint_action(
        request, "skip", {}, lambda: svc.skip_from_app(user_id, tp_id, if_match_tags(request))
    )


async def post_touchpoint_snooze(request: web.Request) -> web.Response:
    """Snooze a touchpoint ``{"for": "2w"}`` (the SMS grammar) or ``{"until": instant}``."""
    user_id, tp_id = require_user(request), request.match_info["touchpoint_id"]
    body = await parse_body(request, SnoozeIn)
    svc = request.app[SERVICE]
    now = svc.now()
    if body.for_ is not None:
        duration = parse_duration(body.for_)
        if duration is None:
            raise ValidationFailed(
                errors=[{"field": "for", "message": "a duration such as 3d, 2w, 1m or tomorrow"}]
            )
        until = now + duration
        field = "for"
    else:
        assert body.until is not None
        until, field = body.until, "until"
    if until <= now:
        raise ValidationFailed(errors=[{"field": field, "message": "must be in the future"}])
    if until > now + MAX_SNOOZE:
        raise ValidationFailed(errors=[{"field": field, "message": "at most a year ahead"}])
    return await _touchpoint_action(
        request,
        "snooze",
        body.model_dump(by_alias=True, mode="json"),
        lambda: svc.snooze_from_app(user_id, tp_id, until, if_match_tags(request)),
    )


async def delete_touchpoint(request: web.Request) -> web.Response:
    """Delete a one-off touchpoint (If-Match honoured); other sources are a 409."""
    user_id = require_user(request)
    await request.app[SERVICE].delete_one_off(
        user_id, request.match_info["touchpoint_id"], if_match_tags(request)
    )
    return web.Response(status=204)


async def post_one_off(request: web.Request) -> web.Response:
    """Add a one-off touchpoint."""
    user_id = require_user(request)
    body = await parse_body(request, OneOffIn)
    svc = request.app[SERVICE]
    doc = await svc.add_one_off(
        user_id, body.contact_id, body.contact_name, body.reason, body.due_at
    )
    return reply_json(public_touchpoint(doc), status=201)


# -- operators (/admin/v1, role operator) ------------------------------------------------------
async def get_tiers(request: web.Request) -> web.Response:
    """Default cadence per tier."""
    require_operator(request)
    return reply_json({"tiers": (await request.app[SERVICE].policy()).tiers})


async def put_tiers(request: web.Request) -> web.Response:
    """Replace the tier defaults."""
    who = require_operator(request)
    body = await parse_body(request, Tiers)
    value = {k: v.model_dump() for k, v in body.tiers.items()}
    svc = request.app[SERVICE]
    await svc.change_policy(who.subject, "tiers", value)
    return reply_json({"tiers": value})


async def get_rules(request: web.Request) -> web.Response:
    """The follow-up rules."""
    require_operator(request)
    policy = await request.app[SERVICE].policy()
    return reply_json({"rules": [r.model_dump() for r in policy.rules]})


async def put_rules(request: web.Request) -> web.Response:
    """Replace the follow-up rules."""
    who = require_operator(request)
    body = await parse_body(request, FollowUpRules)
    value = [r.model_dump() for r in body.rules]
    await request.app[SERVICE].change_policy(who.subject, "rules", value)
    return reply_json({"rules": value})


async def get_window(request: web.Request) -> web.Response:
    """Send-window and quiet-hour defaults."""
    require_operator(request)
    policy = await request.app[SERVICE].policy()
    return reply_json({**policy.window.model_dump(), "max_segments": policy.max_segments})


async def put_window(request: web.Request) -> web.Response:
    """Replace the send-window defaults (every user's next digest is rescheduled)."""
    who = require_operator(request)
    body = await parse_body(request, WindowDefaults)
    value = body.model_dump()
    await request.app[SERVICE].change_policy(who.subject, "window", value)
    return reply_json(value)


async def get_jobs(request: web.Request) -> web.Response:
    """Stored job intervals and what this replica's scheduler runs now."""
    require_operator(request)
    runner = request.app[JOBS]
    stored = await request.app[SERVICE].job_timings()
    return reply_json({"timings": stored, "running": runner.intervals(), "runs": runner.runs})


async def put_jobs(request: web.Request) -> web.Response:
    """Change job intervals; applied at once here, and by other replicas within seconds."""
    who = require_operator(request)
    body = await parse_body(request, JobTimings)
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    stored = await request.app[SERVICE].change_job_timings(who.subject, changes)
    runner = request.app[JOBS]
    runner.apply(stored)
    return reply_json({"timings": stored, "running": runner.intervals()})


async def put_pause(request: web.Request) -> web.Response:
    """Pause or resume all nudges."""
    who = require_operator(request)
    body = await parse_body(request, GlobalPause)
    return reply_json(
        await request.app[SERVICE].set_global_pause(who.subject, body.paused, body.reason)
    )


async def put_user_pause(request: web.Request) -> web.Response:
    """Pause one user until a time, or resume them."""
    who = require_operator(request)
    body = await parse_body(request, UserPause)
    svc = request.app[SERVICE]
    return reply_json(await svc.set_user_pause(who.subject, _user_id(request), body.until))


async def get_user_schedule(request: web.Request) -> web.Response:
    """A user's preferences, next digest and touchpoints with their history."""
    require_operator(request)
    return reply_json(await request.app[SERVICE].schedule(_user_id(request)))


async def get_nudges(request: web.Request) -> web.Response:
    """Recent digests and their dispatch state; ``status=failed`` lists failures."""
    require_operator(request)
    query = parse_query(request, ListQuery)
    claims = await request.app[SERVICE].repo.list_claims(query.user_id, query.status, query.limit)
    items = [
        {
            "id": c["_id"],
            "user_id": c["user_id"],
            "window": c.get("window"),
            "state": c.get("state"),
            "items": len(c.get("items", [])),
            "segments": c.get("segments"),
            "attempts": c.get("attempts", 0),
            "message_id": c.get("message_id"),
            "message_status": c.get("message_status"),
            "error": c.get("error"),
            "created_at": c.get("created_at"),
            "updated_at": c.get("updated_at"),
        }
        for c in claims
    ]
    return reply_json({"items": items})


async def get_dry_run(request: web.Request) -> web.Response:
    """What would be sent to whom in the next days, without sending."""
    require_operator(request)
    query = parse_query(request, DryRunQuery)
    return reply_json(await request.app[SERVICE].dry_run(query.days, query.user_id, query.limit))


async def get_audit(request: web.Request) -> web.Response:
    """Every operator change: who, when, before and after."""
    require_operator(request)
    query = parse_query(request, ListQuery)
    entries = await request.app[SERVICE].repo.list_audit(query.limit)
    for entry in entries:
        entry["id"] = str(entry.pop("_id"))
    return reply_json({"items": entries})
