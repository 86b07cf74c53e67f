"""Operator policy as stored in MongoDB: tier defaults, follow-up rules, window defaults, pause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.reminders.models import (
    DEFAULT_RULES,
    DEFAULT_TIERS,
    FollowUpRule,
    WindowDefaults,
)
from services.reminders.scheduling import Window


@dataclass(frozen=True, slots=True)
class Policy:
    """The operator's current policy, read once per job run or request."""

    tiers: dict[str, dict[str, float]]
    rules: tuple[FollowUpRule, ...]
    window: WindowDefaults
    paused_all: bool
    max_segments: int

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None, default_segments: int) -> Policy:
        """Build from the stored document (missing parts take the defaults)."""
        doc = doc or {}
        window = WindowDefaults.model_validate(doc.get("window") or {})
        return cls(
            tiers=doc.get("tiers") or DEFAULT_TIERS,
            rules=tuple(FollowUpRule.model_validate(r) for r in doc.get("rules", DEFAULT_RULES)),
            window=window,
            paused_all=bool(doc.get("paused_all", False)),
            max_segments=window.max_segments or default_segments,
        )

    def cadence_days(
        self, tier: str | None, user_tiers: dict[str, float] | None
    ) -> tuple[float, float]:
        """Ideal and maximum days for a tier, with the user's own override of the ideal."""
        name = (
            tier if tier in self.tiers else ("B" if "B" in self.tiers else next(iter(self.tiers)))
        )
        base = self.tiers[name]
        ideal, maximum = float(base["ideal_days"]), float(base["max_days"])
        if user_tiers and name in user_tiers:
            ratio = maximum / ideal if ideal else 2.0
            ideal = float(user_tiers[name])
            maximum = ideal * ratio
        return ideal, maximum

    def window_for(self, user: dict[str, Any]) -> Window:
        """The send window of a user: their preferences over the operator defaults."""
        prefs = user.get("prefs") or {}
        days = prefs.get("days") or self.window.days
        return Window(
            time_zone=user.get("time_zone") or "UTC",
            digest_time=prefs.get("digest_time") or self.window.digest_time,
            days=tuple(days),
            quiet_start=prefs.get("quiet_start") or self.window.quiet_start,
            quiet_end=prefs.get("quiet_end") or self.window.quiet_end,
        )

    def daily_budget(self, user: dict[str, Any]) -> int:
        """How many items a user's digest may carry."""
        prefs = user.get("prefs") or {}
        return int(prefs.get("daily_budget") or self.window.daily_budget)
