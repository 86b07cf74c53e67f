"""The SMS reply grammar: text in, a structured command out (pure functions, no I/O).

Case-insensitive, tolerant of punctuation, filler words and common typos of the command word.
Names are left as phrases; the service resolves them against the user's contacts, trying the
longest leading run of words that matches (so ``MET Dana lunch`` finds Dana, notes "lunch").
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from services.reminders.scheduling import parse_duration

ActionKind = Literal[
    "touched",
    "one_to_one",
    "snoozed",
    "skipped",
    "note",
    "referral_given",
    "referral_received",
    "paused",
    "resumed",
    "undone",
    "help",
    "who",
]
CommandKind = ActionKind | Literal["unknown"]

# Command words and their synonyms; a typo within a small edit distance is accepted too.
KEYWORDS: dict[str, CommandKind] = {
    "done": "touched",
    "did": "touched",
    "touched": "touched",
    "touch": "touched",
    "complete": "touched",
    "completed": "touched",
    "contacted": "touched",
    "called": "touched",
    "texted": "touched",
    "met": "one_to_one",
    "meet": "one_to_one",
    "meeting": "one_to_one",
    "121": "one_to_one",
    "1to1": "one_to_one",
    "snooze": "snoozed",
    "later": "snoozed",
    "postpone": "snoozed",
    "remind": "snoozed",
    "delay": "snoozed",
    "skip": "skipped",
    "ignore": "skipped",
    "dismiss": "skipped",
    "pass": "skipped",
    "note": "note",
    "notes": "note",
    "ref": "referral_given",
    "referral": "referral_given",
    "referred": "referral_given",
    "gave": "referral_given",
    "got": "referral_received",
    "received": "referral_received",
    "who": "who",
    "whos": "who",
    "list": "who",
    "due": "who",
    "pause": "paused",
    "vacation": "paused",
    "holiday": "paused",
    "resume": "resumed",
    "unpause": "resumed",
    "undo": "undone",
    "oops": "undone",
    "revert": "undone",
    "help": "help",
    "commands": "help",
    "info": "help",
    "?": "help",
}

DEFAULT_SNOOZE = timedelta(days=7)
DEFAULT_PAUSE = timedelta(days=365)
_FILLER = {"please", "pls", "plz", "with", "w", "the", "my", "for", "to", "i", "have", "just"}
_NEXT_ACTION = re.compile(
    r"(?:^|[,;.]\s*|\s)(?:agreed|next(?: action)?|action|todo|to do)\s*:?\s+", re.I
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a contact: a digest item number or a name phrase."""

    number: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """What a reply asks for."""

    kind: CommandKind
    refs: tuple[Ref, ...] = ()
    notes: str = ""
    next_action: str = ""
    duration: timedelta | None = None
    for_name: str = ""
    description: str = ""
    # For a name ref: words after the resolved name become notes; the service fills them in.
    name_tail_is_notes: bool = False
    raw: str = field(default="", compare=False)


def normalize(text: str) -> str:
    """Collapse whitespace, drop trailing punctuation and split glued command numbers.

    Control characters become spaces: they belong in no name, note or answer, and contacts
    refuses any text that holds one (422).
    """
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").strip()
    text = re.sub(r"\s+", " ", text)
    text = text.strip(" .!?;")
    text = re.sub(r"^([A-Za-z]+)(\d)", r"\1 \2", text)
    return text


def _keyword(word: str) -> CommandKind | None:
    lowered = re.sub(r"[^a-z0-9?]", "", word.lower())
    if not lowered:
        return None
    if lowered in KEYWORDS:
        return KEYWORDS[lowered]
    if len(lowered) < 3 or lowered.isdigit():
        return None
    limit = 2 if len(lowered) >= 6 else 1
    best = min(
        (k for k in KEYWORDS if len(k) >= 3 and not k.isdigit()),
        # Ties go to a keyword the word begins (a truncated "paus" is "pause", not "pass").
        key=lambda k: (_distance(lowered, k), not k.startswith(lowered)),
    )
    if _distance(lowered, best) <= limit:
        return KEYWORDS[best]
    close = difflib.get_close_matches(lowered, [k for k in KEYWORDS if len(k) >= 3], 1, 0.8)
    return KEYWORDS[close[0]] if close else None


