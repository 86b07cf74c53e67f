"""Domain rules of the reminders service: touchpoints, digests, dispatch, recovery, operators."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from services.reminders.digest import Digest, DigestItem, compose, segment_counter
from services.reminders.gateways import (
    ContactsGateway,
    NotifierGateway,
    PermanentDispatchError,
)
from services.reminders.models import (
    DEFAULT_RULES,
    DEFAULT_TIERS,
    JOB_NAMES,
    MAX_WAIT_DIGESTS,
    OPEN_STATES,
    FollowUpRule,
)
from services.reminders.policy import Policy
from services.reminders.repository import JOBS_ID, POLICY_ID, RemindersRepository
from services.reminders.scheduling import (
    cadence_due,
    local_instant,
    next_birthday,
    next_window,
    zone,
)
from services.reminders.settings import RemindersSettings
from shared.clock import Clock, parse_instant
from shared.errors import Conflict, NotFound, PreconditionFailed, UpstreamError, ValidationFailed
from shared.web.etag import make_etag

log = logging.getLogger(__name__)

# Notifier message states: still on the way, and ended without reaching the phone.
PENDING_DELIVERY = ["queued", "sending", "sent"]
FAILED_DELIVERY = frozenset({"failed", "undelivered", "expired", "suppressed"})
DELIVERY_FOLLOW_DAYS = 2

Doc = dict[str, Any]


def ms(value: datetime) -> datetime:
    """Truncate to milliseconds, the precision MongoDB stores."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000).astimezone(UTC)


def instant(value: Any) -> datetime | None:
    """Parse an ISO instant from another service (or pass a datetime through)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    try:
        return ms(parse_instant(str(value)))
    except ValueError:
        # Older records may hold a time out of the accepted range (or garbage): it counts as
        # absent, so one bad record never stops a job that serves every user.
        log.warning("ignoring a time out of range or unreadable: %.40r", value)
        return None


def _not_sent(message: Doc) -> str:
    """Why a digest's message did not reach the phone, as operators see it."""
    code = message.get("error_code")
    return f"notifier reports {message.get('status')}" + (f" (error {code})" if code else "")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Users a sweep holds between its two phases; a larger sweep records every this many, so its
# memory stays bounded whatever the number of due users.
SWEEP_HOLD = 5000
# Users read per page by walks over every user (window change, tier change, dry run).
USER_PAGE = 500


@dataclass(slots=True)
class Finish:
    """What is left to do for one swept user once every dispatch of the sweep is out.

    Only what recording needs is kept (not the digest body or the notifier's whole answer).
    """

    user_id: str
    send_at: datetime
    following: datetime
    claim: Doc | None = None
    message: Doc | None = None

    def keep(self, claim: Doc, message: Doc | None) -> None:
        """Hold the parts of a dispatched claim and message that :meth:`record` reads."""
        self.claim = {k: claim[k] for k in ("_id", "user_id", "items", "created_at")}
        self.claim["left_out_ids"] = claim.get("left_out_ids") or []
        if message is not None:
            self.message = {"id": message.get("id"), "status": message.get("status")}


