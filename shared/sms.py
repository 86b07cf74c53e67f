"""SMS text rules: GSM-7 detection, segment counting as Twilio bills it, and GSM-7 transliteration.

A message is sent as GSM-7 when every character is in the GSM 03.38 basic set or its extension
table; one character outside forces UCS-2 for the whole message. GSM-7 fits 160 septets in one
segment or 153 per segment when concatenated, and an extension character (``^{}\\[~]|€`` and form
feed) takes two septets (escape + character) that are never split across segments. UCS-2 fits
70 UTF-16 code units in one segment or 67 per segment, never splitting a surrogate pair.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENDED

SINGLE_GSM7 = 160
MULTI_GSM7 = 153
SINGLE_UCS2 = 70
MULTI_UCS2 = 67

# Typographic characters that phones and editors insert and that have a GSM-7 look-alike;
# replacing them keeps a message in GSM-7 (160 characters a segment instead of 70).
_TRANSLITERATIONS = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark / apostrophe
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u00b4": "'",  # acute accent
    "`": "'",
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',  # double prime
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # ellipsis
    "\u00a0": " ",  # no-break space
    "\u2002": " ",
    "\u2003": " ",
    "\u2009": " ",  # thin space
    "\u202f": " ",
    "\u200b": "",  # zero-width space
    "\ufeff": "",
    "\u2022": "-",  # bullet
    "\u00b7": "-",
    "\t": " ",
}


# Letters outside GSM-7 that stripping accents does not reach (they are letters of their own).
_LETTER_LOOKALIKES = {
    "\u0141": "L",  # Ł
    "\u0142": "l",  # ł
    "\u0110": "D",  # Đ
    "\u0111": "d",  # đ
    "\u00d0": "D",  # Ð
    "\u00f0": "d",  # ð
    "\u0126": "H",  # Ħ
    "\u0127": "h",  # ħ
    "\u0131": "i",  # dotless i
    "\u0152": "OE",
    "\u0153": "oe",
    "\u00de": "Th",  # Þ
    "\u00fe": "th",  # þ
    "\u0166": "T",
    "\u0167": "t",
    "\u014a": "NG",
    "\u014b": "ng",
    "\u0138": "k",
    "\u017f": "s",  # long s
}
# Unicode categories of decoration with no GSM-7 look-alike: emoji and other symbols, their
# modifiers (skin tones), joiners and variation selectors. Dropped when folding for GSM-7.
_DECORATION = frozenset({"So", "Sk", "Cf", "Co"})
_MARKS = frozenset({"Mn", "Me"})
_GAP = "\x00"


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent in the GSM-7 alphabet."""
    # One set operation in C: the digest composer asks this for every candidate message.
    return _GSM7_ALL.issuperset(text)


def gsm7_septets(text: str) -> int:
    """Septets ``text`` takes in GSM-7 (extension characters count double); text must be GSM-7."""
    return len(text) + sum(1 for ch in text if ch in GSM7_EXTENDED)


def _units(text: str, encoding: Encoding) -> list[int]:
    # Width of each character in the encoding's unit (septet or UTF-16 code unit).
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENDED else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(units: list[int], per_segment: int) -> int:
    # Greedy packing that never splits one character (escape pair, surrogate pair) in two.
    segments, used = 1, 0
    for width in units:
        if used + width > per_segment:
            segments += 1
            used = 0
        used += width
    return segments


def count_segments(text: str) -> tuple[Encoding, int]:
    """The encoding (``"GSM-7"`` or ``"UCS-2"``) and the segments Twilio bills for ``text``."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    if not text:
        return encoding, 0
    single, multi = (SINGLE_GSM7, MULTI_GSM7) if encoding == "GSM-7" else (SINGLE_UCS2, MULTI_UCS2)
    width = (
        gsm7_septets(text)
        if encoding == "GSM-7"
        else len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
    )
    if width <= single:
        return encoding, 1
    return encoding, _pack(_units(text, encoding), multi)


def to_gsm7(text: str) -> str:
    """``text`` with smart quotes, dashes, ellipses and odd spaces replaced by GSM-7 look-alikes.

    Characters without a look-alike (emoji, most accented letters) are kept, so the result may
    still need UCS-2; check with :func:`is_gsm7`.
    """
    return "".join(_TRANSLITERATIONS.get(ch, ch) for ch in text)


def _fold_char(ch: str) -> str | None:
    # The GSM-7 look-alike of one character, or None when it has none.
    if ch in _LETTER_LOOKALIKES:
        return _LETTER_LOOKALIKES[ch]
    # Accented Latin letters (and compatibility forms such as ligatures or full-width letters):
    # the letter without its marks, when that is GSM-7.
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", ch) if unicodedata.category(c) not in _MARKS
    )
    if plain and is_gsm7(plain):
        return plain
    return None


def fold_to_gsm7(text: str) -> str:
    """``text`` with every character outside GSM-7 that has a plain look-alike replaced by it.

    Letters GSM-7 has (é, è, ñ, ü, ø, å, ...) are kept as they are; other accented Latin letters
    lose their accent (ë -> e, í -> i, Ł -> L), typographic punctuation becomes its ASCII
    look-alike (see :func:`to_gsm7`), and emoji and other symbols are dropped together with the
    space that set them off. Letters of other scripts (Chinese, Arabic, Greek, Cyrillic, ...)
    have no look-alike and are kept, so the result may still need UCS-2.
    """
    out: list[str] = []
    kept_other = False  # the last character kept is outside GSM-7 (a letter of another script)
    for ch in to_gsm7(unicodedata.normalize("NFC", text)):
        if ch in GSM7_BASIC or ch in GSM7_EXTENDED:
            out.append(ch)
            kept_other = False
            continue
        category = unicodedata.category(ch)
        if category in _MARKS and kept_other:
            out.append(ch)  # a mark of another script's letter (Arabic vowels, ...) stays
            continue
        folded = _fold_char(ch)
        if folded is not None:
            out.append(folded)
            kept_other = False
        elif category in _DECORATION or category in _MARKS:
            out.append(_GAP)
        else:
            out.append(ch)
            kept_other = True
    return _close_gaps("".join(out))


def _close_gaps(text: str) -> str:
    # A dropped symbol and the spaces around it become one space between two words and nothing
    # next to punctuation or at the edge of a line ("Dana \U0001f3c0: hi" -> "Dana: hi").
    if _GAP not in text:
        return text
    text = re.sub(r" *\x00[\x00 ]*", _GAP, text)
    text = re.sub(r"(?<=[^\s\x00(])\x00(?=[^\s\x00:,.;)!?])", " ", text)
    return text.replace(_GAP, "")


def prefer_gsm7(text: str) -> str:
    """``text`` ready to send: in GSM-7 whenever look-alikes can make it so.

    Typographic punctuation is always replaced (:func:`to_gsm7`). Accents and emoji are folded
    away (:func:`fold_to_gsm7`) only when that brings the whole text into GSM-7; when a letter
    of another script needs UCS-2 anyway, accents and emoji are kept as written.
    """
    light = to_gsm7(text)
    if is_gsm7(light):
        return light
    folded = fold_to_gsm7(text)
    return folded if is_gsm7(folded) else light


def truncate_to_segments(text: str, max_segments: int, suffix: str = "...") -> str:
    """The longest prefix of ``text`` (plus ``suffix`` when cut) that fits in ``max_segments``."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if count_segments(text)[1] <= max_segments:
        return text
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count_segments(text[:mid].rstrip() + suffix)[1] <= max_segments:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + suffix
