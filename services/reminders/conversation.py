"""Acting on SMS replies: resolve what a reply refers to, act through contacts, confirm, UNDO."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from services.reminders.models import OPEN_STATES
from services.reminders.replies import HELP_TEXT, Command, Ref, parse
from services.reminders.scheduling import zone
from services.reminders.service import RemindersService, _aware, describe, ms, priority
from shared.errors import Conflict, DomainError, NotFound, ValidationFailed
from shared.sms import count_segments, prefer_gsm7

log = logging.getLogger(__name__)

Doc = dict[str, Any]
PENDING_TTL = timedelta(minutes=10)
STALE_REPLY = timedelta(seconds=60)
# A name longer than this many words is not tried whole: contacts compares at most eight words
# of a name, and each shorter run tried is one more call to contacts.
MAX_NAME_WORDS = 8
_UNDO_LISTS = ("interactions", "referrals", "touchpoints", "contacts")


@dataclass(frozen=True, slots=True)
class Target:
    """What a reference resolved to."""

    contact_id: str | None
    contact_name: str
    touchpoint_id: str | None = None
    tail: str = ""


class Question(Exception):
    """The reply cannot be acted on yet: ask the user (ambiguous or unknown name, bad number)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _one_segment(template: str, value: str) -> str:
    """``template`` with ``value`` in place of ``{}``, ``value`` cut so the SMS is one segment."""
    value = value.strip()
    text = prefer_gsm7(template.format(value))
    while count_segments(text)[1] > 1 and value:
        value = value[: max(len(value) - 8, 0)].rstrip()
        text = prefer_gsm7(template.format(value + "..."))
    return text


def _not_found(name: str) -> Question:
    """The answer to a name that matches no contact (or that no contact name could match)."""
    if not any(ch.isalnum() for ch in prefer_gsm7(name)):
        return Question("I couldn't find a contact with that name. Check the name or reply WHO.")
    return Question(
        _one_segment('I couldn\'t find a contact named "{}". Check the name or reply WHO.', name)
    )


def _action(kind: str, target: Target | None = None, **details: Any) -> Doc:
    out: Doc = {"kind": kind, "details": details}
    if target is not None:
        out["contact_id"] = target.contact_id
        out["contact_name"] = target.contact_name
    return out


def _short_date(value: datetime, tz_name: str) -> str:
    local = value.astimezone(zone(tz_name))
    return f"{local.strftime('%a %b')} {local.day}"


