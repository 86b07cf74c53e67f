"""Benchmark: SMS cost of a month of digests, next to one SMS per touchpoint (issue #8).

Workload: ``--users`` networkers (default 1,000) over ``--days`` days (default 30). Each user
has 20-60 contacts in tiers A/B/C (some with their own cadence, some birthdays, half with a
company), named from a mix: plain English names, accented European names ("José", "Zoë",
"Łukasz", "Ségolène"), names as phones' keyboards type them (’ “ ” – …), a few emoji
("Dana 🏀") and a few names in other scripts (李华, محمد علي, Νίκος). Users live in ten zones
(some change to summer time during the month), a fifth of them take digests on weekdays only.

The subject is the reminders service's own code on a real database (``shared.devdb``): each day, at
each zone's digest window, ``RemindersService.sweep()`` composes and dispatches digests and
``recover()`` follows deliveries; users answer digests by SMS through ``Conversation.handle``
(what ``POST /internal/v1/replies`` runs: "1 3", "MET 2 coffee next: send intro",
"SNOOZE 4 2w", "SKIP 5"), log meetings in the app, add contacts and record referrals through
``apply_change`` (what the contacts change-feed consumer runs), so cadences reset and
follow-ups appear as in production. The notifier and contacts are in-process stand-ins of
their internal APIs: the notifier one records every message body.

Baseline, same run: one SMS per delivered touchpoint, the text a reminder app sends ("Time to
reconnect with {name}, last touch N days ago. Reply DONE."), names as typed, counted with
``shared.sms.count_segments``. Also counted: the same digests with punctuation-only folding
(the composition before accents and emoji were folded), and the confirmations replies get.

Users are spread over databases of ``--users-per-db`` users, the way an index keeps each query
to one user's documents on MongoDB: FerretDB's SQLite backend scans a whole collection for every
query but a lone ``_id`` lookup (updates included), and mongo-java-server for every query on a
non-unique index. Users never share data in the reminders service, so this changes no message.

    .venv/bin/python -m bench.sms_cost [--users 1000] [--days 30] [--json PATH]
    .venv/bin/python -m bench.sms_cost --quick --json /tmp/sms.json
"""
# ruff: noqa: RUF002  (typographic characters in names are the point of this benchmark)

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import signal
import statistics
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.report import database_of, used_ferretdb, used_mongo_java_server
from services.reminders.conversation import Conversation
from services.reminders.digest import FOOTER, SHORT_FOOTER, _header, _render, gsm_friendly
from services.reminders.gateways import (
    ContactsGateway,
    NotifierGateway,
    PermanentDispatchError,
)
from services.reminders.policy import Policy
from services.reminders.repository import RemindersRepository
from services.reminders.scheduling import (
    cadence_due,
    local_instant,
    next_birthday,
    next_window,
    zone,
)
from services.reminders.service import RemindersService, describe, ms
from services.reminders.settings import RemindersSettings
from shared.clock import ControllableClock
from shared.config import load_settings
from shared.devdb import DevDatabase
from shared.mongo import create_client
from shared.sms import GSM7_BASIC, GSM7_EXTENDED, count_segments

FIGURE = "SMS cost"
GOAL_SEGMENTS_PER_TOUCHPOINT = 0.5
GOAL_LONGEST_WAIT = 3
# Monday 2 March 2026: the US changes to summer time on the 8th, Europe on the 29th.
START_DAY = date(2026, 3, 2)
ZONES = (
    "Europe/London",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Warsaw",
    "Europe/Athens",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Dubai",
    "Asia/Shanghai",
)

PLAIN_FIRST = [
    "Dana",
    "Sam",
    "Alex",
    "Chris",
    "Jordan",
    "Taylor",
    "Morgan",
    "Pat",
    "Robin",
    "Jamie",
    "Kim",
    "Maria",
    "John",
    "Sarah",
    "David",
    "Emma",
    "Olivia",
    "Noah",
    "Liam",
    "Mia",
    "Lucas",
    "Ella",
    "Grace",
    "Henry",
    "Jack",
    "Amelia",
    "Ava",
    "Isla",
    "Leo",
    "Priya",
    "Omar",
    "Ruth",
]
PLAIN_LAST = [
    "Lee",
    "Park",
    "Smith",
    "Jones",
    "Brown",
    "Taylor",
    "Wilson",
    "Evans",
    "Walker",
    "Wright",
    "Hughes",
    "Green",
    "Hall",
    "Wood",
    "Clarke",
    "Patel",
    "Khan",
    "Martin",
    "Moore",
    "Young",
    "Carter",
    "Reid",
    "Shaw",
]
ACCENTED_FIRST = [
    "José",
    "Zoë",
    "Łukasz",
    "Ségolène",
    "Renée",
    "François",
    "Chloë",
    "Björn",
    "Søren",
    "Núria",
    "Inés",
    "Sinéad",
    "Siobhán",
    "Małgorzata",
    "Jiří",
    "Mélanie",
    "Hélène",
    "Jürgen",
    "Ólafur",
    "Stéphane",
    "Noël",
    "Raphaël",
    "Åsa",
    "Loïc",
    "Agnès",
    "Çağla",
    "Ştefan",
    "Žofia",
    "Íñigo",
    "Maël",
]
ACCENTED_LAST = [
    "García",
    "Müller",
    "Nowak",
    "Dvořák",
    "Ødegaard",
    "Pérez",
    "Núñez",
    "Lefèvre",
    "Sørensen",
    "Wójcik",
    "Ångström",
    "Gómez",
    "Brontë",
    "Öztürk",
    "Kovač",
    "Hernández",
    "Böhm",
    "Lindqvist",
    "Ferreira",
    "Señor",
]
TYPED = (
    "Dana O\u2019Neil",
    "Mary\u2013Kate Jones",
    "D\u2019Angelo Price",
    "Chris \u201cCJ\u201d Jones",
    "Jean\u2013Luc Martin",
    "Amy (book club\u2026)",
    "Tom \u2013 plumber",
    "Ruth O\u2019Connor",
    "Liz \u201cCoach\u201d Hall",
    "Zach D\u2019Souza",
    "Kate O\u2019Hara \u2013 BNI",
    "Sam\u00a0Reid",
)
EMOJI = (
    "Dana \U0001f3c0",
    "Mom \u2764\ufe0f",
    "Sam \U0001f3b8 Park",
    "Coach Lee \u26bd",
    "Priya \u2728",
    "Ben \U0001f37a",
    "Grandma \U0001f475",
    "Jess \U0001f3c3\u200d\u2640\ufe0f",
    "Tom \U0001f44d\U0001f3fd",
    "Ana \U0001f33b Garc\u00eda",
)
OTHER_SCRIPT = (
    "\u674e\u534e",
    "\u738b\u82b3",
    "\u9648\u4f1f",
    "\u0645\u062d\u0645\u062f \u0639\u0644\u064a",
    "\u0641\u0627\u0637\u0645\u0629",
    "\u039d\u03af\u03ba\u03bf\u03c2 "
    "\u03a0\u03b1\u03c0\u03b1\u03b4\u03cc\u03c0\u03bf\u03c5\u03bb\u03bf\u03c2",
    "\u0393\u03b9\u03ce\u03c1\u03b3\u03bf\u03c2",
    "\u0414\u043c\u0438\u0442\u0440\u0438\u0439 \u0418\u0432\u0430\u043d\u043e\u0432",
    "\u3055\u304f\u3089 \u7530\u4e2d",
    "\uae40\ubbfc\uc900",
)
COMPANIES = (
    "Lee Insurance",
    "Acme Ltd",
    "Smith & Sons",
    "Caf\u00e9 M\u00fcller",
    "L\u2019Or\u00e9al",
    "\u00d8rsted",
    "Nestl\u00e9",
    "Soci\u00e9t\u00e9 G\u00e9n\u00e9rale",
    "\u0160koda",
    "H\u00f4tel du Parc",
    "Brown\u2019s Bakery",
    "Costa\u2013Brava Tours",
    "Park Dental",
    "Hughes Legal",
    "Green Energy",
)
TIERS = (("A", 0.2), ("B", 0.5), ("C", 0.3))
TIER_DAYS = {"A": 14.0, "B": 30.0, "C": 90.0}
INTERACTION_KINDS = ("one_to_one", "coffee", "call", "message", "meeting")


