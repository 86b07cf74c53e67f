"""Reminders data shapes: policy defaults, API inputs and outputs (validated at the boundary)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.reminders.scheduling import MAX_CADENCE_DAYS, MIN_CADENCE_DAYS, valid_zone
from shared.clock import Instant

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
OPEN_STATES = ("scheduled", "nudged", "snoozed")
TouchpointState = Literal[
    "scheduled", "nudged", "done", "snoozed", "skipped", "cancelled", "expired"
]
ReferralStatus = Literal["open", "contacted", "meeting", "won", "lost"]
# Interaction kinds of the contacts service that are a touch (a note is not).
TOUCH_KINDS = ("one_to_one", "coffee", "call", "meeting", "event", "message", "email")
# The most digests any due item waits for (see docs/reminders.md, "Bounded wait").
MAX_WAIT_DIGESTS = 3
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
    """A follow-up rule: when ``trigger`` happens (and ``match`` holds), a touchpoint is due.

    Its lifecycle is data too: which later interactions with the same contact
    (``closed_by_kinds``) or which referral statuses (``closed_by_status``) mean its purpose is
    met, and how long after it falls due it expires unanswered (``expire_hours``) instead of
    escalating for ever. A referral rule with ``on_status`` starts when the referral reaches
    that status (a won referral given to you: thank them for the closed business) instead of
    when it is recorded.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    trigger: Literal["interaction", "referral", "contact_created"]
    kinds: list[str] = Field(default_factory=list, max_length=20)
    direction: Literal["given", "received"] | None = None
    on_status: ReferralStatus | None = None
    needs_next_action: bool = False
    delay_hours: float = Field(ge=0, le=24 * 365)
    window_hours: float = Field(default=48, gt=0, le=24 * 365)
    label: str = Field(min_length=1, max_length=80)
    enabled: bool = True
    # None: the trigger's default (see ``closing_kinds`` and ``closing_statuses``).
    closed_by_kinds: list[str] | None = Field(default=None, max_length=20)
    closed_by_status: list[ReferralStatus] | None = Field(default=None, max_length=5)
    # None: three of its windows after it falls due.
    expire_hours: float | None = Field(default=None, gt=0, le=24 * 365)

    @field_validator("closed_by_kinds")
    @classmethod
    def _kinds(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(kind not in TOUCH_KINDS for kind in value):
            raise ValueError(f"kinds are among {', '.join(TOUCH_KINDS)}")
        return value

    def closing_kinds(self) -> frozenset[str]:
        """Kinds of a later interaction with the contact that meet this follow-up's purpose.

        By default any touch closes a follow-up of an interaction or a new contact (the
        contact was followed up); nothing closes a referral's follow-up but its status.
        """
        if self.closed_by_kinds is not None:
            return frozenset(self.closed_by_kinds)
        return frozenset() if self.trigger == "referral" else frozenset(TOUCH_KINDS)

    def closing_statuses(self) -> frozenset[str]:
        """Referral statuses that meet this follow-up's purpose (won/lost for a given one)."""
        if self.closed_by_status is not None:
            return frozenset(self.closed_by_status)
        if self.trigger == "referral" and self.direction == "given" and self.on_status is None:
            return frozenset({"won", "lost"})
        return frozenset()

    def lifetime_hours(self) -> float:
        """Hours after it falls due that an unanswered follow-up expires."""
        return self.expire_hours if self.expire_hours is not None else 3 * self.window_hours


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


# Conversations that check on what was agreed at a 1-2-1 (a message or an email may not).
CONVERSATION_KINDS = ["one_to_one", "coffee", "meeting", "call"]
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "id": "after-121",
        "trigger": "interaction",
        "kinds": ["one_to_one", "coffee", "meeting"],
        "delay_hours": 24,
        "window_hours": 48,
        "label": "follow up after your 1-2-1",
        # Any later touch with them is the follow-up.
        "closed_by_kinds": ["one_to_one", "coffee", "meeting", "call", "message", "email"],
        "expire_hours": 96,
    },
    {
        "id": "agreed-action",
        "trigger": "interaction",
        "needs_next_action": True,
        "delay_hours": 24 * 7,
        "window_hours": 72,
        "label": "check on what you agreed",
        "closed_by_kinds": CONVERSATION_KINDS,
        "expire_hours": 24 * 7,
    },
    {
        "id": "thank-referral",
        "trigger": "referral",
        "direction": "received",
        "delay_hours": 0,
        "window_hours": 24,
        "label": "thank them for the referral",
        "expire_hours": 24 * 7,
    },
    {
        "id": "referral-48h",
        "trigger": "referral",
        "direction": "given",
        "delay_hours": 48,
        "window_hours": 48,
        "label": "check how your referral went",
        "closed_by_status": ["won", "lost"],
        "expire_hours": 24 * 7,
    },
    {
        "id": "referral-14d",
        "trigger": "referral",
        "direction": "given",
        "delay_hours": 24 * 14,
        "window_hours": 72,
        "label": "check on your referral (2 weeks)",
        "closed_by_status": ["won", "lost"],
        "expire_hours": 24 * 14,
    },
    {
        "id": "thank-business",
        "trigger": "referral",
        "direction": "received",
        "on_status": "won",
        "delay_hours": 0,
        "window_hours": 48,
        "label": "thank them for the closed business",
        "expire_hours": 24 * 7,
    },
    {
        "id": "new-contact",
        "trigger": "contact_created",
        "delay_hours": 72,
        "window_hours": 96,
        "label": "first touch with a new contact",
        "expire_hours": 24 * 14,
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

    contact_id: str | None = Field(default=None, min_length=1, max_length=64)
    # Optional with a contact_id: the contact's own name (and company) are used then.
    contact_name: str | None = Field(default=None, min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=80)
    due_at: Instant

    @model_validator(mode="after")
    def _someone(self) -> OneOffIn:
        if self.contact_id is None and self.contact_name is None:
            raise ValueError("give contact_id (one of your contacts) or contact_name (anyone)")
        return self


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


TouchpointView = Literal["due", "upcoming"]
MAX_SNOOZE = timedelta(days=366)


class TouchpointQuery(BaseModel):
    """Query of the user's touchpoint list: due now, upcoming, or both; by contact; paged."""

    model_config = ConfigDict(extra="forbid")

    view: TouchpointView | None = None
    contact_id: str | None = Field(default=None, min_length=1, max_length=64)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=500)


class SnoozeIn(BaseModel):
    """Snooze a touchpoint for a duration (the SMS grammar: ``2w``, ``3d``, ``tomorrow``) or
    until an instant; at most a year ahead."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    for_: str | None = Field(default=None, alias="for", min_length=1, max_length=20)
    until: Instant | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeIn:
        if (self.for_ is None) == (self.until is None):
            raise ValueError('give either "for" (a duration such as 2w) or "until" (an instant)')
        return self
