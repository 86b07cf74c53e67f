"""URL map of the reminders service."""

from __future__ import annotations

from aiohttp import web

from services.reminders import handlers as h
from services.reminders.openapi import openapi_json


def setup_routes(app: web.Application) -> None:
    """Mount the internal, user and operator endpoints."""
    r = app.router
    r.add_get("/openapi.json", openapi_json)
    r.add_post("/internal/v1/replies", h.post_reply)
    r.add_delete("/internal/v1/users/{user_id}", h.delete_user)
    r.add_get("/internal/v1/users/{user_id}/export", h.export_user)

    r.add_get("/v1/preferences", h.get_preferences)
    r.add_put("/v1/preferences", h.put_preferences)
    r.add_get("/v1/touchpoints", h.get_upcoming)
    r.add_post("/v1/touchpoints", h.post_one_off)
    r.add_post("/v1/touchpoints/{touchpoint_id}:done", h.post_touchpoint_done)
    r.add_post("/v1/touchpoints/{touchpoint_id}:snooze", h.post_touchpoint_snooze)
    r.add_post("/v1/touchpoints/{touchpoint_id}:skip", h.post_touchpoint_skip)
    r.add_delete("/v1/touchpoints/{touchpoint_id}", h.delete_touchpoint)

    r.add_get("/admin/v1/tiers", h.get_tiers)
    r.add_put("/admin/v1/tiers", h.put_tiers)
    r.add_get("/admin/v1/follow-up-rules", h.get_rules)
    r.add_put("/admin/v1/follow-up-rules", h.put_rules)
    r.add_get("/admin/v1/send-window", h.get_window)
    r.add_put("/admin/v1/send-window", h.put_window)
    r.add_get("/admin/v1/jobs", h.get_jobs)
    r.add_put("/admin/v1/jobs", h.put_jobs)
    r.add_put("/admin/v1/pause", h.put_pause)
    r.add_put("/admin/v1/users/{user_id}/pause", h.put_user_pause)
    r.add_get("/admin/v1/users/{user_id}/schedule", h.get_user_schedule)
    r.add_get("/admin/v1/nudges", h.get_nudges)
    r.add_get("/admin/v1/dry-run", h.get_dry_run)
    r.add_get("/admin/v1/audit", h.get_audit)
