"""The reply grammar: a table of phrasings, right and wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.reminders.replies import DEFAULT_PAUSE, DEFAULT_SNOOZE, Ref, parse

N = Ref  # shorthand


@pytest.mark.parametrize(
    ("text", "kind", "refs"),
    [
        ("1", "touched", (N(1),)),
        (" 2. ", "touched", (N(2),)),
        ("1 3", "touched", (N(1), N(3))),
        ("1,3", "touched", (N(1), N(3))),
        ("1 and 3", "touched", (N(1), N(3))),
        ("DONE 1 3", "touched", (N(1), N(3))),
        ("done 2", "touched", (N(2),)),
        ("Done #2!", "touched", (N(2),)),
        ("DONE", "touched", (N(1),)),
        ("dnoe 1", "touched", (N(1),)),
        ("Done1", "touched", (N(1),)),
        ("did 4", "touched", (N(4),)),
        ("done Dana", "touched", (N(name="Dana"),)),
        ("SKIP 3", "skipped", (N(3),)),
        ("skip dana", "skipped", (N(name="dana"),)),
        ("Skp 3", "skipped", (N(3),)),
        ("MET 2 coffee", "one_to_one", (N(2),)),
        ("met 2", "one_to_one", (N(2),)),
        ("meet 1 lunch", "one_to_one", (N(1),)),
        ("MET Dana lunch, agreed intro to Sam", "one_to_one", (N(name="Dana lunch"),)),
        ("NOTE Dana: son starts college", "note", (N(name="Dana"),)),
        ("note 2 loves golf", "note", (N(2),)),
        ("WHO", "who", ()),
        ("who?", "who", ()),
        ("whos due", "who", ()),
        ("HELP", "help", ()),
        ("help me", "help", ()),
        ("UNDO", "undone", ()),
        ("undo!", "undone", ()),
        ("oops", "undone", ()),
        ("RESUME", "resumed", ()),
        ("resume please", "resumed", ()),
        ("hello there", "unknown", ()),
        ("", "unknown", ()),
        ("???", "unknown", ()),
        ("MET", "unknown", ()),
        ("SKIP", "unknown", ()),
        ("SNOOZE", "unknown", ()),
        ("PAUSE forever and ever", "unknown", ()),
        ("REF Dana", "unknown", ()),
        ("NOTE", "unknown", ()),
        ("45 dollars", "unknown", ()),
        ("x", "unknown", ()),
    ],
)
def test_kinds_and_refs(text: str, kind: str, refs: tuple[Ref, ...]) -> None:
    cmd = parse(text)
    assert cmd.kind == kind, text
    assert cmd.refs == refs, text


@pytest.mark.parametrize(
    ("text", "refs", "duration"),
    [
        ("SNOOZE 1 2w", (N(1),), timedelta(weeks=2)),
        ("snooze 1 for 3 days", (N(1),), timedelta(days=3)),
        ("Snooze 2 tomorrow", (N(2),), timedelta(days=1)),
        ("LATER 2", (N(2),), DEFAULT_SNOOZE),
        ("later 2 1m", (N(2),), timedelta(days=30)),
        ("snoze 1 2 weeks", (N(1),), timedelta(weeks=2)),
        ("SNOOZE Dana 2w", (N(name="Dana"),), timedelta(weeks=2)),
        ("snooze dana lee", (N(name="dana lee"),), DEFAULT_SNOOZE),
    ],
)
def test_snooze(text: str, refs: tuple[Ref, ...], duration: timedelta) -> None:
    cmd = parse(text)
    assert cmd.kind == "snoozed"
    assert cmd.refs == refs
    assert cmd.duration == duration


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("PAUSE 2w", timedelta(weeks=2)),
        ("pause for 10 days", timedelta(days=10)),
        ("PAUSE", DEFAULT_PAUSE),
        ("vacation 1 month", timedelta(days=30)),
        ("paus 3d", timedelta(days=3)),
    ],
)
def test_pause(text: str, duration: timedelta) -> None:
    cmd = parse(text)
    assert cmd.kind == "paused"
    assert cmd.duration == duration


def test_met_notes_and_next_action() -> None:
    cmd = parse("MET 2 coffee")
    assert cmd.notes == "coffee"
    cmd = parse("MET Dana lunch, agreed intro to Sam")
    assert cmd.refs == (N(name="Dana lunch"),)
    assert cmd.next_action == "intro to Sam"
    assert cmd.name_tail_is_notes
    cmd = parse("met 1 coffee next: send proposal")
    assert cmd.notes == "coffee"
    assert cmd.next_action == "send proposal"


def test_note_text() -> None:
    cmd = parse("NOTE Dana: son starts college")
    assert cmd.notes == "son starts college"
    assert parse("note 2 loves golf").notes == "loves golf"


@pytest.mark.parametrize(
    ("text", "ref", "for_name", "description"),
    [
        ("REF Dana > Sam Lee plumber", N(name="Dana"), "Sam Lee", "plumber"),
        ("ref dana -> Sam Lee: plumber", N(name="dana"), "Sam Lee", "plumber"),
        ("REFERRAL Dana Lee to Sam kitchen job", N(name="Dana Lee"), "Sam", "kitchen job"),
        ("REF 2 > Sam Lee", N(2), "Sam Lee", ""),
        ("REF Dana > a plumber", N(name="Dana"), "a plumber", ""),
    ],
)
def test_referral_given(text: str, ref: Ref, for_name: str, description: str) -> None:
    cmd = parse(text)
    assert cmd.kind == "referral_given"
    assert cmd.refs == (ref,)
    assert cmd.for_name == for_name
    assert cmd.description == description


@pytest.mark.parametrize(
    ("text", "ref", "description"),
    [
        ("GOT REF from Dana: kitchen remodel", N(name="Dana"), "kitchen remodel"),
        ("got referral from dana lee - kitchen remodel", N(name="dana lee"), "kitchen remodel"),
        ("Got a ref from Dana", N(name="Dana"), ""),
        ("REF FROM Dana: roof", N(name="Dana"), "roof"),
        ("got ref 2 roof job", N(2), "roof job"),
    ],
)
def test_referral_received(text: str, ref: Ref, description: str) -> None:
    cmd = parse(text)
    assert cmd.kind == "referral_received"
    assert cmd.refs == (ref,)
    assert cmd.description == description