class Conversation:
    """Interprets replies for one service instance."""

    def __init__(self, service: RemindersService) -> None:
        self.svc = service
        self.repo = service.repo
        self.contacts = service.contacts

    async def handle(self, user_id: str, text: str, sid: str) -> Doc:
        """Answer one inbound SMS, exactly once per message id."""
        now = self.svc.now()
        # Keyed by user as well: a message id presented for another user is another message,
        # never a replay of this user's answer.
        record = f"{user_id}:{sid}"
        fresh = await self.repo.start_reply(
            {"_id": record, "user_id": user_id, "state": "processing", "created_at": now}
        )
        if not fresh:
            stored = await self._wait_for(record)
            if stored is not None:
                return stored
        try:
            user = await self.svc.ensure_user(user_id)
            answer = await self._execute(user, parse(text), sid, now)
            # The answer is an SMS too: a name with an emoji or a letter outside GSM-7 must not
            # turn it into UCS-2 (twice the segments) when a look-alike keeps it in GSM-7.
            answer["reply"] = prefer_gsm7(answer["reply"])
        except BaseException:
            # Let a retry by the notifier run again; calls to contacts carry idempotency keys.
            await self.repo.abandon_reply(record)
            raise
        await self.repo.finish_reply(
            record, {"state": "done", "answer": answer, "finished_at": now}
        )
        return answer

    async def _wait_for(self, record: str) -> Doc | None:
        for _ in range(30):
            doc = await self.repo.get_reply(record)
            if doc is None:
                return None
            if doc.get("state") == "done":
                answer: Doc = doc["answer"]
                return answer
            if self.svc.now() - _aware(doc["created_at"]) > STALE_REPLY:
                return None  # the replica handling it died; take over
            await asyncio.sleep(0.1)
        raise Conflict("this message is still being processed; retry shortly")

    # -- dispatching commands -------------------------------------------------------------------
    async def _execute(self, user: Doc, cmd: Command, sid: str, now: datetime) -> Doc:
        pending = user.get("pending_choice")
        if (
            pending
            and now - _aware(pending["at"]) <= PENDING_TTL
            and (
                cmd.kind == "touched"
                and len(cmd.refs) == 1
                and cmd.refs[0].number
                and not cmd.notes
            )
        ):
            return await self._answer_choice(user, pending, cmd.refs[0].number, sid, now)
        if pending:
            await self.repo.unset_user(user["_id"], "pending_choice")
        if cmd.kind == "unknown":
            return {
                "reply": "Sorry, I didn't get that. " + HELP_TEXT,
                "actions": [_action("help", understood=False)],
            }
        if cmd.kind == "help":
            return {"reply": HELP_TEXT, "actions": [_action("help", understood=True)]}
        if cmd.kind == "who":
            return await self._who(user, now)
        if cmd.kind == "paused":
            return await self._pause(user, cmd, now)
        if cmd.kind == "resumed":
            return await self._resume(user, now)
        if cmd.kind == "undone":
            return await self._undo(user, now)
        try:
            targets = [await self._resolve(user, ref, cmd, now) for ref in cmd.refs]
        except Question as question:
            return {"reply": question.text, "actions": []}
        return await self._act(user, cmd, targets, sid, now)

    async def _act(
        self, user: Doc, cmd: Command, targets: list[Target], sid: str, now: datetime
    ) -> Doc:
        lines: list[str] = []
        actions: list[Doc] = []
        undo: Doc = {
            "_id": ObjectId(),
            "user_id": user["_id"],
            "at": now,
            "kind": cmd.kind,
            "interactions": [],
            "referrals": [],
            "touchpoints": [],
            "contacts": [],
            "undone": False,
        }
        acting, also = _distinct(cmd, targets)
        for index, target in enumerate(acting):
            key = f"reply:{sid}:{index}"
            marks = {name: len(undo[name]) for name in _UNDO_LISTS}
            try:
                line, action = await self._one(user, cmd, target, key, undo, now)
                if action is not None:
                    for other in also.get(index, []):
                        await self._also_done(user["_id"], other, cmd, undo, now)
            except (NotFound, ValidationFailed) as refused:
                # contacts refused this one (contact deleted since the list, an entry it will
                # not take): say so and go on with the others; nothing of it was written.
                for name, mark in marks.items():
                    del undo[name][mark:]
                line, action = self._refusal(target, refused), None
            lines.append(line)
            if action is not None:
                actions.append(action)
        if not any(undo[name] for name in _UNDO_LISTS):
            return {"reply": " ".join(lines), "actions": actions}
        await self.repo.add_undo(undo)
        return {"reply": " ".join(lines) + " UNDO to revert.", "actions": actions}

    async def _also_done(
        self, user_id: str, target: Target, cmd: Command, undo: Doc, now: datetime
    ) -> None:
        """Another item of the same reply about a contact already acted on: close it only."""
        if not target.touchpoint_id:
            return
        tp = await self.repo.get_touchpoint(target.touchpoint_id)
        # A cadence item is reset by the touch just logged; other open items are done by it.
        if tp is None or tp["state"] not in OPEN_STATES or tp.get("source") == "cadence":
            return
        await self._snapshot_tp(undo, tp)
        await self.svc.close_touchpoint(tp, "done", cmd.kind, now)

    @staticmethod
    def _refusal(target: Target, refused: DomainError) -> str:
        if isinstance(refused, NotFound):
            return f"{target.contact_name} is no longer in your contacts."
        return f"I couldn't log that for {target.contact_name}; please use the app."

    async def _without_contact(
        self, user_id: str, cmd: Command, target: Target, undo: Doc, now: datetime
    ) -> tuple[str, Doc | None]:
        """An item about someone who is not a contact: it can be done, but nothing is logged."""
        if cmd.kind not in ("touched", "one_to_one"):
            what = "a note" if cmd.kind == "note" else "a referral"
            return (
                f"{target.contact_name} isn't in your contacts, so I can't log {what}. "
                "Add them in the app first.",
                None,
            )
        tp = await self._touchpoint_for(user_id, target)
        if tp is None:
            return f"Nothing is due for {target.contact_name}.", None
        await self._snapshot_tp(undo, tp)
        await self.svc.close_touchpoint(tp, "done", cmd.kind, now)
        text = f"Marked {target.contact_name} done."
        if cmd.kind == "one_to_one" or cmd.notes or cmd.next_action:
            text += " They're not in your contacts, so nothing was logged."
        return text, _action(cmd.kind, target, touchpoint_id=tp["_id"], interaction_id=None)

    async def _one(
        self, user: Doc, cmd: Command, target: Target, key: str, undo: Doc, now: datetime
    ) -> tuple[str, Doc | None]:
        user_id = user["_id"]
        tz_name = user.get("time_zone") or "UTC"
        if cmd.kind in ("snoozed", "skipped"):
            tp = await self._touchpoint_for(user_id, target)
            if tp is None:
                return f"Nothing is due for {target.contact_name}.", None
            await self._snapshot_tp(undo, tp)
            if cmd.kind == "snoozed":
                assert cmd.duration is not None
                until = ms(now + cmd.duration)
                await self.svc.snooze_touchpoint(tp, until, now)
                return (
                    f"Snoozed {target.contact_name} until {_short_date(until, tz_name)}.",
                    _action("snoozed", target, touchpoint_id=tp["_id"], until=until.isoformat()),
                )
            await self.svc.close_touchpoint(tp, "skipped", None, now)
            text = f"Skipped {target.contact_name}."
            if tp.get("source") == "cadence" and target.contact_id:
                # Skipping a check-in starts the next cycle from today without logging a touch.
                contact = await self.svc.restart_cadence(user, target.contact_id, now)
                if contact is not None:
                    undo["contacts"].append(
                        {
                            "contact_id": target.contact_id,
                            "skip_base": contact.get("skip_base"),
                            "last_interaction_at": contact.get("last_interaction_at"),
                        }
                    )
                    text += f" Next check-in in ~{await self._cadence_days(user_id, target)} days."
            return text, _action("skipped", target, touchpoint_id=tp["_id"])
        if target.contact_id is None:
            return await self._without_contact(user_id, cmd, target, undo, now)
        if cmd.kind in ("referral_given", "referral_received"):
            body: Doc = {
                "direction": "given" if cmd.kind == "referral_given" else "received",
                "contact_id": target.contact_id,
            }
            description = " ".join(p for p in (target.tail, cmd.description) if p).strip(" :,-")
            if cmd.for_name:
                body["for_name"] = cmd.for_name[:200]
            if description:
                body["description"] = description[:500]
            referral = await self.contacts.add_referral(user_id, body, key)
            undo["referrals"].append(referral["id"])
            await self.svc.apply_referral({**referral, "user_id": user_id})
            if cmd.kind == "referral_given":
                extra = f" for {cmd.for_name[:40]}" if cmd.for_name else ""
                text = f"Logged referral given to {target.contact_name}{extra}."
            else:
                text = f"Logged referral from {target.contact_name}. Say thank you today!"
            return text, _action(
                cmd.kind,
                target,
                referral_id=referral["id"],
                **{k: v for k, v in body.items() if k in ("for_name", "description")},
            )
        notes = " ".join(p for p in (target.tail, cmd.notes) if p).strip(" :,-")
        if cmd.kind == "note":
            if not notes:
                return (
                    f"What's the note for {target.contact_name}? "
                    "e.g. NOTE Dana: son starts college.",
                    _action("help", target, understood=False),
                )
            entry = await self.contacts.log_interaction(
                user_id,
                target.contact_id,
                {"kind": "note", "notes": notes[:2000], "source": "sms"},
                key,
            )
            undo["interactions"].append(entry["id"])
            return f"Noted for {target.contact_name}.", _action(
                "note", target, interaction_id=entry["id"]
            )
        # touched / one_to_one: log the interaction, close the touchpoint, reset the cadence.
        kind = "one_to_one" if cmd.kind == "one_to_one" else "message"
        payload: Doc = {
            "kind": kind,
            "occurred_at": now.isoformat().replace("+00:00", "Z"),
            "source": "sms",
        }
        if notes:
            payload["notes"] = notes[:2000]
        if cmd.next_action:
            payload["next_action"] = cmd.next_action[:500]
        tp = await self._touchpoint_for(user_id, target)
        contact = await self.repo.get_contact(user_id, target.contact_id)
        if contact is not None:
            undo["contacts"].append(
                {
                    "contact_id": target.contact_id,
                    "skip_base": contact.get("skip_base"),
                    "last_interaction_at": contact.get("last_interaction_at"),
                }
            )
        cadence = await self.repo.get_touchpoint(f"cad:{user_id}:{target.contact_id}")
        for snap in (tp, cadence):
            if snap is not None:
                await self._snapshot_tp(undo, snap)
        entry = await self.contacts.log_interaction(user_id, target.contact_id, payload, key)
        undo["interactions"].append(entry["id"])
        if tp is not None and tp.get("source") != "cadence":
            await self.svc.close_touchpoint(tp, "done", cmd.kind, now)
        await self.svc.apply_interaction(
            {**payload, **entry, "user_id": user_id, "contact_id": target.contact_id}
        )
        days = await self._cadence_days(user_id, target)
        details: Doc = {"interaction_id": entry["id"], "touchpoint_id": tp["_id"] if tp else None}
        if cmd.kind == "one_to_one":
            if notes:
                details["notes"] = notes
            if cmd.next_action:
                details["next_action"] = cmd.next_action
            text = f"Logged 1-2-1 with {target.contact_name}."
        else:
            text = f"Logged touch with {target.contact_name}."
        return text + f" Next check-in in ~{days} days.", _action(cmd.kind, target, **details)

    async def _cadence_days(self, user_id: str, target: Target) -> int:
        tp = await self.repo.get_touchpoint(f"cad:{user_id}:{target.contact_id}")
        return round(float(tp.get("ideal_days") or 30)) if tp else 30

    async def _snapshot_tp(self, undo: Doc, tp: Doc) -> None:
        if any(s["_id"] == tp["_id"] for s in undo["touchpoints"]):
            return
        undo["touchpoints"].append(
            {
                k: tp.get(k)
                for k in ("_id", "state", "fire_at", "snoozed_until", "due_at", "max_at", "base")
            }
        )

    async def _touchpoint_for(self, user_id: str, target: Target) -> Doc | None:
        if target.touchpoint_id:
            tp = await self.repo.get_touchpoint(target.touchpoint_id)
            if tp is not None and tp["state"] in OPEN_STATES:
                return tp
            if tp is not None and target.contact_id is None:
                return None
        if target.contact_id is None:
            return None
        open_tps = await self.repo.open_touchpoints(user_id, target.contact_id)
        return open_tps[0] if open_tps else None

    # -- references ---------------------------------------------------------------------------
    async def _resolve(self, user: Doc, ref: Ref, cmd: Command, now: datetime) -> Target:
        if ref.number is not None:
            items = (user.get("last_digest") or {}).get("items") or []
            for item in items:
                if item["n"] == ref.number:
                    return Target(
                        item.get("contact_id"), item["contact_name"], item["touchpoint_id"]
                    )
            raise Question(
                f"There's no item {ref.number} in your last list. Reply WHO to see what's due."
            )
        assert ref.name is not None
        words = ref.name.split(" ")
        if not any(ch.isalnum() for ch in ref.name):
            raise _not_found(ref.name)  # no contact's name is all punctuation or emoji
        candidates: list[Doc] = []
        longest = min(len(words), MAX_NAME_WORDS) if cmd.name_tail_is_notes else len(words)
        used = longest
        for used in range(longest, 0, -1):
            candidates = await self.contacts.match(user["_id"], " ".join(words[:used]))
            if candidates or not cmd.name_tail_is_notes:
                break
        tail = " ".join(words[used:]) if candidates else ""
        if not candidates:
            raise _not_found(ref.name)
        if len(candidates) > 1:
            shown = candidates[:5]
            await self.repo.update_user(
                user["_id"],
                {
                    "pending_choice": {
                        "at": now,
                        "command": _command_doc(cmd),
                        "tail": tail,
                        "candidates": [{"id": c["id"], "name": c["name"]} for c in shown],
                    }
                },
            )
            options = ", ".join(f"{n}) {c['name']}" for n, c in enumerate(shown, start=1))
            return_text = f"Which {words[0]}? {options}. Reply with the number."
            raise Question(return_text)
        c = candidates[0]
        return Target(str(c["id"]), str(c["name"]), None, tail)

    async def _answer_choice(
        self, user: Doc, pending: Doc, number: int, sid: str, now: datetime
    ) -> Doc:
        await self.repo.unset_user(user["_id"], "pending_choice")
        candidates = pending["candidates"]
        if not 1 <= number <= len(candidates):
            return {"reply": f"Please reply a number from 1 to {len(candidates)}.", "actions": []}
        chosen = candidates[number - 1]
        cmd = _command_from(pending["command"])
        target = Target(chosen["id"], chosen["name"], None, pending.get("tail", ""))
        return await self._act(user, cmd, [target], sid, now)

    # -- whole-user commands --------------------------------------------------------------------
    async def _who(self, user: Doc, now: datetime) -> Doc:
        tps = [
            tp
            for tp in await self.repo.open_touchpoints(user["_id"])
            if _aware(tp["fire_at"]) <= now
        ]
        tps.sort(key=lambda tp: -priority(tp, now))
        tps = tps[:5]
        if not tps:
            return {
                "reply": "Nothing is due right now. Nice work!",
                "actions": [_action("who", items=[])],
            }
        items = [
            {
                "n": n,
                "touchpoint_id": tp["_id"],
                "contact_id": tp.get("contact_id"),
                "contact_name": tp.get("contact_name") or "?",
            }
            for n, tp in enumerate(tps, start=1)
        ]
        await self.repo.update_user(
            user["_id"],
            {"last_digest": {"claim_id": f"who:{uuid.uuid4().hex}", "items": items, "at": now}},
        )
        lines = [f"{n}) {describe(tp, now)}" for n, tp in enumerate(tps, start=1)]
        return {
            "reply": "Due now: " + "; ".join(lines) + ". Reply 1 when done or SNOOZE 1 2w.",
            "actions": [
                _action(
                    "who",
                    items=[{k: i[k] for k in ("n", "contact_id", "contact_name")} for i in items],
                )
            ],
        }

    async def _pause(self, user: Doc, cmd: Command, now: datetime) -> Doc:
        assert cmd.duration is not None
        until = ms(now + cmd.duration)
        await self.repo.add_undo(
            {
                "_id": ObjectId(),
                "user_id": user["_id"],
                "at": now,
                "kind": "paused",
                "paused_until": user.get("paused_until"),
                "undone": False,
            }
        )
        await self.repo.update_user(user["_id"], {"paused_until": until})
        tz_name = user.get("time_zone") or "UTC"
        return {
            "reply": f"Paused until {_short_date(until, tz_name)}. "
            "RESUME to restart, UNDO to revert.",
            "actions": [_action("paused", until=until.isoformat())],
        }

    async def _resume(self, user: Doc, now: datetime) -> Doc:
        await self.repo.add_undo(
            {
                "_id": ObjectId(),
                "user_id": user["_id"],
                "at": now,
                "kind": "resumed",
                "paused_until": user.get("paused_until"),
                "undone": False,
            }
        )
        await self.repo.unset_user(user["_id"], "paused_until")
        return {
            "reply": "Resumed. Your next digest goes out as usual.",
            "actions": [_action("resumed")],
        }

    async def _undo(self, user: Doc, now: datetime) -> Doc:
        window = timedelta(seconds=self.svc.settings.undo_window_s)
        last = await self.repo.last_undo(user["_id"], now - window)
        if last is None or not await self.repo.mark_undone(last["_id"], now):
            return {
                "reply": "Nothing to undo (UNDO works for 10 minutes after an action).",
                "actions": [],
            }
        user_id = user["_id"]
        try:
            for interaction_id in last.get("interactions", []):
                await self.contacts.delete_interaction(user_id, interaction_id)
                await self.repo.cancel_by_source(user_id, interaction_id, now)
            for referral_id in last.get("referrals", []):
                await self.contacts.delete_referral(user_id, referral_id)
                await self.repo.cancel_by_source(user_id, referral_id, now)
        except DomainError:
            await self.repo.reopen_undo(last["_id"])
            raise
        policy = await self.svc.policy()
        for snap in last.get("contacts", []):
            contact = await self.repo.put_contact(
                user_id,
                snap["contact_id"],
                {
                    "last_interaction_at": snap.get("last_interaction_at"),
                    "skip_base": snap.get("skip_base"),
                },
            )
            await self.svc.recompute_contact(user, contact, policy)
        for snap in last.get("touchpoints", []):
            fields = {k: v for k, v in snap.items() if k != "_id"}
            fields["updated_at"] = now
            await self.repo.update_touchpoint(
                snap["_id"], fields, {"at": now, "state": snap.get("state"), "why": "undo"}
            )
        if last["kind"] in ("paused", "resumed"):
            if last.get("paused_until"):
                await self.repo.update_user(user_id, {"paused_until": last["paused_until"]})
            else:
                await self.repo.unset_user(user_id, "paused_until")
        label = {
            "one_to_one": "1-2-1",
            "touched": "touch",
            "snoozed": "snooze",
            "skipped": "skip",
            "note": "note",
            "referral_given": "referral",
            "referral_received": "referral",
            "paused": "pause",
            "resumed": "resume",
        }.get(last["kind"], "last action")
        return {
            "reply": f"Undone: {label}.",
            "actions": [
                _action(
                    "undone",
                    reverted=last["kind"],
                    interactions=last.get("interactions", []),
                    referrals=last.get("referrals", []),
                )
            ],
        }


