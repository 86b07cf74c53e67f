"""Segment counting as Twilio bills it, and the GSM-7 helpers reminders use to compose digests."""
# ruff: noqa: RUF001  (smart quotes and dashes are the point of these tests)

from __future__ import annotations

import pytest

from shared.sms import count_segments, gsm7_septets, is_gsm7, to_gsm7, truncate_to_segments

CASES = [
    ("", "GSM-7", 0),
    ("hello", "GSM-7", 1),
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("a" * 459, "GSM-7", 3),
    ("a" * 460, "GSM-7", 4),
    # Extension characters take two septets.
    ("€" * 80, "GSM-7", 1),
    ("€" * 81, "GSM-7", 2),
    ("a" * 159 + "^", "GSM-7", 2),
    ("a" * 158 + "{", "GSM-7", 1),
    ("[]{}\\~|^€", "GSM-7", 1),
    # An escape pair is never split: 152 septets + one extension character needs a new segment.
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
    # GSM-7 accented letters that stay single-septet.
    ("é" * 160, "GSM-7", 1),
    ("Ñ" * 161, "GSM-7", 2),
    # One character outside GSM-7 forces UCS-2 for the whole message.
    ("a" * 69 + "ç", "UCS-2", 1),
    ("a" * 70, "GSM-7", 1),
    ("ü" * 10 + "’", "UCS-2", 1),
    ("x" * 70 + "’", "UCS-2", 2),
    ("’" * 70, "UCS-2", 1),
    ("’" * 71, "UCS-2", 2),
    ("’" * 134, "UCS-2", 2),
    ("’" * 135, "UCS-2", 3),
    # Emoji are two UTF-16 code units, never split across segments.
    ("👍" * 35, "UCS-2", 1),
    ("👍" * 36, "UCS-2", 2),
    ("a" + "👍" * 33 + "b", "UCS-2", 1),
    ("a" * 66 + "👍" + "a" * 10, "UCS-2", 2),
    ("€ and 😀", "UCS-2", 1),
]


@pytest.mark.parametrize(("text", "encoding", "segments"), CASES)
def test_count_segments(text: str, encoding: str, segments: int) -> None:
    assert count_segments(text) == (encoding, segments)


def test_extended_characters_count_double() -> None:
    assert gsm7_septets("a€b|") == 6
    assert is_gsm7("Time to reconnect with Dana Lee (Lee Insurance) @ 10:00 {ok}")
    assert not is_gsm7("Dana’s")


def test_to_gsm7_transliterates_smart_punctuation() -> None:
    text = "“Dana’s” 1–2–1 — coffee…\u00a0ok"
    converted = to_gsm7(text)
    assert converted == '"Dana\'s" 1-2-1 - coffee... ok'
    assert count_segments(converted)[0] == "GSM-7"
    # Characters with no GSM-7 look-alike are kept.
    assert to_gsm7("hi 👍") == "hi 👍"


@pytest.mark.parametrize(("text", "limit"), [("a" * 500, 1), ("word " * 100, 2), ("’" * 300, 2)])
def test_truncate_to_segments(text: str, limit: int) -> None:
    cut = truncate_to_segments(text, limit)
    assert count_segments(cut)[1] <= limit
    assert cut.endswith("...")
    assert truncate_to_segments("short", 1) == "short"
