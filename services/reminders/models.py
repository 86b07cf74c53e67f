"""Reminders data shapes: policy defaults, API inputs and outputs (validated at the boundary)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.reminders.scheduling import MAX_CADENCE_DAYS, MIN_CADENCE_DAYS, valid_zone
from shared.clock import Instant

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
OPEN_STATES = ("scheduled", "nudged", "snoozed")
TouchpointState = Literal["scheduled", "nudged", "done", "snoozed", "skipped", "cancelled"]
JOB_NAMES = ("sync", "sweep", "retry", "reap", "reconcile")


class TierPolicy(BaseModel):
    """Ideal and maximum interval of one tier, in days."""

    model_config = ConfigDict(extra="forbid")

    ideal_days: float = Field(ge=MIN_CADENCE_DAYS, le=MAX_CADENCE_DAYS)
    max_days: float = Field(ge=MIN_CADENCE_DAYS, le=MAX_CADENCE_DAYS)


DEFAULT_TIERS: dict[str, dict[str, float]] = {
    "A": {"ideal_days": 14, "max_days": 28},
    "B": {"ideal_days": 30, "max_days": 60},
    "C": {"ideal_days": 90, "max_days": 180},
}


class Tiers(BaseModel):
    """Default cadence per tier (operator-editable)."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, TierPolicy]

    @field_validator("tiers")
    @classmethod
    def _names(cls, value: dict[str, TierPolicy]) -> dict[str, TierPolicy]:
        for name, policy in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", name):
                raise ValueError(f"invalid tier name {name!r}")
            if policy.max_days < policy.ideal_days:
                raise ValueError(f"tier {name}: max_days must be >= ideal_days")
        if not value:
            raise ValueError("at least one tier is required")
        return value


class FollowUpRule(BaseModel):
    """A follow-up rule: when ``trigger`` happens (and ``match`` holds), a touchpoint is due."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    trigger: Literal["interaction", "referral", "contact_created"]
    kinds: list[str] = Field(default_factory=list, max_length=20)
    direction: Literal["given", "received"] | None = None
    needs_next_action: bool = False
    delay_hours: float = Field(ge=0, le=24 * 365)
    window_hours: float = Field(default=48, gt=0, le=24 * 365)
    label: str = Field(min_length=1, max_length=80)
    enabled: bool = True


class FollowUpRules(BaseModel):
    """The full list of follow-up rules."""

    model_config = ConfigDict(extra="forbid")

    rules: list[FollowUpRule] = Field(max_length=50)

    @field_validator("rules")
    @classmethod
    def _unique(cls, value: list[FollowUpRule]) -> list[FollowUpRule]:
        ids = [rule.id for rule in value]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return value


DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "id": "after-121",
        "trigger": "interaction",
        "kinds": ["one_to_one", "coffee", "meeting"],
        "delay_hours": 24,
        "window_hours": 48,
        "label": "follow up after your 1-2-1",
    },
    {
        "id": "agreed-action",
        "trigger": "interaction",
        "needs_next_action": True,
        "delay_hours": 24 * 7,
        "window_hours": 72,
        "label": "check on what you agreed",
    },
    {
        "id": "thank-referral",
        "trigger": "referral",
        "direction": "received",
        "delay_hours": 0,
        "window_hours": 24,
        "label": "thank them for the referral",
    },
    {
        "id": "referral-48h",
        "trigger": "referral",
        "direction": "given",
        "delay_hours": 48,
        "window_hours": 48,
        "label": "check how your referral went",
    },
    {
        "id": "referral-14d",
        "trigger": "referral",
        "direction": "given",
        "delay_hours": 24 * 14,
        "window_hours": 72,
        "label": "check on your referral (2 weeks)",
    },
    {
        "id": "new-contact",
        "trigger": "contact_created",
        "delay_hours": 72,
        "window_hours": 96,
        "label": "first touch with a new contact",
    },
]


class WindowDefaults(BaseModel):
    """Send-window and quiet-hour defaults for users who have not set their own."""

    model_config = ConfigDict(extra="forbid")

    digest_time: str = Field(default="09:00", pattern=HHMM)
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], min_length=1)
    quiet_start: str = Field(default="21:00", pattern=HHMM)
    quiet_end: str = Field(default="08:00", pattern=HHMM)
    daily_budget: int = Field(default=5, ge=1, le=20)
    max_segments: int | None = Field(default=None, ge=1, le=10)
    # A digest that would carry a single reconnect or follow-up with days to spare waits a
    # window for company (one SMS for one item is the costliest kind), one window at a time.
    hold_lone: bool = True

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(day < 0 or day > 6 for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))


class Preferences(BaseModel):
    """A user's own nudge preferences; unset fields follow the operator defaults."""

    model_config = ConfigDict(extra="forbid")

    digest_time: str | None = Field(default=None, pattern=HHMM)
    days: list[int] | None = Field(default=None, min_length=1)
    quiet_start: str | None = Field(default=None, pattern=HHMM)
    quiet_end: str | None = Field(default=None, pattern=HHMM)
    daily_budget: int | None = Field(default=None, ge=1, le=20)
    tier_days: dict[str, float] | None = None
    time_zone: str | None = None

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(day < 0 or day > 6 for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value)) if value is not None else None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not valid_zone(value):
            raise ValueError("unknown IANA time zone")
        return value

    @field_validator("tier_days")
    @classmethod
    def _tier_days(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            for name, days in value.items():
                in_range = MIN_CADENCE_DAYS <= days <= MAX_CADENCE_DAYS
                if not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", name) or not in_range:
                    raise ValueError(f"invalid tier override {name!r}")
        return value


class JobTimings(BaseModel):
    """Interval of each system job, in seconds."""

    model_config = ConfigDict(extra="forbid")

    sync: float | None = Field(default=None, ge=0.2, le=86_400)
    sweep: float | None = Field(default=None, ge=0.2, le=86_400)
    retry: float | None = Field(default=None, ge=0.2, le=86_400)
    reap: float | None = Field(default=None, ge=0.2, le=86_400)
    reconcile: float | None = Field(default=None, ge=1, le=7 * 86_400)


class GlobalPause(BaseModel):
    """Pause or resume every nudge."""

    model_config = ConfigDict(extra="forbid")

    paused: bool
    reason: str | None = Field(default=None, max_length=200)


class UserPause(BaseModel):
    """Pause one user until a time (``null`` resumes)."""

    model_config = ConfigDict(extra="forbid")

    until: Instant | None


class ReplyIn(BaseModel):
    """An inbound SMS of a known user, handed over by the notifier."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=64)
    from_: str = Field(alias="from", min_length=3, max_length=20)
    text: str = Field(max_length=1600)
    message_sid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class OneOffIn(BaseModel):
    """A one-off touchpoint the user adds."""

    model_config = ConfigDict(extra="forbid")

    contact_id: str | None = Field(default=None, max_length=64)
    contact_name: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=80)
    due_at: Instant


class ListQuery(BaseModel):
    """Common query of admin listings."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=20)
    limit: int = Field(default=50, ge=1, le=500)


class DryRunQuery(BaseModel):
    """What would be sent in the next ``days`` days."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=7, ge=1, le=14)
    user_id: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=200, ge=1, le=5000)