class RemindersService:
    """Everything reminders decides; handlers, jobs and the feed consumer call into it."""

    def __init__(
        self,
        repo: RemindersRepository,
        contacts: ContactsGateway,
        notifier: NotifierGateway,
        clock: Clock,
        settings: RemindersSettings,
        replica: str | None = None,
    ) -> None:
        self.repo = repo
        self.contacts = contacts
        self.notifier = notifier
        self.clock = clock
        self.settings = settings
        self.replica = replica or uuid.uuid4().hex[:12]
        self.counter = segment_counter()

    def now(self) -> datetime:
        """The app clock, at MongoDB precision."""
        return ms(self.clock.now())

    # -- policy ------------------------------------------------------------------------------
    async def init_defaults(self) -> None:
        """Store the default policy and job timings on first start."""
        await self.repo.init_config(
            POLICY_ID,
            {"tiers": DEFAULT_TIERS, "rules": DEFAULT_RULES, "window": {}, "paused_all": False},
        )
        await self.repo.init_config(JOBS_ID, {"timings": self.default_timings()})

    def default_timings(self) -> dict[str, float]:
        """Job intervals from settings."""
        s = self.settings
        return {
            "sync": s.sync_interval_s,
            "sweep": s.sweep_interval_s,
            "retry": s.retry_interval_s,
            "reap": s.reap_interval_s,
            "reconcile": s.reconcile_interval_s,
        }

    async def policy(self) -> Policy:
        """The current operator policy."""
        doc = await self.repo.get_config(POLICY_ID)
        return Policy.from_doc(doc, self.settings.digest_max_segments)

    async def job_timings(self) -> dict[str, float]:
        """Current job intervals (stored, falling back to settings)."""
        doc = await self.repo.get_config(JOBS_ID) or {}
        stored = doc.get("timings") or {}
        return {
            name: float(stored.get(name, value)) for name, value in self.default_timings().items()
        }

    async def change_policy(self, actor: str, part: str, value: Any) -> Doc:
        """Replace one part of the policy, with an audit entry (who, when, before, after)."""
        now = self.now()
        doc = await self.repo.get_config(POLICY_ID) or {}
        before = doc.get(part)
        await self.repo.set_config(POLICY_ID, {part: value})
        await self.repo.add_audit(
            {
                "actor": actor,
                "at": now,
                "action": f"policy.{part}",
                "before": before,
                "after": value,
            }
        )
        if part == "window":
            await self.reschedule_all()
        if part == "tiers":
            await self.recompute_all()
        return {part: value}

    async def recompute_all(self) -> None:
        """Recompute every mirrored contact's cadence (after a tier default changes)."""
        policy = await self.policy()
        async for users in self.repo.user_pages(USER_PAGE):
            for user in users:
                for contact in await self.repo.user_contacts(user["_id"]):
                    await self.recompute_contact(user, contact, policy)

    async def change_job_timings(self, actor: str, changes: dict[str, float]) -> dict[str, float]:
        """Store new job intervals (each replica applies them live)."""
        before = await self.job_timings()
        after = {**before, **{k: v for k, v in changes.items() if k in JOB_NAMES}}
        await self.repo.set_config(JOBS_ID, {"timings": after, "changed_at": self.now()})
        await self.repo.add_audit(
            {
                "actor": actor,
                "at": self.now(),
                "action": "jobs.timings",
                "before": before,
                "after": after,
            }
        )
        return after

    async def set_global_pause(self, actor: str, paused: bool, reason: str | None) -> Doc:
        """Stop or restart every nudge."""
        doc = await self.repo.get_config(POLICY_ID) or {}
        before = {"paused_all": bool(doc.get("paused_all")), "reason": doc.get("paused_reason")}
        after = {"paused_all": paused, "reason": reason}
        await self.repo.set_config(POLICY_ID, {"paused_all": paused, "paused_reason": reason})
        await self.repo.add_audit(
            {
                "actor": actor,
                "at": self.now(),
                "action": "pause.all",
                "before": before,
                "after": after,
            }
        )
        if not paused:
            await self.reschedule_all()
        return after

    async def set_user_pause(self, actor: str, user_id: str, until: datetime | None) -> Doc:
        """Pause one user until a time, or resume them."""
        user = await self.ensure_user(user_id)
        before = user.get("paused_until")
        if until is None:
            await self.repo.unset_user(user_id, "paused_until")
        else:
            await self.repo.update_user(user_id, {"paused_until": ms(until)})
        await self.repo.add_audit(
            {
                "actor": actor,
                "at": self.now(),
                "action": "pause.user",
                "target": user_id,
                "before": {"paused_until": before},
                "after": {"paused_until": until},
            }
        )
        return {"user_id": user_id, "paused_until": until}

    async def reschedule_all(self) -> None:
        """Recompute every user's next digest time (after a window change or a resume)."""
        policy = await self.policy()
        now = self.now()
        async for users in self.repo.user_pages(USER_PAGE):
            await self.repo.bulk_next_digest(
                [(u["_id"], next_window(now, policy.window_for(u), inclusive=True)) for u in users]
            )

    # -- users -------------------------------------------------------------------------------
    async def ensure_user(self, user_id: str) -> Doc:
        """Our copy of a user, fetched from contacts when the feed has not brought it yet."""
        user = await self.repo.get_user(user_id)
        if user is not None:
            return user
        profile = await self.contacts.user(user_id)
        if profile is None:
            raise NotFound("unknown user")
        return await self.apply_user(profile)

    async def apply_user(self, entity: Doc) -> Doc:
        """A user was created or changed in contacts."""
        user_id = str(entity["id"])
        existing = await self.repo.get_user(user_id)
        fields: Doc = {
            "phone": entity.get("phone"),
            "name": entity.get("name"),
            "time_zone": entity.get("time_zone") or "UTC",
            "role": entity.get("role"),
        }
        now = self.now()
        user = await self.repo.upsert_user(user_id, fields, {"prefs": {}, "created_at": now})
        if (
            existing is None
            or existing.get("time_zone") != user.get("time_zone")
            or not user.get("next_digest_at")
        ):
            policy = await self.policy()
            when = next_window(now, policy.window_for(user), inclusive=True)
            await self.repo.update_user(user_id, {"next_digest_at": when})
            user["next_digest_at"] = when
        return user

    async def update_preferences(self, user_id: str, prefs: Doc) -> Doc:
        """Change a user's own nudge preferences and reschedule their next digest."""
        user = await self.ensure_user(user_id)
        merged = {**(user.get("prefs") or {}), **{k: v for k, v in prefs.items() if v is not None}}
        fields: Doc = {"prefs": {k: v for k, v in merged.items() if k != "time_zone"}}
        if prefs.get("time_zone"):
            fields["time_zone"] = prefs["time_zone"]
        await self.repo.update_user(user_id, fields)
        user.update(fields)
        policy = await self.policy()
        when = next_window(self.now(), policy.window_for(user), inclusive=True)
        await self.repo.update_user(user_id, {"next_digest_at": when})
        if "tier_days" in prefs and prefs["tier_days"] is not None:
            for contact in await self.repo.user_contacts(user_id):
                await self.recompute_contact(user, contact, policy)
        return await self.preferences(user_id)

    async def preferences(self, user_id: str) -> Doc:
        """A user's effective preferences and next digest time."""
        user = await self.ensure_user(user_id)
        policy = await self.policy()
        window = policy.window_for(user)
        return {
            "time_zone": window.time_zone,
            "digest_time": window.digest_time,
            "days": list(window.days),
            "quiet_start": window.quiet_start,
            "quiet_end": window.quiet_end,
            "daily_budget": policy.daily_budget(user),
            "tier_days": (user.get("prefs") or {}).get("tier_days") or {},
            "paused_until": user.get("paused_until"),
            "next_digest_at": user.get("next_digest_at"),
            "own": user.get("prefs") or {},
        }

    async def delete_user(self, user_id: str) -> None:
        """Account deletion: forget schedules and history."""
        await self.repo.delete_user(user_id)

    # -- touchpoints from contacts' data -------------------------------------------------------
    async def apply_contact(self, entity: Doc, *, policy: Policy | None = None) -> None:
        """A contact was created or changed: refresh the mirror and its touchpoints."""
        user_id = str(entity["user_id"])
        contact_id = str(entity["id"])
        policy = policy or await self.policy()
        user = await self.repo.get_user(user_id)
        if user is None:
            try:
                user = await self.ensure_user(user_id)
            except Exception:
                log.warning("contact change for an unknown user; waiting for reconciliation")
                return
        previous = await self.repo.get_contact(user_id, contact_id)
        fields: Doc = {
            "name": entity.get("name") or "?",
            "company": entity.get("company"),
            "tier": entity.get("tier"),
            "cadence_days": entity.get("cadence_days"),
            "birthday": entity.get("birthday"),
            "last_interaction_at": instant(entity.get("last_interaction_at")),
            "created_at": instant(entity.get("created_at")) or self.now(),
            "deleted": bool(entity.get("deleted")),
        }
        contact = await self.repo.put_contact(user_id, contact_id, fields)
        await self.recompute_contact(user, contact, policy)
        if previous is None and not contact["deleted"]:
            await self._new_contact_rules(user, contact, policy)

    async def delete_contact(self, user_id: str, contact_id: str) -> None:
        """A contact was deleted: cancel what was scheduled for it."""
        contact = await self.repo.get_contact(user_id, contact_id)
        if contact is not None:
            contact = await self.repo.put_contact(user_id, contact_id, {"deleted": True})
        now = self.now()
        for tp in await self.repo.open_touchpoints(user_id, contact_id):
            await self.repo.update_touchpoint(
                tp["_id"],
                {"state": "cancelled", "updated_at": now},
                {"at": now, "state": "cancelled", "why": "contact deleted"},
            )

    async def recompute_contact(self, user: Doc, contact: Doc, policy: Policy) -> None:
        """Bring a contact's cadence and birthday touchpoints in line with its current state."""
        user_id, contact_id = contact["user_id"], contact["contact_id"]
        if contact.get("deleted"):
            await self.delete_contact(user_id, contact_id)
            return
        now = self.now()
        prefs = user.get("prefs") or {}
        if contact.get("cadence_days"):
            ideal = float(contact["cadence_days"])
            _, tier_max = policy.cadence_days(contact.get("tier"), prefs.get("tier_days"))
            tier_ideal, _ = policy.cadence_days(contact.get("tier"), prefs.get("tier_days"))
            maximum = ideal * (tier_max / tier_ideal if tier_ideal else 2.0)
        else:
            ideal, maximum = policy.cadence_days(contact.get("tier"), prefs.get("tier_days"))
        candidates = [
            _aware(v)
            for v in (contact.get("last_interaction_at"), contact.get("skip_base"))
            if v is not None
        ]
        base = ms(max(candidates) if candidates else _aware(contact.get("created_at") or now))
        due, max_at = cadence_due(base, ideal, maximum)
        due, max_at = ms(due), ms(max_at)
        tp_id = f"cad:{user_id}:{contact_id}"
        display = {"contact_name": contact["name"], "company": contact.get("company")}
        existing = await self.repo.get_touchpoint(tp_id)
        if existing is None:
            doc = self._touchpoint(
                tp_id, user_id, contact_id, "cadence", "reconnect", due, max_at, now, display
            )
            doc.update({"base": base, "ideal_days": ideal, "has_touch": bool(candidates)})
            if not await self.repo.insert_touchpoint(doc):
                existing = await self.repo.get_touchpoint(tp_id)
        if existing is not None:
            fields: Doc = {**display, "has_touch": bool(candidates)}
            if _aware(existing.get("base") or now) != base or existing.get("ideal_days") != ideal:
                fields.update(
                    {
                        "base": base,
                        "ideal_days": ideal,
                        "due_at": due,
                        "max_at": max_at,
                        "fire_at": due,
                        "state": "scheduled",
                        "updated_at": now,
                        "waits": 0,
                    }
                )
                await self.repo.update_touchpoint(
                    tp_id, fields, {"at": now, "state": "scheduled", "why": "cadence reset"}
                )
            else:
                await self.repo.update_touchpoint(tp_id, fields)
        await self._birthday(user, contact, now, display)

    async def _birthday(self, user: Doc, contact: Doc, now: datetime, display: Doc) -> None:
        user_id, contact_id = contact["user_id"], contact["contact_id"]
        tz_name = user.get("time_zone") or "UTC"
        day = next_birthday(contact["birthday"], now, tz_name) if contact.get("birthday") else None
        keep = f"bd:{user_id}:{contact_id}:{day.isoformat()}" if day else None
        # The contact's copy names its birthday touchpoint, so the usual case (no birthday, or
        # the same one) costs no query: this runs on every logged touch. Copies written before
        # that field existed are looked up once.
        if "birthday_tp" in contact:
            tracked = contact["birthday_tp"]
            stale = [tracked] if tracked is not None and tracked != keep else []
        else:
            stale = [
                tp["_id"]
                for tp in await self.repo.open_touchpoints(user_id, contact_id)
                if tp.get("source") == "birthday" and tp["_id"] != keep
            ]
        for tp_id in stale:
            tp = await self.repo.get_touchpoint(tp_id)
            if tp is not None and tp.get("state") in OPEN_STATES:
                await self.repo.update_touchpoint(
                    tp_id,
                    {"state": "cancelled", "updated_at": now},
                    {"at": now, "state": "cancelled", "why": "birthday changed"},
                )
        if contact.get("birthday_tp", ...) != keep:
            await self.repo.put_contact(user_id, contact_id, {"birthday_tp": keep})
        if day is None or keep is None:
            return
        due = ms(local_instant(day, time(0, 0), zone(tz_name)))
        # Retired at the end of its day in the user's zone (23 or 25 hours on a DST change).
        ends = ms(local_instant(day + timedelta(days=1), time(0, 0), zone(tz_name)))
        if ends <= now:
            return
        doc = self._touchpoint(
            keep, user_id, contact_id, "birthday", "birthday", due, ends, now, display
        )
        doc["expires_at"] = ends
        await self.repo.insert_touchpoint(doc)

    async def _new_contact_rules(self, user: Doc, contact: Doc, policy: Policy) -> None:
        now = self.now()
        created = _aware(contact.get("created_at") or now)
        for rule in policy.rules:
            if rule.enabled and rule.trigger == "contact_created":
                await self._follow_up(rule, user, contact, created, contact["contact_id"], now)

    async def _follow_up(
        self,
        rule: FollowUpRule,
        user: Doc,
        contact: Doc,
        start: datetime,
        source_id: str,
        now: datetime,
    ) -> None:
        due = ms(start + timedelta(hours=rule.delay_hours))
        max_at = ms(due + timedelta(hours=rule.window_hours))
        expires_at = ms(due + timedelta(hours=max(rule.lifetime_hours(), rule.window_hours)))
        if max_at <= now or expires_at <= now:
            return  # logged too late for this follow-up to matter
        display = {"contact_name": contact.get("name") or "?", "company": contact.get("company")}
        doc = self._touchpoint(
            f"fu:{rule.id}:{source_id}",
            user["_id"],
            contact["contact_id"],
            "followup",
            rule.label,
            due,
            max_at,
            now,
            display,
        )
        doc.update(
            {
                "rule_id": rule.id,
                "source_id": source_id,
                "source_at": ms(start),
                "expires_at": expires_at,
            }
        )
        await self.repo.insert_touchpoint(doc)

    @staticmethod
    def _touchpoint(
        tp_id: str,
        user_id: str,
        contact_id: str | None,
        source: str,
        reason: str,
        due: datetime,
        max_at: datetime,
        now: datetime,
        display: Doc,
    ) -> Doc:
        return {
            "_id": tp_id,
            "user_id": user_id,
            "contact_id": contact_id,
            "source": source,
            "reason": reason,
            "due_at": due,
            "max_at": max_at,
            "fire_at": due,
            "state": "scheduled",
            "nudge_count": 0,
            "history": [{"at": now, "state": "scheduled"}],
            "created_at": now,
            "updated_at": now,
            **display,
        }

    async def _mirror(self, user_id: str, contact_id: str) -> Doc | None:
        contact = await self.repo.get_contact(user_id, contact_id)
        if contact is not None:
            return contact
        entity = await self.contacts.contact(user_id, contact_id)
        if entity is None:
            return None
        await self.apply_contact(entity)
        return await self.repo.get_contact(user_id, contact_id)

    async def apply_interaction(self, entity: Doc, *, policy: Policy | None = None) -> None:
        """An interaction was logged: reset the cadence and start matching follow-ups."""
        user_id, contact_id = str(entity["user_id"]), str(entity["contact_id"])
        policy = policy or await self.policy()
        user = await self.repo.get_user(user_id)
        contact = await self._mirror(user_id, contact_id)
        if user is None or contact is None:
            return
        occurred = (
            instant(entity.get("occurred_at")) or instant(entity.get("created_at")) or self.now()
        )
        last = contact.get("last_interaction_at")
        if entity.get("kind") != "note" and (last is None or _aware(last) < occurred):
            contact = await self.repo.put_contact(
                user_id, contact_id, {"last_interaction_at": occurred}
            )
            await self.recompute_contact(user, contact, policy)
        now = self.now()
        kind = str(entity.get("kind"))
        if kind == "note":
            return
        await self._close_met_follow_ups(
            user_id, contact_id, kind, str(entity["id"]), occurred, policy, now
        )
        for rule in policy.rules:
            if not rule.enabled or rule.trigger != "interaction":
                continue
            if rule.kinds and kind not in rule.kinds:
                continue
            if rule.needs_next_action and not entity.get("next_action"):
                continue
            await self._follow_up(rule, user, contact, occurred, str(entity["id"]), now)

    async def _close_met_follow_ups(
        self,
        user_id: str,
        contact_id: str,
        kind: str,
        entity_id: str,
        occurred: datetime,
        policy: Policy,
        now: datetime,
    ) -> None:
        """Close the contact's open follow-ups whose purpose an interaction of ``kind`` meets.

        A follow-up closes when its rule names ``kind`` among its closing kinds and the
        interaction happened after the one that started it (a backdated entry, or a replay of an
        older one, closes nothing; an interaction never closes its own follow-ups). Any
        interaction is the first touch a new contact was waiting for.
        """
        rules = {rule.id: rule for rule in policy.rules}
        close: list[str] = []
        for tp in await self.repo.open_touchpoints(user_id, contact_id):
            rule = rules.get(str(tp.get("rule_id")))
            if tp.get("source") != "followup" or rule is None or tp.get("source_id") == entity_id:
                continue
            if kind not in rule.closing_kinds():
                continue
            started = tp.get("source_at") or tp.get("created_at")
            if rule.trigger != "contact_created" and started and _aware(started) >= occurred:
                continue
            close.append(tp["_id"])
        if close:
            await self.repo.close_touchpoints(close, "done", f"later {kind} logged", now)

    async def remove_source(
        self, user_id: str, kind: str, entity_id: str, contact_id: str | None
    ) -> None:
        """An interaction or referral was deleted: cancel its follow-ups, refresh the cadence."""
        await self.repo.cancel_by_source(user_id, entity_id, self.now())
        if kind == "interaction" and contact_id:
            entity = await self.contacts.contact(user_id, contact_id)
            if entity is not None:
                await self.apply_contact(entity)

    async def apply_referral(self, entity: Doc, *, policy: Policy | None = None) -> None:
        """A referral was recorded or moved along: start or close the matching follow-ups."""
        user_id, contact_id = str(entity["user_id"]), str(entity["contact_id"])
        policy = policy or await self.policy()
        user = await self.repo.get_user(user_id)
        contact = await self._mirror(user_id, contact_id)
        if user is None or contact is None:
            return
        now = self.now()
        referral_id = str(entity["id"])
        status = str(entity.get("status") or "open")
        reached = instant((entity.get("status_times") or {}).get(status))
        close: list[str] = []
        for rule in policy.rules:
            if not rule.enabled or rule.trigger != "referral":
                continue
            if rule.direction and entity.get("direction") != rule.direction:
                continue
            if status in rule.closing_statuses():
                # Its purpose is met (the referral was won or lost): close it, start nothing.
                close.append(f"fu:{rule.id}:{referral_id}")
            elif rule.on_status is None:
                start = instant(entity.get("created_at")) or now
                await self._follow_up(rule, user, contact, start, referral_id, now)
            elif rule.on_status == status:
                await self._follow_up(rule, user, contact, reached or now, referral_id, now)
        if close:
            await self.repo.close_touchpoints(close, "done", f"referral {status}", now)

    async def apply_change(self, change: Doc, policy: Policy) -> None:
        """Apply one change-feed record (idempotent: replays are harmless)."""
        kind, op = change.get("kind"), change.get("op")
        entity = change.get("entity")
        user_id = str(change.get("user_id") or "")
        if kind == "user":
            if op == "delete" or entity is None:
                await self.repo.delete_user(user_id or str(change.get("entity_id")))
            else:
                await self.apply_user(entity)
        elif kind == "contact":
            if op == "delete" or entity is None or entity.get("deleted"):
                await self.delete_contact(user_id, str(change.get("entity_id")))
            else:
                await self.apply_contact(entity, policy=policy)
        elif kind == "interaction":
            if op == "delete" or entity is None:
                contact_id = (entity or {}).get("contact_id")
                await self.remove_source(
                    user_id, "interaction", str(change.get("entity_id")), contact_id
                )
            else:
                await self.apply_interaction(entity, policy=policy)
        elif kind == "referral":
            if op == "delete" or entity is None:
                await self.remove_source(user_id, "referral", str(change.get("entity_id")), None)
            else:
                await self.apply_referral(entity, policy=policy)

    async def add_one_off(
        self, user_id: str, contact_id: str | None, name: str | None, reason: str, due: datetime
    ) -> Doc:
        """A one-off touchpoint the user adds (about one of their own contacts, or anyone)."""
        user = await self.ensure_user(user_id)
        # Something due is not older than the account (a day of slack for time zones): a date
        # far in the past would only rank first in every digest.
        earliest = _aware(user.get("created_at") or self.now()) - timedelta(days=1)
        if due < earliest:
            raise ValidationFailed(
                errors=[
                    {
                        "field": "due_at",
                        "message": f"must not be before {earliest:%Y-%m-%d}, "
                        "a day before the account was created",
                    }
                ]
            )
        company = None
        if contact_id is not None:
            contact = await self.contacts.contact(user_id, contact_id)
            if contact is None or contact.get("deleted"):
                # The same answer for another user's contact as for one that does not exist.
                raise NotFound("no such contact")
            if name is None:
                name, company = str(contact.get("name") or "?"), contact.get("company")
        now = self.now()
        due = ms(due)
        doc = self._touchpoint(
            f"one:{uuid.uuid4().hex}",
            user_id,
            contact_id,
            "oneoff",
            reason,
            due,
            due + timedelta(days=2),
            now,
            {"contact_name": name, "company": company},
        )
        await self.repo.insert_touchpoint(doc)
        return doc

    # -- acting on one touchpoint: the rules SMS replies and the app's API share --------------
    async def snooze_touchpoint(
        self, tp: Doc, until: datetime, now: datetime, *, version: int | None = None
    ) -> bool:
        """Put a touchpoint off until ``until``; False if ``version`` is no longer current."""
        until = ms(until)
        return await self.repo.update_touchpoint(
            tp["_id"],
            {
                "state": "snoozed",
                "snoozed_until": until,
                "fire_at": until,
                "updated_at": now,
                "waits": 0,
            },
            {"at": now, "state": "snoozed", "until": until},
            version=version,
        )

    async def close_touchpoint(
        self, tp: Doc, state: str, why: str | None, now: datetime, *, version: int | None = None
    ) -> bool:
        """Mark a touchpoint done or skipped; False if ``version`` is no longer current."""
        history: Doc = {"at": now, "state": state}
        if why is not None:
            history["why"] = why
        return await self.repo.update_touchpoint(
            tp["_id"], {"state": state, "updated_at": now}, history, version=version
        )

    async def restart_cadence(self, user: Doc, contact_id: str, now: datetime) -> Doc | None:
        """A skipped check-in starts the next cycle from now, without logging a touch.

        Returns the contact's mirror as it was before (for UNDO), or None without a mirror.
        """
        contact = await self.repo.get_contact(user["_id"], contact_id)
        if contact is None:
            return None
        changed = await self.repo.put_contact(user["_id"], contact_id, {"skip_base": now})
        await self.recompute_contact(user, changed, await self.policy())
        return contact

    async def owned_touchpoint(self, user_id: str, tp_id: str) -> Doc:
        """One of the user's touchpoints; another user's is as unknown as a missing one."""
        tp = await self.repo.get_touchpoint(tp_id)
        if tp is None or tp.get("user_id") != user_id:
            raise NotFound("no such touchpoint")
        return tp

    async def _actionable(
        self, user_id: str, tp_id: str, if_match: frozenset[str] | None, *, open_only: bool = True
    ) -> tuple[Doc, int]:
        tp = await self.owned_touchpoint(user_id, tp_id)
        if if_match is not None and touchpoint_etag(tp) not in if_match:
            raise PreconditionFailed("the touchpoint has changed since it was read; fetch it again")
        if open_only and tp.get("state") not in OPEN_STATES:
            raise Conflict(f"the touchpoint is {tp.get('state')}; only an open one can be acted on")
        return tp, int(tp.get("version", 0))

    @staticmethod
    def _lost_race() -> PreconditionFailed:
        return PreconditionFailed("the touchpoint changed during the update; fetch it again")

    async def complete_touchpoint(
        self, user_id: str, tp_id: str, if_match: frozenset[str] | None
    ) -> Doc:
        """Done from the app: as DONE by SMS, a touch with the contact is logged through contacts
        (the cadence restarts from it and what it meets closes); the item itself is closed."""
        tp, version = await self._actionable(user_id, tp_id, if_match)
        now = self.now()
        contact_id = tp.get("contact_id")
        entry: Doc | None = None
        payload: Doc = {
            "kind": "message",
            "occurred_at": now.isoformat().replace("+00:00", "Z"),
            "source": "app",
        }
        if contact_id:
            key = f"touchpoint:{tp_id}:{version}"
            entry = await self.contacts.log_interaction(user_id, contact_id, payload, key)
        if tp.get("source") != "cadence" and not await self.close_touchpoint(
            tp, "done", "app", now, version=version
        ):
            raise self._lost_race()
        if entry is not None:
            await self.apply_interaction(
                {**payload, **entry, "user_id": user_id, "contact_id": contact_id}
            )
        return await self.owned_touchpoint(user_id, tp_id)

    async def snooze_from_app(
        self, user_id: str, tp_id: str, until: datetime, if_match: frozenset[str] | None
    ) -> Doc:
        """Snooze from the app, until an instant already validated by the caller."""
        tp, version = await self._actionable(user_id, tp_id, if_match)
        if not await self.snooze_touchpoint(tp, until, self.now(), version=version):
            raise self._lost_race()
        return await self.owned_touchpoint(user_id, tp_id)

    async def skip_from_app(self, user_id: str, tp_id: str, if_match: frozenset[str] | None) -> Doc:
        """Skip from the app: as SKIP by SMS, a skipped check-in restarts the cadence from now."""
        tp, version = await self._actionable(user_id, tp_id, if_match)
        now = self.now()
        if not await self.close_touchpoint(tp, "skipped", None, now, version=version):
            raise self._lost_race()
        if tp.get("source") == "cadence" and tp.get("contact_id"):
            await self.restart_cadence(await self.ensure_user(user_id), tp["contact_id"], now)
        return await self.owned_touchpoint(user_id, tp_id)

    async def delete_one_off(
        self, user_id: str, tp_id: str, if_match: frozenset[str] | None
    ) -> None:
        """Remove a one-off the user added; other touchpoints follow their sources."""
        tp, version = await self._actionable(user_id, tp_id, if_match, open_only=False)
        if tp.get("source") != "oneoff":
            raise Conflict(
                f"only one-off touchpoints can be deleted; this one comes from {tp.get('source')}"
                " (skip it instead)"
            )
        if not await self.repo.delete_touchpoint(tp_id, version):
            raise self._lost_race()

    async def touchpoint_page(
        self,
        user_id: str,
        *,
        view: str | None,
        contact_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Doc]:
        """One page of the user's open touchpoints (due now, upcoming, or both)."""
        return await self.repo.touchpoint_page(
            user_id, view=view, now=self.now(), contact_id=contact_id, after=after, limit=limit
        )

    async def upcoming(self, user_id: str) -> Doc:
        """A user's open touchpoints, soonest first, and their next digest time."""
        user = await self.ensure_user(user_id)
        tps = await self.repo.open_touchpoints(user_id)
        return {
            "next_digest_at": user.get("next_digest_at"),
            "paused_until": user.get("paused_until"),
            "items": [public_touchpoint(tp) for tp in tps],
        }

    # -- digests -----------------------------------------------------------------------------
    def digest_items(self, tps: Sequence[Doc], now: datetime) -> list[DigestItem]:
        """Turn due touchpoints into ranked digest lines (no private notes ever)."""
        return [
            DigestItem(
                tp["_id"],
                tp.get("contact_id"),
                tp.get("contact_name") or "?",
                describe(tp, now),
                priority(tp, now),
            )
            for tp in tps
        ]

    def compose_for(
        self, user: Doc, tps: Sequence[Doc], policy: Policy, now: datetime
    ) -> Digest | None:
        """The digest a user would get now from these due touchpoints."""
        return compose(
            self.digest_items(tps, now),
            max_segments=policy.max_segments,
            max_items=policy.daily_budget(user),
            counter=self.counter,
        )

    async def sweep(self, *, max_batches: int = 1000) -> dict[str, int]:
        """Send each due user at most one digest for the current window.

        Two phases: first every due user is claimed and handed to the notifier (the only work
        on the path to the SMS), then schedules move on and dispatches are recorded. A crash
        between the phases is harmless: the claims make a second sweep a no-op, and the reaper
        records (re-dispatching with the same idempotency key, which never sends twice). A sweep
        of more than ``SWEEP_HOLD`` users runs the second phase every that many users, so what
        it holds in memory does not grow with the number of due users.

        Users go in claim batches of ``SWEEP_CLAIM_BATCH``: one query reads the batch's due
        touchpoints, one unordered insert claims it (each claim still atomic on its
        deterministic ``_id``) and one notifier call hands over the digests won. Every replica
        reads the same due list (user ids and schedules only: a cheap query); each takes the
        batches of a page in its own random order and reads the touchpoints of a batch only
        when it takes it, so replicas sweeping at once rarely meet on a batch, split the reads
        as well as the hand-overs, and each ends with a share in proportion to its speed. The
        order only spreads the work: the claim inserts decide who sends.
        """
        stats: dict[str, int] = defaultdict(int)
        policy = await self.policy()
        if policy.paused_all:
            stats["paused_all"] = 1
            return dict(stats)
        now = self.now()
        size = self.settings.sweep_claim_batch
        gate = asyncio.Semaphore(max(1, self.settings.sweep_concurrency // size))
        finish: list[Finish] = []

        async def hand_over(users: list[Doc]) -> None:
            async with gate:
                try:
                    outcomes = await self._sweep_batch(users, policy, now)
                except PyMongoError as exc:
                    # One batch's failure must not stop the others: without claims the next
                    # sweep retries (next_digest_at has not moved); with them, the reaper
                    # finishes them.
                    log.warning("sweep of a batch of %d users failed: %s", len(users), exc)
                    stats["error"] += len(users)
                    return
                for outcome, done in outcomes:
                    stats[outcome] += 1
                    finish.append(done)

        async def settle_all() -> None:
            batches = [finish[i : i + size] for i in range(0, len(finish), size)]
            await asyncio.gather(*(settle(batch) for batch in batches))
            finish.clear()

        async def settle(batch: list[Finish]) -> None:
            async with gate:
                try:
                    await self.settle(batch)
                except PyMongoError as exc:
                    log.warning("recording dispatches failed; the reaper will finish them: %s", exc)

        after = ""
        for _ in range(max_batches):
            if len(finish) >= SWEEP_HOLD:
                await settle_all()
            users = await self.repo.due_users(now, self.settings.sweep_batch, after)
            if not users:
                break
            after = users[-1]["_id"]
            batches = [users[i : i + size] for i in range(0, len(users), size)]
            random.shuffle(batches)
            await asyncio.gather(*(hand_over(batch) for batch in batches))
            del users, batches

        await settle_all()
        return dict(stats)

    async def _sweep_batch(
        self, users: list[Doc], policy: Policy, now: datetime
    ) -> list[tuple[str, Finish]]:
        """Read, compose, claim (one insert) and hand over (one call) a few users' digests."""
        outcomes: list[tuple[str, Finish]] = []
        waiting: list[tuple[Doc, Finish, str]] = []
        for user in users:
            outcome, done, claim_id = self._window_of(user, policy, now)
            if claim_id is None:
                outcomes.append((outcome, done))
            else:
                waiting.append((user, done, claim_id))
        # Spreading, not the guard: windows another replica has claimed already are skipped
        # before their touchpoints are read and their digests composed.
        taken = await self.repo.existing_claims([claim_id for _, _, claim_id in waiting])
        outcomes += [("owned_elsewhere", done) for _, done, cid in waiting if cid in taken]
        waiting = [entry for entry in waiting if entry[2] not in taken]
        due: dict[str, list[Doc]] = defaultdict(list)
        if waiting:
            expired: list[str] = []
            for tp in await self.repo.due_touchpoints([u["_id"] for u, _, _ in waiting], now):
                ends = expires_at(tp)
                if ends is not None and ends <= now:
                    expired.append(tp["_id"])
                else:
                    due[tp["user_id"]].append(tp)
            if expired:
                # Past their purpose (a follow-up long unanswered, a birthday after its day):
                # retired instead of offered again. One statement for the batch, and only when
                # something expired.
                await self.repo.close_touchpoints(expired, "expired", "past its purpose", now)
        claims: list[tuple[Doc, Finish]] = []
        for user, done, claim_id in waiting:
            outcome, claim = await self._claim_for(
                user, due.get(user["_id"], []), policy, now, claim_id
            )
            if claim is None:
                outcomes.append((outcome, done))
            else:
                claims.append((claim, done))
        won = await self.repo.claim_many([claim for claim, _ in claims])
        mine = [(claim, done) for claim, done in claims if claim["_id"] in won]
        # Another replica owns these windows; their schedules still move on.
        outcomes += [("owned_elsewhere", done) for claim, done in claims if claim["_id"] not in won]
        results = await self.dispatch_many([claim for claim, _ in mine])
        for (claim, done), (outcome, message) in zip(mine, results, strict=True):
            if outcome == "sent":
                done.keep(claim, message)
                status = str((message or {}).get("status"))
                if status in FAILED_DELIVERY:
                    # Stored but never to be sent (an opted-out number): recorded as failed.
                    outcome = "suppressed" if status == "suppressed" else "failed"
            outcomes.append((outcome, done))
        return outcomes

    def _window_of(
        self, user: Doc, policy: Policy, now: datetime
    ) -> tuple[str, Finish, str | None]:
        """A due user's window: an outcome that needs no digest, or the id of its claim."""
        window = policy.window_for(user)
        send_at = _aware(user["next_digest_at"])
        following = next_window(max(now, send_at), window)
        done = Finish(user["_id"], send_at, following)
        paused_until = user.get("paused_until")
        if paused_until is not None and _aware(paused_until) > now:
            return "paused", done, None
        if window.is_quiet(now) or now >= window.closes_at(send_at):
            return "window_missed", done, None
        if not user.get("phone"):
            return "nothing_due", done, None
        return "claim", done, f"digest:{user['_id']}:{window.key(send_at)}"

    async def _claim_for(
        self, user: Doc, tps: list[Doc], policy: Policy, now: datetime, claim_id: str
    ) -> tuple[str, Doc | None]:
        """The claim of a user's digest from its due touchpoints, or why there is none."""
        if not tps:
            return "nothing_due", None
        digest = self.compose_for(user, tps, policy, now)
        if digest is None:
            return "nothing_fits", None
        waiting = self._can_wait_for_company(digest, tps, policy, now)
        if waiting is not None:
            await self.repo.update_touchpoint(waiting["_id"], {"held_at": now})
            return "held_lone", None
        window = policy.window_for(user)
        send_at = _aware(user["next_digest_at"])
        claim = {
            "_id": claim_id,
            "user_id": user["_id"],
            "window": window.key(send_at),
            "state": "claimed",
            "to": user["phone"],
            "body": digest.body,
            "segments": digest.segments,
            "encoding": digest.encoding,
            "items": [
                {
                    "n": n,
                    "touchpoint_id": i.touchpoint_id,
                    "contact_id": i.contact_id,
                    "contact_name": i.contact_name,
                }
                for n, i in enumerate(digest.items, start=1)
            ],
            "left_out": len(digest.left_out),
            # Counted as a wait of each (bounded: see ``priority``) when the digest is recorded.
            "left_out_ids": [i.touchpoint_id for i in digest.left_out],
            "expires_at": window.closes_at(send_at),
            "attempts": 0,
            "owner": self.replica,
            "created_at": now,
            "updated_at": now,
        }
        return "claim", claim

    @staticmethod
    def _can_wait_for_company(
        digest: Digest, tps: list[Doc], policy: Policy, now: datetime
    ) -> Doc | None:
        """The touchpoint of a one-item digest that may wait a window for others, if any.

        A cadence reconnect or a follow-up may wait when it has more than a day before its
        maximum and has not waited since it fell due or was last nudged: it waits at most one
        window at a time, so a lone item still goes every other window. Birthdays and
        one-offs keep their day.
        """
        if not policy.window.hold_lone or len(digest.items) != 1 or digest.left_out:
            return None
        tp = next((t for t in tps if t["_id"] == digest.items[0].touchpoint_id), None)
        if tp is None or tp.get("source") not in ("cadence", "followup"):
            return None
        if _aware(tp["max_at"]) - now <= timedelta(days=1):
            return None
        since = _aware(tp.get("last_nudged_at") or tp["fire_at"])
        held = tp.get("held_at")
        if held is not None and _aware(held) >= since:
            return None
        return tp

    @staticmethod
    def _message(claim: Doc) -> Doc:
        """The notifier's message for a claimed digest."""
        return {
            "user_id": claim["user_id"],
            "to": claim["to"],
            "body": claim["body"],
            "purpose": "nudge",
            "expires_at": _aware(claim["expires_at"]).isoformat().replace("+00:00", "Z"),
        }

    def _deferral(self, claim: Doc, error: Exception, now: datetime) -> Doc:
        """The fields that put a claim off until the notifier is back (exponential backoff)."""
        attempts = int(claim.get("attempts", 0)) + 1
        delay = min(self.settings.retry_interval_s * 2 ** (attempts - 1), 3600.0)
        return {
            "error": str(error),
            "updated_at": now,
            "next_attempt_at": now + timedelta(seconds=delay),
        }

    async def dispatch(self, claim: Doc) -> tuple[str, Doc | None]:
        """Hand a claimed digest to the notifier (same idempotency key on every attempt)."""
        now = self.now()
        try:
            message = await self.notifier.send(self._message(claim), key=claim["_id"])
        except PermanentDispatchError as exc:
            await self.repo.update_claim(
                claim["_id"], {"state": "failed", "error": str(exc), "updated_at": now}
            )
            log.warning("digest refused by the notifier: %s", exc)
            return "failed", None
        except UpstreamError as exc:
            await self.repo.update_claim(
                claim["_id"], self._deferral(claim, exc, now), inc={"attempts": 1}
            )
            log.info("notifier unavailable, digest will be retried: %s", exc)
            return "deferred", None
        return "sent", message

    async def dispatch_many(self, claims: Sequence[Doc]) -> list[tuple[str, Doc | None]]:
        """:meth:`dispatch` for a batch of claims: one notifier call, one write for the misses.

        Each claim's id is its message's idempotency key, as with the single call, so a later
        retry of one of them (by the reaper, one at a time) can never send it twice.
        """
        if not claims:
            return []
        now = self.now()
        try:
            answers = await self.notifier.send_many(
                [(self._message(claim), claim["_id"]) for claim in claims]
            )
        except UpstreamError as exc:
            await self.repo.update_claims(
                [(c["_id"], self._deferral(c, exc, now), {"attempts": 1}) for c in claims]
            )
            log.info("notifier unavailable, %d digests will be retried: %s", len(claims), exc)
            return [("deferred", None)] * len(claims)
        out: list[tuple[str, Doc | None]] = []
        refused: list[tuple[str, Doc, Doc | None]] = []
        for claim, answer in zip(claims, answers, strict=True):
            if isinstance(answer, PermanentDispatchError):
                refused.append(
                    (
                        claim["_id"],
                        {"state": "failed", "error": str(answer), "updated_at": now},
                        None,
                    )
                )
                log.warning("digest refused by the notifier: %s", answer)
                out.append(("failed", None))
            else:
                out.append(("sent", answer))
        await self.repo.update_claims(refused)
        return out

    async def settle(self, batch: Sequence[Finish]) -> None:
        """Phase 2 of a sweep for a few users: move their schedules on, record what was sent.

        A handful of round trips for the whole batch (schedules, touchpoints, users, claims),
        whatever its size.
        """
        await self.repo.move_next_digests([(d.user_id, d.following, d.send_at) for d in batch])
        await self.record_many(
            [(d.claim, d.message) for d in batch if d.claim is not None and d.message is not None]
        )

    async def record(self, claim: Doc, message: Doc | None = None) -> None:
        """After a dispatch: mark the touchpoints nudged and remember the numbering for replies."""
        await self.record_many([(claim, message)])

    async def record_many(self, dispatched: Sequence[tuple[Doc, Doc | None]]) -> None:
        """:meth:`record` for many dispatched claims, in three round trips.

        Every write is idempotent per claim (touchpoints already nudged by it, a user whose
        last digest is it or a later one, are left alone), so a replay after a crash is harmless.
        """
        if not dispatched:
            return
        now = self.now()
        delivered = [
            (claim, message)
            for claim, message in dispatched
            if str((message or {}).get("status")) not in FAILED_DELIVERY
        ]
        await self.repo.mark_nudged_many(
            [
                ([i["touchpoint_id"] for i in claim["items"]], claim["_id"])
                for claim, _ in delivered
            ],
            now,
            waiting=[(claim.get("left_out_ids") or [], claim["_id"]) for claim, _ in delivered],
        )
        await self.repo.set_last_digests(
            [
                (
                    claim["user_id"],
                    {"claim_id": claim["_id"], "items": claim["items"], "at": claim["created_at"]},
                )
                for claim, _ in delivered
            ]
        )
        changes: list[tuple[str, Doc, Doc | None]] = []
        for claim, message in dispatched:
            fields: Doc = {"state": "recorded", "recorded_at": now, "updated_at": now}
            if message is not None:
                status = message.get("status")
                fields.update({"message_id": message.get("id"), "message_status": status})
                if status in FAILED_DELIVERY:
                    # The notifier will never send it (the user opted out): its items stay due
                    # and un-nudged, and operators see it with the failures.
                    fields.update({"state": "failed", "error": _not_sent(message)})
                    log.warning("digest %s will not be delivered: %s", claim["_id"], status)
            changes.append((claim["_id"], fields, {"attempts": 1}))
        await self.repo.update_claims(changes)

    async def recover(self) -> dict[str, int]:
        """Retry deferred dispatches and finish claims a crashed replica left half-done."""
        now = self.now()
        stats: dict[str, int] = defaultdict(int)
        stale_before = now - timedelta(seconds=self.settings.claim_stale_s)
        for claim in await self.repo.claims_to_retry(now, stale_before, 500):
            lease_until = now + timedelta(seconds=30)
            if not await self.repo.lease_claim(claim["_id"], self.replica, now, lease_until):
                stats["leased_elsewhere"] += 1
                continue
            if claim["state"] == "dispatched":
                await self.record(claim)
                stats["recorded"] += 1
            elif now >= _aware(claim["expires_at"]):
                # Too late for this window: the items stay open and go in the next digest.
                await self.repo.update_claim(claim["_id"], {"state": "expired", "updated_at": now})
                stats["expired"] += 1
            else:
                outcome, message = await self.dispatch(claim)
                if message is not None:
                    await self.record(claim, message)
                stats[outcome] += 1
        for key, count in (await self.check_deliveries(now)).items():
            stats[key] += count
        return dict(stats)

    async def check_deliveries(self, now: datetime) -> dict[str, int]:
        """Follow recent digests to their final delivery state; record the ones that failed.

        The notifier retries a send on its own and gives up after its attempt budget; this is
        how that outcome (and a carrier's undelivered report) reaches reminders and operators
        (``GET /admin/v1/nudges?status=failed``). The touchpoints of a failed digest are still
        open, so they are offered again in the user's next window.
        """
        stats: dict[str, int] = defaultdict(int)
        since = now - timedelta(days=DELIVERY_FOLLOW_DAYS)
        for claim in await self.repo.claims_awaiting_delivery(PENDING_DELIVERY, since, 200):
            try:
                message = await self.notifier.message(str(claim["message_id"]))
            except UpstreamError:
                stats["delivery_unknown"] += 1
                break  # the notifier is away: try again at the next run
            if message is None or message.get("status") == claim.get("message_status"):
                continue
            status = str(message.get("status"))
            fields: Doc = {"message_status": status, "updated_at": now}
            if status in FAILED_DELIVERY:
                fields.update({"state": "failed", "error": _not_sent(message)})
                log.warning("digest %s was not delivered: %s", claim["_id"], status)
                # The user never saw it: its items are due again, as if it had not been sent.
                await self.repo.unmark_nudged(
                    [i["touchpoint_id"] for i in claim.get("items", [])],
                    claim["_id"],
                    f"digest not delivered ({status})",
                    now,
                )
                stats["undelivered"] += 1
            else:
                stats["delivery_updated"] += 1
            await self.repo.update_claim(claim["_id"], fields)
        return dict(stats)

    # -- operators ---------------------------------------------------------------------------
    async def schedule(self, user_id: str) -> Doc:
        """A user's schedule as operators see it."""
        prefs = await self.preferences(user_id)
        user = await self.ensure_user(user_id)
        tps = await self.repo.touchpoints_of(user_id)
        tps.sort(key=lambda tp: _aware(tp["fire_at"]))
        return {
            "user_id": user_id,
            "preferences": prefs,
            "last_digest": user.get("last_digest"),
            "touchpoints": [public_touchpoint(tp, history=True) for tp in tps],
        }

    async def dry_run(self, days: int, user_id: str | None, limit: int) -> Doc:
        """What would be sent to whom in the next ``days`` days, assuming every item is acted on.

        Users are walked in id order, streamed together with their open touchpoints (one user's
        at a time), until ``limit`` digests are planned; ``truncated`` says the walk stopped
        there.
        """
        policy = await self.policy()
        now = self.now()
        end = now + timedelta(days=days)
        out: list[Doc] = []
        truncated = False
        if user_id is not None:
            for user in await self.repo.all_users(user_id):
                mine = await self.repo.open_touchpoints_for([user["_id"]])
                truncated = self._plan(user, mine, policy, now, end, limit, out)
        else:
            users = self.repo.users_by_id(USER_PAGE)
            groups = self.repo.open_touchpoints_by_user(USER_PAGE * 10)
            try:
                group = await anext(groups, None)
                async for user in users:
                    # Both streams are in user id order: skip touchpoints of users we do not
                    # have, take this user's, leave the next users' for later.
                    while group is not None and group[0] < user["_id"]:
                        group = await anext(groups, None)
                    tps: list[Doc] = []
                    if group is not None and group[0] == user["_id"]:
                        tps = group[1]
                        group = await anext(groups, None)
                    truncated = self._plan(user, tps, policy, now, end, limit, out)
                    if truncated:
                        break
            finally:
                await users.aclose()
                await groups.aclose()
        out.sort(key=lambda d: d["send_at"])
        return {
            "from": now,
            "to": end,
            "paused_all": policy.paused_all,
            "truncated": truncated,
            "digests": out,
        }

    def _plan(
        self,
        user: Doc,
        tps: list[Doc],
        policy: Policy,
        now: datetime,
        end: datetime,
        limit: int,
        out: list[Doc],
    ) -> bool:
        """Append one user's simulated digests up to ``end``; True once ``limit`` is reached."""
        window = policy.window_for(user)
        at = _aware(user.get("next_digest_at") or next_window(now, window, inclusive=True))
        pending = tps
        while at <= end:
            if len(out) >= limit:
                return True
            paused = user.get("paused_until")
            if not (paused and _aware(paused) > at):
                ready = [tp for tp in pending if _aware(tp["fire_at"]) <= at]
                digest = self.compose_for(user, ready, policy, at) if ready else None
                if digest is not None:
                    sent = {i.touchpoint_id for i in digest.items}
                    pending = [tp for tp in pending if tp["_id"] not in sent]
                    out.append(
                        {
                            "user_id": user["_id"],
                            "send_at": at,
                            "window": window.key(at),
                            "body": digest.body,
                            "segments": digest.segments,
                            "encoding": digest.encoding,
                            "items": [i.touchpoint_id for i in digest.items],
                        }
                    )
            at = next_window(at, window)
        return False


# An item left out of this many digests in a row goes ahead of everything that waited less, so
# it reaches the next one: no due item waits more than MAX_WAIT_DIGESTS of its user's digests.
WAIT_BOOST_AFTER = MAX_WAIT_DIGESTS - 1


def priority(tp: Doc, now: datetime) -> float:
    """Rank of a due touchpoint: long-waiting first, then birthdays (on their day), escalated,
    follow-ups, one-offs, cadences by how overdue."""
    due = _aware(tp["due_at"])
    overdue_days = max((now - due).total_seconds() / 86400, 0)
    waits = int(tp.get("waits") or 0)
    if waits >= WAIT_BOOST_AFTER:
        return 10_000 + 1000 * waits + min(overdue_days, 999)
    if tp.get("source") == "birthday":
        return 2000  # it expires at the end of its day
    if now >= _aware(tp["max_at"]):
        return 1000 + min(overdue_days, 999)
    base = {"followup": 500, "oneoff": 400}.get(tp.get("source", ""), 100)
    return base + min(overdue_days, 99)


def expires_at(tp: Doc) -> datetime | None:
    """When an unanswered touchpoint's purpose has passed (a birthday after its day)."""
    value = tp.get("expires_at")
    if value is None and tp.get("source") == "birthday":
        value = tp.get("max_at")  # written before birthdays carried their own expiry
    return None if value is None else _aware(value)


def describe(tp: Doc, now: datetime) -> str:
    """One digest line for a touchpoint (names and reasons only, never notes)."""
    name = tp.get("contact_name") or "?"
    who = f"{name} ({tp['company']})" if tp.get("company") else name
    source = tp.get("source")
    if source == "cadence":
        base = tp.get("base")
        if not tp.get("has_touch") or base is None:
            return f"{who}: first touch due"
        days = max(int((now - _aware(base)).total_seconds() // 86400), 0)
        # Short on purpose: every character of a line is paid for in every digest it is in.
        if now >= _aware(tp["max_at"]):
            return f"{who}: losing touch, {days}d"
        return f"{who}: last touch {days}d ago"
    if source == "birthday":
        return f"{who}: birthday today"
    return f"{who}: {tp.get('reason')}"


def touchpoint_etag(tp: Doc) -> str:
    """The ETag of a touchpoint's current version (0 for one stored before versions)."""
    return make_etag(str(tp["_id"]), int(tp.get("version", 0)))


def public_touchpoint(tp: Doc, *, history: bool = False) -> Doc:
    """A touchpoint as the API shows it."""
    out = {
        "id": tp["_id"],
        "etag": touchpoint_etag(tp),
        "contact_id": tp.get("contact_id"),
        "contact_name": tp.get("contact_name"),
        "source": tp.get("source"),
        "reason": tp.get("reason"),
        "state": tp.get("state"),
        "due_at": tp.get("due_at"),
        "max_at": tp.get("max_at"),
        "fire_at": tp.get("fire_at"),
        "nudge_count": tp.get("nudge_count", 0),
    }
    if history:
        out["history"] = tp.get("history", [])
    return out
