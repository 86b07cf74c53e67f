"""Folding text into GSM-7 for display: look-alikes replace only what GSM-7 lacks."""
# ruff: noqa: RUF001  (smart quotes, dashes and accented letters are the point of these tests)

from __future__ import annotations

import pytest

from shared.sms import count_segments, fold_to_gsm7, is_gsm7, prefer_gsm7, to_gsm7


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        # Letters GSM-7 has stay as written.
        ("José Ségolène Søren Ñuño Müller Åsa Ødegaard Çelik", None),
        # Accented Latin letters outside GSM-7 lose only their accent.
        ("Zoë", "Zoe"),
        ("José García", "José Garcia"),
        ("Núñez", "Nuñez"),
        ("François", "Francois"),
        ("Dvořák", "Dvorak"),
        ("Ioana Ștefan", "Ioana Stefan"),
        ("Siobhán", "Siobhan"),
        # Letters of their own with a plain look-alike.
        ("Łukasz Wąs", "Lukasz Was"),
        ("Đorđe", "Dorde"),
        ("Œuvre", "OEuvre"),
        # Typographic punctuation, as phones' keyboards type it.
        ("Dana O’Neil – “big” client…", 'Dana O\'Neil - "big" client...'),
        # Emoji and symbols are dropped with the space that set them off.
        ("Dana 🏀: reconnect", "Dana: reconnect"),
        ("Sam 🎸 Park", "Sam Park"),
        ("Mom ❤️", "Mom"),
        ("👍🏽 Kim", "Kim"),
        ("1) 👩‍👩‍👧 family: hi", "1) family: hi"),
        # A decomposed accent is composed first (é is GSM-7).
        ("Rene\u0301e", "Renée"),
    ],
)
def test_fold_to_gsm7_replaces_only_what_gsm7_lacks(text: str, folded: str | None) -> None:
    expected = text if folded is None else folded
    assert fold_to_gsm7(text) == expected
    assert is_gsm7(expected)


@pytest.mark.parametrize("text", ["李华", "محمد علي", "مُحَمَّد", "Νίκος", "Дмитрий", "さくら"])
def test_other_scripts_are_kept(text: str) -> None:
    assert fold_to_gsm7(text) == text
    assert not is_gsm7(fold_to_gsm7(text))


def test_prefer_gsm7_folds_only_when_it_saves_the_encoding() -> None:
    # Everything folds into GSM-7: one segment of 160 instead of 70 characters.
    text = "Zoë 🎉 and Łukasz – coffee…"
    assert prefer_gsm7(text) == "Zoe and Lukasz - coffee..."
    assert count_segments(prefer_gsm7(text))[0] == "GSM-7"
    # A Chinese name needs UCS-2 anyway: accents and emoji stay as written, punctuation folds.
    mixed = "李华, Zoë 🎉 – coffee"
    assert prefer_gsm7(mixed) == "李华, Zoë 🎉 - coffee"
    # Already GSM-7: unchanged.
    assert prefer_gsm7("Ségolène") == "Ségolène"


def test_to_gsm7_keeps_c_cedilla_as_written() -> None:
    # GSM-7 has only the capital; folding it is the display fold's job (ç -> c), never Ç.
    assert to_gsm7("François") == "François"
    assert fold_to_gsm7("François") == "Francois"