def _distance(a: str, b: str) -> int:
    """Edit distance counting an adjacent swap as one edit (the commonest thumb typo)."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _numbers(text: str) -> tuple[list[int], str]:
    """Leading item numbers (``1 3``, ``1,3``, ``1 and 3``, ``#2``) and the rest of the text."""
    numbers: list[int] = []
    rest = text
    # "1:" is item 1 followed by text ("NOTE 1: moving to Austin"); "1:30" is a time, not an item.
    pattern = re.compile(r"^\s*(?:#|no\.?\s*|and\s+|&\s*|,\s*)?(\d{1,2})(?!\d|:\d)[\s,]*", re.I)
    while True:
        match = pattern.match(rest)
        if not match:
            break
        numbers.append(int(match.group(1)))
        rest = rest[match.end() :]
    return numbers, rest.strip()


def _split_name(text: str) -> tuple[str, str]:
    """Split ``name: rest`` / ``name, rest`` / ``name - rest``; no separator means all name."""
    match = re.match(r"^(.*?)\s*(?::|,|\s-\s|\s\u2013\s)\s*(.*)$", text)
    if match and match.group(1):
        return match.group(1).strip(), match.group(2).strip()
    return text.strip(), ""


def _refs(text: str) -> tuple[tuple[Ref, ...], str]:
    numbers, rest = _numbers(text)
    if numbers:
        return tuple(Ref(number=n) for n in numbers), rest
    return (), rest


def _strip_filler(text: str) -> str:
    words = text.split(" ")
    while words and words[0].lower() in _FILLER:
        words.pop(0)
    return " ".join(words)


def _take_next_action(text: str) -> tuple[str, str]:
    match = _NEXT_ACTION.search(text)
    if not match:
        return text.strip(" ,;"), ""
    return text[: match.start()].strip(" ,;"), text[match.end() :].strip(" ,;.")


def _trailing_duration(text: str) -> tuple[str, timedelta | None]:
    words = text.split(" ")
    for take in (2, 1):
        if len(words) >= take:
            tail = " ".join(words[-take:])
            tail = re.sub(r"^(?:for|till|until|in)\s+", "", tail, flags=re.I)
            # A bare number at the end is an item number, not a duration.
            duration = None if tail.isdigit() else parse_duration(tail)
            if duration is not None:
                return " ".join(words[:-take]).strip(), duration
    if len(words) >= 3 and words[-3].lower() in ("for", "in"):
        duration = parse_duration(" ".join(words[-2:]))
        if duration is not None:
            return " ".join(words[:-3]).strip(), duration
    return text, None


def parse(text: str) -> Command:
    """Interpret one SMS reply."""
    raw = text
    text = normalize(text)
    if not text:
        return Command("unknown", raw=raw)
    numbers, rest = _numbers(text)
    if numbers and not rest:
        return Command("touched", tuple(Ref(number=n) for n in numbers), raw=raw)
    first, _, tail = text.partition(" ")
    kind = _keyword(first)
    # "GOT REF from Dana: ..." and "REF FROM Dana" are referrals received.
    if kind == "referral_given" and re.match(r"^from\b", tail, re.I):
        kind = "referral_received"
    if kind is None:
        return Command("unknown", raw=raw)
    tail = tail.strip()
    if kind in ("help", "who", "undone", "resumed"):
        return Command(kind, raw=raw)
    if kind == "paused":
        duration = parse_duration(re.sub(r"^(?:for|till|until)\s+", "", tail, flags=re.I))
        if tail and duration is None:
            return Command("unknown", raw=raw)
        return Command("paused", duration=duration or DEFAULT_PAUSE, raw=raw)
    if kind == "touched":
        tail = _strip_filler(tail)
        refs, rest = _refs(tail)
        if refs:
            return Command("touched", refs, notes=rest, raw=raw)
        if not tail:
            return Command("touched", (Ref(number=1),), raw=raw)
        name, notes = _split_name(tail)
        return Command("touched", (Ref(name=name),), notes=notes, raw=raw)
    if kind == "skipped":
        refs, rest = _refs(_strip_filler(tail))
        if refs:
            return Command("skipped", refs, raw=raw)
        if not rest:
            return Command("unknown", raw=raw)
        return Command("skipped", (Ref(name=_split_name(rest)[0]),), raw=raw)
    if kind == "snoozed":
        rest, duration = _trailing_duration(_strip_filler(tail))
        refs, rest = _refs(rest)
        duration = duration or DEFAULT_SNOOZE
        if refs:
            return Command("snoozed", refs, duration=duration, raw=raw)
        if not rest:
            return Command("unknown", raw=raw)
        return Command("snoozed", (Ref(name=_split_name(rest)[0]),), duration=duration, raw=raw)
    if kind == "one_to_one":
        tail = _strip_filler(tail)
        refs, rest = _refs(tail)
        body, next_action = _take_next_action(rest)
        if refs:
            return Command("one_to_one", refs, notes=body, next_action=next_action, raw=raw)
        if not body:
            return Command("unknown", raw=raw)
        name, notes = _split_name(body)
        return Command(
            "one_to_one",
            (Ref(name=name),),
            notes=notes,
            next_action=next_action,
            name_tail_is_notes=True,
            raw=raw,
        )
    if kind == "note":
        refs, rest = _refs(tail)
        if refs and rest:
            return Command("note", refs[:1], notes=rest.lstrip(": "), raw=raw)
        name, notes = _split_name(rest)
        if not name:
            return Command("unknown", raw=raw)
        return Command("note", (Ref(name=name),), notes=notes, name_tail_is_notes=True, raw=raw)
    if kind == "referral_received":
        tail = re.sub(r"^(?:a\s+)?(?:ref(?:erral)?s?\b)?\s*(?:from\b)?\s*", "", tail, flags=re.I)
        refs, rest = _refs(tail)
        if refs:
            return Command("referral_received", refs[:1], description=rest.lstrip(":- "), raw=raw)
        name, description = _split_name(rest)
        if not name:
            return Command("unknown", raw=raw)
        return Command(
            "referral_received",
            (Ref(name=name),),
            description=description,
            name_tail_is_notes=True,
            raw=raw,
        )
    # referral given: "REF Dana > Sam Lee plumber", "REF 2 to Sam Lee: plumber"
    tail = re.sub(r"^(?:ref(?:erral)?\s+)?(?:for\s+)?", "", tail, flags=re.I)
    match = re.match(r"^(.*?)\s*(?:->|>|→|\bto\b)\s*(.*)$", tail, re.I)
    if not match or not match.group(1).strip():
        return Command("unknown", raw=raw)
    who, target = match.group(1).strip(), match.group(2).strip()
    for_name, description = _split_target(target)
    refs, rest = _refs(who)
    ref = refs[0] if refs else Ref(name=who)
    if refs and rest:
        return Command("unknown", raw=raw)
    return Command("referral_given", (ref,), for_name=for_name, description=description, raw=raw)


def _split_target(target: str) -> tuple[str, str]:
    """``Sam Lee plumber`` -> (``Sam Lee``, ``plumber``): capitalised words name the person."""
    name, description = _split_name(target)
    if description:
        return name, description
    words = target.split(" ")
    name_words: list[str] = []
    for word in words:
        if word[:1].isupper() and len(name_words) < 3:
            name_words.append(word)
        else:
            break
    if not name_words:
        return target, ""
    return " ".join(name_words), " ".join(words[len(name_words) :])


HELP_TEXT = (
    "touchbase: reply 1 (done), MET 1 coffee, SNOOZE 1 2w, SKIP 1, NOTE Dana: text, "
    "REF Dana > Sam plumber, GOT REF from Dana: job, WHO, PAUSE 2w, RESUME, UNDO."
)