def _unavoidable(ch: str) -> bool:
    # A letter of a script other than Latin (no GSM-7 look-alike exists for it).
    return unicodedata.category(ch).startswith("L") and not unicodedata.name(ch, "").startswith(
        "LATIN"
    )


def classify(text: str) -> str:
    """``GSM-7``, ``UCS-2 unavoidable`` (another script's letters) or ``UCS-2 accidental``."""
    outside = [ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED]
    if not outside:
        return "GSM-7"
    return "UCS-2 unavoidable" if any(_unavoidable(ch) for ch in outside) else "UCS-2 accidental"


def naive_text(tp: dict[str, Any], now: datetime) -> str:
    """The one-reminder SMS a reminder app sends for a touchpoint, names as typed."""
    name = tp.get("contact_name") or "?"
    who = f"{name} ({tp['company']})" if tp.get("company") else name
    source = tp.get("source")
    if source == "cadence":
        base = tp.get("base")
        if not tp.get("has_touch") or base is None:
            return f"Time to reach out to {who} for the first time. Reply DONE."
        days = max(int((now - base).total_seconds() // 86400), 0)
        return f"Time to reconnect with {who}, last touch {days} days ago. Reply DONE."
    if source == "birthday":
        return f"It's {who}'s birthday today! Send a note. Reply DONE."
    return f"Reminder: {tp.get('reason')} with {who}. Reply DONE."


# -- stand-ins for the other services' internal APIs ---------------------------------------------
class RecordingNotifier(NotifierGateway):
    """The notifier's message API: idempotent by key; every body is kept."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}

    async def send(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        """Queue a message once per key."""
        if key not in self.messages:
            encoding, segments = count_segments(body["body"])
            self.messages[key] = {
                "id": key,
                "status": "queued",
                "encoding": encoding,
                "segments": segments,
                **body,
            }
        return self.messages[key]

    async def send_many(
        self, items: Sequence[tuple[dict[str, Any], str]]
    ) -> list[dict[str, Any] | PermanentDispatchError]:
        """Queue a batch, each message once per key."""
        return [await self.send(body, key) for body, key in items]

    async def message(self, message_id: str) -> dict[str, Any] | None:
        """Every message reaches the phone."""
        found = self.messages.get(message_id)
        if found is not None:
            found["status"] = "delivered"
        return found


class ContactsStandIn(ContactsGateway):
    """The contacts internal API: a directory of contacts; logged entries get ids."""

    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], dict[str, Any]] = {}
        self.entries: dict[str, dict[str, Any]] = {}

    async def user(self, user_id: str) -> dict[str, Any] | None:
        """Not needed: users are loaded."""
        return None

    async def contact(self, user_id: str, contact_id: str) -> dict[str, Any] | None:
        """One contact of the directory."""
        return self.contacts.get((user_id, contact_id))

    async def match(self, user_id: str, name: str) -> list[dict[str, Any]]:
        """Replies name items by number here."""
        return []

    async def log_interaction(
        self, user_id: str, contact_id: str, body: dict[str, Any], key: str
    ) -> dict[str, Any]:
        """Store an interaction once per key."""
        if key not in self.entries:
            self.entries[key] = {
                "id": f"i-{user_id}-{len(self.entries)}",
                "user_id": user_id,
                "contact_id": contact_id,
                **body,
            }
        return self.entries[key]


# -- the simulated population ---------------------------------------------------------------------
@dataclass
class UserPlan:
    """One simulated user: profile, contacts and behaviour."""

    index: int
    user_id: str
    zone: str
    weekdays_only: bool
    reply_rate: float
    contacts: list[dict[str, Any]]
    rng: random.Random
    next_contact: int = 0


def _pick(rng: random.Random, weights: list[tuple[str, float]]) -> str:
    roll, acc = rng.random(), 0.0
    for name, weight in weights:
        acc += weight
        if roll < acc:
            return name
    return weights[-1][0]


def contact_name(rng: random.Random, other_script: float) -> str:
    """A contact name from the mix of the workload."""
    kind = _pick(
        rng,
        [
            ("other", other_script),
            ("accented", 0.16),
            ("typed", 0.08),
            ("emoji", 0.05),
            ("plain", 1.0),
        ],
    )
    if kind == "other":
        return rng.choice(OTHER_SCRIPT)
    if kind == "typed":
        return rng.choice(TYPED)
    if kind == "emoji":
        return rng.choice(EMOJI)
    if kind == "accented":
        first = rng.choice(ACCENTED_FIRST)
        last = rng.choice(ACCENTED_LAST if rng.random() < 0.6 else PLAIN_LAST)
        return f"{first} {last}"
    return f"{rng.choice(PLAIN_FIRST)} {rng.choice(PLAIN_LAST)}"


def new_contact(plan: UserPlan, now: datetime, *, established: bool) -> dict[str, Any]:
    """A contact entity as the contacts service publishes it."""
    rng = plan.rng
    plan.next_contact += 1
    tier = _pick(rng, list(TIERS))
    cadence = rng.choice([7, 21, 45, 60]) if rng.random() < 0.1 else None
    ideal = float(cadence or TIER_DAYS[tier])
    other = 0.08 if plan.index % 10 < 3 else 0.005
    created = now - timedelta(days=rng.uniform(60, 700)) if established else now
    last = None
    if established and rng.random() < 0.95:
        last = now - timedelta(days=rng.uniform(0, ideal * 1.1), hours=rng.uniform(0, 23))
    return {
        "id": f"c{plan.next_contact:03d}",
        "user_id": plan.user_id,
        "name": contact_name(rng, other),
        "company": rng.choice(COMPANIES) if rng.random() < 0.5 else None,
        "tier": tier,
        "cadence_days": cadence,
        "birthday": f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if rng.random() < 0.4
        else None,
        "last_interaction_at": ms(last) if last else None,
        "created_at": ms(created),
        "deleted": False,
    }


def make_user(index: int, seed: int, start: datetime) -> UserPlan:
    """A user with 20-60 contacts."""
    rng = random.Random(seed * 1_000_003 + index)
    plan = UserPlan(
        index=index,
        user_id=f"u{index:05d}",
        zone=ZONES[index % len(ZONES)],
        weekdays_only=rng.random() < 0.2,
        reply_rate=rng.choice([0.9, 0.9, 0.6, 0.6, 0.25]),
        contacts=[],
        rng=rng,
    )
    plan.contacts = [new_contact(plan, start, established=True) for _ in range(rng.randint(20, 60))]
    return plan


def loaded_state(
    svc: RemindersService, policy: Policy, plan: UserPlan, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The user, contact mirrors and touchpoints the service holds for a user at ``now``.

    Built with the service's own rules (cadence_due, next_birthday, the touchpoint shape) so
    that loading takes a few bulk inserts; ``check_loaded`` asks the service to recompute a
    sample and verifies nothing changes.
    """
    days = [0, 1, 2, 3, 4] if plan.weekdays_only else [0, 1, 2, 3, 4, 5, 6]
    user = {
        "_id": plan.user_id,
        "phone": f"+1555{plan.index:07d}",
        "name": f"User {plan.index}",
        "time_zone": plan.zone,
        "role": "user",
        "prefs": {"days": days} if plan.weekdays_only else {},
        "created_at": now,
    }
    mirrors, tps = [], []
    for c in plan.contacts:
        mirror = {
            "_id": f"{plan.user_id}:{c['id']}",
            "user_id": plan.user_id,
            "contact_id": c["id"],
            **{k: c[k] for k in ("name", "company", "tier", "cadence_days", "birthday")},
            "last_interaction_at": c["last_interaction_at"],
            "created_at": c["created_at"],
            "deleted": False,
        }
        mirrors.append(mirror)
        ideal, maximum = policy.cadence_days(c["tier"], None)
        if c["cadence_days"]:
            ideal, maximum = float(c["cadence_days"]), c["cadence_days"] * maximum / ideal
        base = ms(c["last_interaction_at"] or c["created_at"])
        due, max_at = cadence_due(base, ideal, maximum)
        display = {"contact_name": c["name"], "company": c["company"]}
        doc = svc._touchpoint(
            f"cad:{plan.user_id}:{c['id']}",
            plan.user_id,
            c["id"],
            "cadence",
            "reconnect",
            ms(due),
            ms(max_at),
            now,
            display,
        )
        doc.update(
            {"base": base, "ideal_days": ideal, "has_touch": c["last_interaction_at"] is not None}
        )
        tps.append(doc)
        day = next_birthday(c["birthday"], now, plan.zone) if c["birthday"] else None
        if day is not None:
            bd_due = ms(local_instant(day, wall_time(0, 0), zone(plan.zone)))
            if bd_due + timedelta(days=1) > now:
                tps.append(
                    svc._touchpoint(
                        f"bd:{plan.user_id}:{c['id']}:{day.isoformat()}",
                        plan.user_id,
                        c["id"],
                        "birthday",
                        "birthday",
                        bd_due,
                        bd_due + timedelta(days=1),
                        now,
                        display,
                    )
                )
    return user, mirrors, tps


# -- one database: a few users of one zone, simulated day by day ----------------------------------
@dataclass
class Tally:
    """What one database's users were sent and did."""

    digests: list[dict[str, Any]] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    sweep: Counter[str] = field(default_factory=Counter)
    recover: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    load_checked: int = 0
    # Lifecycle: the longest any due item waited (in its user's digests), lines stale when sent.
    longest_wait: int = 0
    waits: Counter[int] = field(default_factory=Counter)
    stale_lines: Counter[str] = field(default_factory=Counter)
    lines: int = 0


@dataclass
class Truth:
    """What the simulated users did, to tell whether a digest line's purpose was already met."""

    referrals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (user, contact) -> [(occurred, kind, interaction id)]
    touches: dict[tuple[str, str], list[tuple[datetime, str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    seen_entries: set[str] = field(default_factory=set)

    def touch(self, user: str, contact: str, at: datetime, kind: str, entity_id: str) -> None:
        """An interaction was logged."""
        self.touches[(user, contact)].append((at, kind, entity_id))

    def stale(self, tp: dict[str, Any], now: datetime, tz: str) -> str | None:
        """Why a carried touchpoint's line was stale when sent (its purpose met), if it was."""
        source = tp.get("source")
        if source == "birthday":
            local_day = now.astimezone(zone(tz)).date()
            due_day = tp["due_at"].astimezone(zone(tz)).date()
            return None if local_day == due_day else "birthday not today"
        if source != "followup":
            return None
        rule = tp.get("rule_id")
        if rule in ("referral-48h", "referral-14d"):
            ref = self.referrals.get(str(tp.get("source_id")))
            if ref is not None and ref["status"] in ("won", "lost") and ref["at"] <= now:
                return "referral closed"
            return None
        closing = {
            "after-121": {"one_to_one", "coffee", "meeting", "call", "message", "email"},
            "agreed-action": {"one_to_one", "coffee", "meeting", "call"},
            "new-contact": None,
        }
        if rule not in closing:
            return None
        kinds = closing[rule]
        started = tp.get("source_at") or tp.get("created_at")
        for at, kind, entity_id in self.touches.get((tp["user_id"], tp["contact_id"]), []):
            if entity_id == tp.get("source_id") or at > now or kind == "note":
                continue
            if kinds is None or (kind in kinds and started is not None and at > started):
                return "met by a later interaction"
        return None


def _reply_texts(rng: random.Random, count: int) -> list[str]:
    done, texts = [], []
    for n in range(1, count + 1):
        action = _pick(
            rng, [("done", 0.5), ("met", 0.15), ("snooze", 0.1), ("skip", 0.05), ("none", 1.0)]
        )
        if action == "done":
            done.append(str(n))
        elif action == "met":
            extra = " next: send intro" if rng.random() < 0.3 else ""
            texts.append(f"MET {n} {rng.choice(['coffee', 'lunch', 'call'])}{extra}")
        elif action == "snooze":
            texts.append(f"SNOOZE {n} {rng.choice(['2w', '3d', '1w'])}")
        elif action == "skip":
            texts.append(f"SKIP {n}")
    if done:
        texts.insert(0, " ".join(done))
    return texts


async def simulate_db(
    client: AsyncMongoClient[dict[str, Any]],
    name: str,
    plans: list[UserPlan],
    days: int,
    settings: RemindersSettings,
) -> Tally:
    """Load a few users into their own database, live ``days`` days, then drop it."""
    start = datetime.combine(START_DAY, wall_time(0, 0), tzinfo=UTC)
    clock = ControllableClock(start, frozen=True)
    notifier, contacts = RecordingNotifier(), ContactsStandIn()
    svc = RemindersService(
        RemindersRepository(client[name]), contacts, notifier, clock, settings, replica=name
    )
    conversation = Conversation(svc)
    tally = Tally()
    truth = Truth()
    waiting: Counter[str] = Counter()
    db = client[name]
    try:
        await svc.init_defaults()
        policy = await svc.policy()
        users, mirrors, tps = [], [], []
        for plan in plans:
            user, m, t = loaded_state(svc, policy, plan, start)
            user["next_digest_at"] = next_window(start, policy.window_for(user), inclusive=True)
            users.append(user)
            mirrors += m
            tps += t
            for c in plan.contacts:
                contacts.contacts[(plan.user_id, c["id"])] = c
        await db.users.insert_many(users)
        await db.contacts.insert_many(mirrors)
        await db.touchpoints.insert_many(tps)
        tally.load_checked = await check_loaded(svc, plans[0], users[0])
        tz = zone(plans[0].zone)
        for d in range(days):
            day = START_DAY + timedelta(days=d)
            window = local_instant(day, wall_time(9, 0), tz)
            clock.set(window + timedelta(seconds=30), frozen=True)
            before = set(notifier.messages)
            tally.sweep.update(await svc.sweep())
            tally.recover.update(await svc.recover())
            events: list[tuple[datetime, int, str, Any]] = []
            for key in sorted(set(notifier.messages) - before):
                message = notifier.messages[key]
                claim = await svc.repo.get_claim(key)
                assert claim is not None
                carried = [
                    await svc.repo.get_touchpoint(i["touchpoint_id"]) for i in claim["items"]
                ]
                record_digest(tally, message, claim, [tp for tp in carried if tp], clock.now(), d)
                plan = next(p for p in plans if p.user_id == message["user_id"])
                now = clock.now()
                for tp in carried:
                    if tp is None:
                        continue
                    tally.lines += 1
                    why = truth.stale(tp, now, plan.zone)
                    if why is not None:
                        tally.stale_lines[why] += 1
                # Every due item: carried ends its wait (counted in digests, this one included);
                # left out adds one.
                sent_ids = {i["touchpoint_id"] for i in claim["items"]}
                for tp in await svc.repo.open_touchpoints(plan.user_id):
                    if tp["fire_at"] > now:
                        continue
                    if tp["_id"] in sent_ids:
                        wait = waiting.pop(tp["_id"], 0) + 1
                        tally.waits[wait] += 1
                        tally.longest_wait = max(tally.longest_wait, wait)
                    else:
                        waiting[tp["_id"]] += 1
                        tally.longest_wait = max(tally.longest_wait, waiting[tp["_id"]])
                if plan.rng.random() < plan.reply_rate:
                    at = window + timedelta(minutes=plan.rng.uniform(15, 240))
                    for n, text in enumerate(_reply_texts(plan.rng, len(claim["items"]))):
                        events.append((at + timedelta(minutes=n), plan.index, "reply", text))
            for plan in plans:
                rng = plan.rng
                evening = local_instant(day, wall_time(18, 0), tz)
                if rng.random() < 0.25:
                    events.append(
                        (
                            evening + timedelta(minutes=rng.uniform(0, 150)),
                            plan.index,
                            "meeting",
                            None,
                        )
                    )
                if rng.random() < 0.08:
                    events.append(
                        (
                            evening + timedelta(minutes=rng.uniform(0, 150)),
                            plan.index,
                            "contact",
                            None,
                        )
                    )
                if rng.random() < 0.04:
                    events.append(
                        (
                            evening + timedelta(minutes=rng.uniform(0, 150)),
                            plan.index,
                            "referral",
                            None,
                        )
                    )
                if rng.random() < 0.05:
                    events.append(
                        (
                            evening + timedelta(minutes=rng.uniform(0, 150)),
                            plan.index,
                            "referral_closed",
                            None,
                        )
                    )
            events.sort(key=lambda e: (e[0], e[1]))
            # The change-feed consumer reads the policy once per run; so does this day.
            policy = await svc.policy()
            by_index = {p.index: p for p in plans}
            for at, index, kind, text in events:
                clock.set(ms(at), frozen=True)
                await act(
                    svc,
                    conversation,
                    contacts,
                    policy,
                    by_index[index],
                    kind,
                    text,
                    tally,
                    d,
                    truth,
                )
        return tally
    finally:
        await client.drop_database(name)


async def check_loaded(svc: RemindersService, plan: UserPlan, user: dict[str, Any]) -> int:
    """Ask the service to recompute a few loaded contacts; nothing may change."""
    policy = await svc.policy()
    checked = 0
    for c in plan.contacts[:3]:
        before = await svc.repo.open_touchpoints(plan.user_id, c["id"])
        mirror = await svc.repo.get_contact(plan.user_id, c["id"])
        assert mirror is not None
        await svc.recompute_contact(user, mirror, policy)
        after = await svc.repo.open_touchpoints(plan.user_id, c["id"])
        # A recompute rewrites each touchpoint, stamping it and bumping its version (the app's
        # ETag) even when nothing else changes; what must not change is everything else.
        bookkeeping = ("updated_at", "version")
        strip = [{k: v for k, v in tp.items() if k not in bookkeeping} for tp in before]
        if strip != [{k: v for k, v in tp.items() if k not in bookkeeping} for tp in after]:
            raise AssertionError(f"loaded state differs from the service's for {c['id']}")
        checked += 1
    return checked


async def act(
    svc: RemindersService,
    conversation: Conversation,
    contacts: ContactsStandIn,
    policy: Policy,
    plan: UserPlan,
    kind: str,
    text: str | None,
    tally: Tally,
    day: int,
    truth: Truth,
) -> None:
    """One thing a user does: an SMS reply, a meeting logged in the app, a contact, a referral,
    a referral won or lost."""
    rng, now = plan.rng, svc.now()
    if kind == "reply":
        assert text is not None
        sid = f"SM{plan.user_id}{len(contacts.entries)}{rng.getrandbits(40):x}"
        answer = await conversation.handle(plan.user_id, text, sid)
        reply = str(answer.get("reply", ""))
        segments = count_segments(reply)[1]
        tally.confirmations.append(
            {
                "user": plan.user_id,
                "day": day,
                "segments": segments,
                "class": classify(reply),
                "text": reply,
            }
        )
        tally.events["replies"] += 1
        tally.events["reply_actions"] += len(answer.get("actions", []))
        for key, entry in contacts.entries.items():
            if key not in truth.seen_entries:
                truth.seen_entries.add(key)
                at = datetime.fromisoformat(str(entry.get("occurred_at") or now.isoformat()))
                truth.touch(plan.user_id, entry["contact_id"], at, entry["kind"], entry["id"])
        return
    if kind == "referral_closed":
        mine = [
            (rid, ref)
            for rid, ref in truth.referrals.items()
            if ref["user_id"] == plan.user_id and ref["status"] == "open"
        ]
        if not mine:
            return
        _, ref = rng.choice(mine)
        status = "won" if rng.random() < 0.5 else "lost"
        ref.update({"status": status, "at": now})
        await svc.apply_change(
            {
                "kind": "referral",
                "op": "upsert",
                "user_id": plan.user_id,
                "entity": {
                    **ref["entity"],
                    "status": status,
                    "status_times": {status: now.isoformat()},
                },
            },
            policy,
        )
        tally.events[f"referrals_{status}"] += 1
        return
    if kind == "contact":
        added = new_contact(plan, now, established=False)
        plan.contacts.append(added)
        contacts.contacts[(plan.user_id, added["id"])] = added
        await svc.apply_change(
            {"kind": "contact", "op": "create", "user_id": plan.user_id, "entity": added},
            policy,
        )
        tally.events["contacts_added"] += 1
        return
    contact = rng.choice(plan.contacts)
    entity_id = f"{kind[0]}-{plan.user_id}-{tally.events['entities']}"
    tally.events["entities"] += 1
    if kind == "meeting":
        entity: dict[str, Any] = {
            "id": entity_id,
            "user_id": plan.user_id,
            "contact_id": contact["id"],
            "kind": rng.choice(INTERACTION_KINDS),
            "occurred_at": ms(now - timedelta(hours=rng.uniform(1, 8))).isoformat(),
            "created_at": now.isoformat(),
        }
        if rng.random() < 0.3:
            entity["next_action"] = "send the intro"
        await svc.apply_change(
            {"kind": "interaction", "op": "create", "user_id": plan.user_id, "entity": entity},
            policy,
        )
        truth.touch(
            plan.user_id,
            contact["id"],
            datetime.fromisoformat(entity["occurred_at"]),
            entity["kind"],
            entity_id,
        )
        tally.events["meetings_logged"] += 1
    else:
        entity = {
            "id": entity_id,
            "user_id": plan.user_id,
            "contact_id": contact["id"],
            "direction": rng.choice(["given", "received"]),
            "status": "open",
            "created_at": now.isoformat(),
        }
        truth.referrals[entity_id] = {
            "user_id": plan.user_id,
            "status": "open",
            "at": now,
            "entity": entity,
        }
        await svc.apply_change(
            {"kind": "referral", "op": "create", "user_id": plan.user_id, "entity": entity},
            policy,
        )
        tally.events["referrals"] += 1


def record_digest(
    tally: Tally,
    message: dict[str, Any],
    claim: dict[str, Any],
    carried: list[dict[str, Any]],
    now: datetime,
    day: int,
) -> None:
    """Count one digest, its items' one-SMS-each baseline and its punctuation-only twin."""
    body = message["body"]
    encoding, segments = count_segments(body)
    naive = [count_segments(naive_text(tp, now)) for tp in carried]
    lines = [describe(tp, now) for tp in carried]
    total = len(carried) + int(claim.get("left_out", 0))
    footer = SHORT_FOOTER if body.endswith(SHORT_FOOTER) else FOOTER
    twin = _render(_header(len(carried), total), [gsm_friendly(line) for line in lines], footer)
    twin_encoding, twin_segments = count_segments(twin)
    tally.digests.append(
        {
            "user": message["user_id"],
            "day": day,
            "local_date": claim["window"][:10],
            "encoding": encoding,
            "segments": segments,
            "class": classify(body),
            "items": len(claim["items"]),
            "touchpoints": [i["touchpoint_id"] for i in claim["items"]],
            "left_out": int(claim.get("left_out", 0)),
            "naive_segments": sum(s for _, s in naive),
            "naive_ucs2": sum(1 for e, _ in naive if e == "UCS-2"),
            "twin_segments": twin_segments,
            "twin_class": classify(twin) if twin_encoding == "UCS-2" else "GSM-7",
            "body": body,
        }
    )


# -- the whole run --------------------------------------------------------------------------------
def summarize(tallies: list[Tally], users: int, days: int) -> dict[str, Any]:
    """Figures from every database's tally."""
    digests = [d for t in tallies for d in t.digests]
    confirmations = [c for t in tallies for c in t.confirmations]
    carried = sum(d["items"] for d in digests)
    distinct = len({(d["user"], tp) for d in digests for tp in d["touchpoints"]})
    segments = sum(d["segments"] for d in digests)
    naive_segments = sum(d["naive_segments"] for d in digests)
    per_user: Counter[str] = Counter(d["user"] for d in digests)
    per_day: Counter[tuple[str, str]] = Counter((d["user"], d["local_date"]) for d in digests)
    classes = Counter(d["class"] for d in digests)
    twin_classes = Counter(d["twin_class"] for d in digests)
    conf_classes = Counter(c["class"] for c in confirmations)
    shapes = Counter(f"{d['items']} items in {d['segments']}" for d in digests)
    counts = [per_user.get(f"u{i:05d}", 0) for i in range(users)]
    sweep: Counter[str] = Counter()
    recover: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for t in tallies:
        sweep.update(t.sweep)
        recover.update(t.recover)
        events.update(t.events)
    examples = {
        cls: next((d["body"] for d in digests if d["class"] == cls), None)
        for cls in ("GSM-7", "UCS-2 unavoidable", "UCS-2 accidental")
    }
    return {
        "messages": len(digests),
        "touchpoints_carried": carried,
        "distinct_touchpoints": distinct,
        "segments": segments,
        "segments_per_touchpoint": segments / max(carried, 1),
        "items_per_digest": carried / max(len(digests), 1),
        "left_out_mean": statistics.fmean([d["left_out"] for d in digests]) if digests else 0.0,
        "ucs2": classes["UCS-2 unavoidable"] + classes["UCS-2 accidental"],
        "ucs2_accidental": classes["UCS-2 accidental"],
        "ucs2_unavoidable": classes["UCS-2 unavoidable"],
        "messages_per_user_month": {
            "median": statistics.median(counts) if counts else 0,
            "min": min(counts, default=0),
            "max": max(counts, default=0),
            "mean": statistics.fmean(counts) if counts else 0.0,
        },
        "max_messages_per_user_day": max(per_day.values(), default=0),
        "baseline": {
            "messages": carried,
            "segments": naive_segments,
            "segments_per_touchpoint": naive_segments / max(carried, 1),
            "ucs2": sum(d["naive_ucs2"] for d in digests),
        },
        "segment_ratio": segments / max(naive_segments, 1),
        "punctuation_only_fold": {
            "segments": sum(d["twin_segments"] for d in digests),
            "ucs2_accidental": twin_classes["UCS-2 accidental"],
            "ucs2_unavoidable": twin_classes["UCS-2 unavoidable"],
        },
        "confirmations": {
            "messages": len(confirmations),
            "segments": sum(c["segments"] for c in confirmations),
            "ucs2_accidental": conf_classes["UCS-2 accidental"],
            "ucs2_unavoidable": conf_classes["UCS-2 unavoidable"],
            "example_accidental": next(
                (c["text"] for c in confirmations if c["class"] == "UCS-2 accidental"), None
            ),
        },
        "segments_per_touchpoint_with_confirmations": (
            segments + sum(c["segments"] for c in confirmations)
        )
        / max(carried, 1),
        "sweep_outcomes": dict(sweep),
        "recover_outcomes": dict(recover),
        "events": dict(events),
        "examples": examples,
        "digest_shapes": dict(shapes.most_common()),
        "longest_wait_digests": max((t.longest_wait for t in tallies), default=0),
        "waits": dict(sorted(sum((t.waits for t in tallies), Counter()).items())),
        "digest_lines": sum(t.lines for t in tallies),
        "stale_lines": sum(sum(t.stale_lines.values()) for t in tallies),
        "stale_share": sum(sum(t.stale_lines.values()) for t in tallies)
        / max(sum(t.lines for t in tallies), 1),
        "stale_reasons": dict(sum((t.stale_lines for t in tallies), Counter())),
        "single_item_digests": sum(1 for d in digests if d["items"] == 1),
        "single_item_segments": sum(d["segments"] for d in digests if d["items"] == 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate the month for every user; return the JSON result."""
    # A SIGTERM cancels the run, so the databases are dropped and the server stopped (Ctrl-C too).
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    server = DevDatabase()
    uri = server.start()
    started = time.perf_counter()
    try:
        env = {
            "MONGODB_URI": uri,
            "DB_NAME": "bench_sms",
            "INTERNAL_AUTH_SECRET": "bench-internal-secret-0123456789abcdef",
            "AUTH_JWT_SECRET": "bench-jwt-secret-0123456789abcdef-xyz",
            "SCHEDULER_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "SWEEP_CONCURRENCY": "4",
        }
        settings = load_settings(RemindersSettings, env)
        start = datetime.combine(START_DAY, wall_time(0, 0), tzinfo=UTC)
        plans = [make_user(i, args.seed, start) for i in range(args.users)]
        by_zone: dict[str, list[UserPlan]] = defaultdict(list)
        for plan in plans:
            by_zone[plan.zone].append(plan)
        groups = [
            members[i : i + args.users_per_db]
            for members in by_zone.values()
            for i in range(0, len(members), args.users_per_db)
        ]
        client = create_client(uri, "bench-sms-cost", timeout_ms=30_000)
        gate = asyncio.Semaphore(args.concurrency)
        done = 0

        async def one(n: int, group: list[UserPlan]) -> Tally:
            nonlocal done
            async with gate:
                tally = await simulate_db(
                    client, f"bench_sms_{os.getpid()}_{n}", group, args.days, settings
                )
                done += 1
                if done % max(len(groups) // 10, 1) == 0:
                    print(
                        f"  {done}/{len(groups)} databases simulated "
                        f"({time.perf_counter() - started:.0f}s)",
                        flush=True,
                    )
                return tally

        try:
            tallies = await asyncio.gather(*(one(n, g) for n, g in enumerate(groups)))
        finally:
            await client.close()
        elapsed = time.perf_counter() - started
        result = summarize(list(tallies), args.users, args.days)
        contacts = sum(len(p.contacts) for p in plans)
        result.update(
            {
                "figure": FIGURE,
                "config": {
                    "users": args.users,
                    "days": args.days,
                    "users_per_db": args.users_per_db,
                    "databases": len(groups),
                    "concurrency": args.concurrency,
                    "seed": args.seed,
                    "contacts_at_end": contacts,
                    "daily_budget": 5,
                    "max_segments": settings.digest_max_segments,
                    "quick": args.quick,
                },
                "elapsed_s": elapsed,
                "load_checked_contacts": sum(t.load_checked for t in tallies),
                "meta": {
                    "machine": platform.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "database": server.kind,
                    "database_description": server.description,
                },
            }
        )
        return result
    finally:
        server.close()


def print_summary(r: dict[str, Any]) -> None:
    """A short human summary."""
    c, b = r["config"], r["baseline"]
    print(
        f"{c['users']} users x {c['days']} days, {c['contacts_at_end']} contacts, "
        f"{c['databases']} databases, {r['elapsed_s']:.0f}s"
    )
    print(
        f"digests {r['messages']} carrying {r['touchpoints_carried']} touchpoints "
        f"({r['distinct_touchpoints']} distinct), {r['segments']} segments = "
        f"{r['segments_per_touchpoint']:.3f} per touchpoint "
        f"(goal <= {GOAL_SEGMENTS_PER_TOUCHPOINT})"
    )
    print(
        f"UCS-2 digests {r['ucs2']}: accidental {r['ucs2_accidental']} (goal 0), "
        f"unavoidable {r['ucs2_unavoidable']}; punctuation-only fold would give "
        f"{r['punctuation_only_fold']['ucs2_accidental']} accidental"
    )
    m = r["messages_per_user_month"]
    print(
        f"per user: median {m['median']} digests a month (min {m['min']}, max {m['max']}); "
        f"max {r['max_messages_per_user_day']} a day"
    )
    print(
        f"baseline one SMS per touchpoint: {b['messages']} SMS, {b['segments']} segments "
        f"({b['segments_per_touchpoint']:.2f} per touchpoint, {b['ucs2']} UCS-2); "
        f"ratio {r['segment_ratio']:.3f}"
    )
    conf = r["confirmations"]
    print(
        f"reply confirmations: {conf['messages']} SMS, {conf['segments']} segments, "
        f"accidental UCS-2 {conf['ucs2_accidental']}"
    )
    print(f"events {r['events']}; sweep {r['sweep_outcomes']}")
    print(f"digest shapes (items in segments): {r['digest_shapes']}")
    print(
        f"longest wait of a due item: {r['longest_wait_digests']} digests "
        f"(goal <= {GOAL_LONGEST_WAIT}); stale lines {r['stale_lines']} of {r['digest_lines']} "
        f"({r['stale_share']:.2%}, goal 0) {r['stale_reasons']}"
    )
    print("example digest:\n" + (r["examples"]["GSM-7"] or ""))


# -- the Markdown section -------------------------------------------------------------------------
def _med(runs: list[dict[str, Any]], path: str) -> tuple[float, float, float]:
    values = []
    for run in runs:
        value: Any = run
        for part in path.split("."):
            value = value[part]
        values.append(float(value))
    return statistics.median(values), min(values), max(values)


def _cell(runs: list[dict[str, Any]], path: str, fmt: str = "{:.0f}") -> str:
    med, lo, hi = _med(runs, path)
    text = fmt.format(med)
    return text if lo == hi else f"{text} ({fmt.format(lo)}-{fmt.format(hi)})"


def render(runs: list[dict[str, Any]]) -> str:
    """The Markdown section of docs/BENCHMARKS.md for these runs."""
    first = runs[0]
    cfg, meta = first["config"], first["meta"]
    spt = _med(runs, "segments_per_touchpoint")[0]
    accidental = _med(runs, "ucs2_accidental")[2]
    ratio = _med(runs, "segment_ratio")[0]
    quick = " --quick" if cfg.get("quick") else ""
    per_user_day = _med(runs, "elapsed_s")[0] / max(cfg["users"] * cfg["days"], 1)
    rows = [
        ("digests sent", _cell(runs, "messages"), _cell(runs, "baseline.messages"), "", ""),
        (
            "touchpoints delivered (carried in digests)",
            _cell(runs, "touchpoints_carried"),
            _cell(runs, "baseline.messages"),
            "",
            "",
        ),
        (
            "SMS segments",
            _cell(runs, "segments"),
            _cell(runs, "baseline.segments"),
            f"{ratio:.3f}",
            "",
        ),
        (
            "segments per touchpoint",
            _cell(runs, "segments_per_touchpoint", "{:.3f}"),
            _cell(runs, "baseline.segments_per_touchpoint", "{:.3f}"),
            "",
            f"<= {GOAL_SEGMENTS_PER_TOUCHPOINT}: {'met' if spt <= 0.5 else 'NOT met'}",
        ),
        ("messages in UCS-2", _cell(runs, "ucs2"), _cell(runs, "baseline.ucs2"), "", ""),
        (
            "accidental UCS-2 (look-alikes would do)",
            _cell(runs, "ucs2_accidental"),
            "",
            "",
            f"0: {'met' if accidental == 0 else 'NOT met'}",
        ),
        ("unavoidable UCS-2 (names in other scripts)", _cell(runs, "ucs2_unavoidable"), "", "", ""),
        (
            "digests per user in the month (median)",
            _cell(runs, "messages_per_user_month.median"),
            "",
            "",
            "",
        ),
        (
            "digests per user in the month (max)",
            _cell(runs, "messages_per_user_month.max"),
            "",
            "",
            "",
        ),
        (
            "most digests to one user in one day",
            _cell(runs, "max_messages_per_user_day"),
            "",
            "",
            "1",
        ),
    ]
    table = [
        "| figure | digests (reminders service) | one SMS per touchpoint | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows],
    ]
    lifecycle = _lifecycle_table(runs)
    conf = first["confirmations"]
    twin = first["punctuation_only_fold"]
    why = ""
    if spt > GOAL_SEGMENTS_PER_TOUCHPOINT and "single_item_digests" in first:
        singles, single_segments = first["single_item_digests"], first["single_item_segments"]
        rest = (first["segments"] - single_segments) / max(
            first["touchpoints_carried"] - singles, 1
        )
        why = (
            f"The goal is missed because a digest goes out in every window with anything due: "
            f"{singles} of {first['messages']} digests carried a single touchpoint for "
            f"{single_segments} segments (UCS-2 ones take two); the other digests come to "
            f"{rest:.3f} segments per touchpoint. Holding a lone, freshly due cadence item for "
            "a day (never a follow-up, birthday or escalation) would meet it, at the price of "
            "that day. Digest shapes (items in segments): "
            + ", ".join(f"{k}: {v}" for k, v in first.get("digest_shapes", {}).items())
            + "."
        )
    events = first["events"]
    example = first["examples"].get("GSM-7") or ""
    return "\n".join(
        [
            f"## {FIGURE}",
            "",
            f"Workload: {cfg['users']} users for {cfg['days']} days ({cfg['contacts_at_end']} "
            "contacts at the end, 20-60 a user in tiers A/B/C, names mixing plain, accented "
            "European, phone-typed punctuation, emoji and other scripts; ten time zones; default "
            f"policy: daily budget {cfg['daily_budget']} items, {cfg['max_segments']} segments a "
            "digest). Each day at each zone's 09:00 window the service's own `sweep()` and "
            "`recover()` run against the database; users answer digests by SMS through the "
            "reply conversation, log meetings, add contacts and record referrals through the "
            f"change-feed path (in the first run: {events.get('replies', 0)} replies, "
            f"{events.get('meetings_logged', 0)} meetings, {events.get('contacts_added', 0)} new "
            f"contacts, {events.get('referrals', 0)} referrals). Baseline in the same run: one "
            "SMS per delivered touchpoint with the wording of a reminder app, names as typed.",
            "",
            f"Command: `python -m bench.sms_cost{quick} --users {cfg['users']} --days "
            f"{cfg['days']}` ({len(runs)} run{'s' if len(runs) != 1 else ''}; "
            "the simulation is seeded, so runs differ only "
            f"in timing). Machine: {meta['machine']}, {meta['cpus']} CPUs, Python "
            f"{meta['python']}, database {database_of(runs)}; one run took "
            f"{_cell(runs, 'elapsed_s')} s.",
            "",
            *table,
            "",
            *lifecycle,
            *([why, ""] if why else []),
            "The same items with punctuation-only folding (as digests were composed before "
            "accents and emoji outside GSM-7 were folded): "
            f"{twin['ucs2_accidental']} accidental UCS-2 digests and {twin['segments']} "
            'segments. Replies to the user\'s SMS ("Logged touch with ...") are SMS too: '
            f"{conf['messages']} confirmations, {conf['segments']} segments, "
            f"{conf['ucs2_accidental']} of them accidental UCS-2 (the reply conversation "
            "folds them the same way); with them, "
            f"{first['segments_per_touchpoint_with_confirmations']:.3f} segments per "
            "touchpoint.",
            "",
            "A digest as sent:",
            "",
            "```",
            example,
            "```",
            "",
            "**Scaling (10x data).** Every figure here is per user and per day: a digest "
            "carries at most the daily budget and fits its segment budget however many contacts "
            "a user has, so 10x the users gives 10x the messages and segments and the same "
            "segments per touchpoint; 10x the contacts per user makes more items due a day, so "
            "more of them wait (left out, mean "
            f"{first['left_out_mean']:.1f} a digest here) while the message count stays at one "
            "a day. The naive design grows with touchpoints, the digest with users. Run time "
            f"grows with users x days: {per_user_day * 1000:.0f} ms of wall time per user-day "
            f"in this run ({cfg['concurrency']} databases at a time), so 1,000 users x 30 days "
            f"take about {per_user_day * 30_000 / 60:.0f} min here; the database's per-operation "
            "cost, not the composition, is what grows.",
            "",
            "**Database.** " + _database_note(runs, cfg),
            "",
        ]
    )


def _lifecycle_table(runs: list[dict[str, Any]]) -> list[str]:
    """Whether every digest line was true and every due item got its turn (runs before these
    figures existed give nothing)."""
    if not all("longest_wait_digests" in run for run in runs):
        return []
    wait = _med(runs, "longest_wait_digests")[2]
    stale = _med(runs, "stale_lines")[2]
    first = runs[0]
    reasons = ", ".join(f"{k}: {v}" for k, v in first.get("stale_reasons", {}).items()) or "none"
    return [
        "Lines that follow what the user did: the longest any due item waited, counted in its "
        "user's digests (1 = the first digest after it fell due carried it; a digest that "
        "carried it again after an unanswered nudge starts a new count), and the digest lines "
        "whose purpose was already met when sent (a referral check after the referral was won or "
        "lost, a 1-2-1 follow-up after a later touch of a closing kind, a first touch after an "
        "interaction, a birthday line on another day). The simulation moves referrals to won or "
        "lost and logs meetings, so both can happen.",
        "",
        "| figure | value | goal | met |",
        "| --- | --- | --- | --- |",
        f"| longest wait of a due item (digests) | {_cell(runs, 'longest_wait_digests')} | "
        f"<= {GOAL_LONGEST_WAIT} | {'met' if wait <= GOAL_LONGEST_WAIT else 'NOT met'} |",
        f"| digest lines stale when sent | {_cell(runs, 'stale_lines')} of "
        f"{_cell(runs, 'digest_lines')} ({_med(runs, 'stale_share')[0]:.2%}) | 0 | "
        f"{'met' if stale == 0 else 'NOT met'} |",
        "",
        f"Stale lines by reason (first run): {reasons}. Waits (digests: items): "
        + ", ".join(f"{k}: {v}" for k, v in first.get("waits", {}).items())
        + ".",
        "",
    ]


def _database_note(runs: list[dict[str, Any]], cfg: dict[str, Any]) -> str:
    """What the database the runs used scans, and why users are spread over databases."""
    if used_ferretdb(runs):
        scans = (
            "FerretDB with SQLite scans a whole collection for every query, `_id` lookups and "
            "updates included"
        )
    elif used_mongo_java_server(runs):
        scans = (
            "mongo-java-server serves `_id` and unique-index lookups from an index but builds no "
            "non-unique secondary index, so every query by user, due time or state scans its "
            "collection in memory"
        )
    else:
        scans = "The server uses the services' indexes"
    return (
        f"{scans}; users are spread over {cfg['databases']} databases of "
        f"{cfg['users_per_db']} so that each query reads one user's documents, as an index does "
        "on MongoDB. No SMS figure depends on the database's speed."
    )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users-per-db", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="20 users, 7 days")
    parser.add_argument("--json", type=Path, help="write the results as one JSON object here")
    args = parser.parse_args()
    if args.quick:
        args.users, args.days = 20, 7
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    print_summary(result)
    if args.json:
        args.json.write_text(json.dumps(result, default=str, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