def _distinct(cmd: Command, targets: list[Target]) -> tuple[list[Target], dict[int, list[Target]]]:
    """The targets a reply acts on once each, and the other items each one also closes.

    ``DONE 1 1`` or ``DONE 1 2 3`` naming one contact three times logs one touch (one 1-2-1, one
    note, one referral), not one per number; the contact's other items named are closed by it.
    SNOOZE and SKIP act on each item named, once.
    """
    acting: list[Target] = []
    also: dict[int, list[Target]] = {}
    first: dict[tuple[str | None, str | None], int] = {}
    seen: set[tuple[str | None, str | None]] = set()
    per_item = cmd.kind in ("snoozed", "skipped")
    for target in targets:
        exact = (target.contact_id, target.touchpoint_id)
        if exact in seen:
            continue
        seen.add(exact)
        key = exact if per_item or target.contact_id is None else (target.contact_id, None)
        if key in first:
            also.setdefault(first[key], []).append(target)
            continue
        first[key] = len(acting)
        acting.append(target)
    return acting, also


def _command_doc(cmd: Command) -> Doc:
    data = asdict(cmd)
    data["duration"] = cmd.duration.total_seconds() if cmd.duration else None
    data["refs"] = []
    data.pop("raw", None)
    return data


def _command_from(data: Doc) -> Command:
    duration = timedelta(seconds=data["duration"]) if data.get("duration") else None
    return Command(
        kind=data["kind"],
        refs=(),
        notes=data.get("notes", ""),
        next_action=data.get("next_action", ""),
        duration=duration,
        for_name=data.get("for_name", ""),
        description=data.get("description", ""),
        name_tail_is_notes=data.get("name_tail_is_notes", False),
    )
