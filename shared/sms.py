"""SMS text rules: GSM-7 detection, segment counting as Twilio bills it, and GSM-7 transliteration.

A message is sent as GSM-7 when every character is in the GSM 03.38 basic set or its extension
table; one character outside forces UCS-2 for the whole message. GSM-7 fits 160 septets in one
segment or 153 per segment when concatenated, and an extension character (``^{}\\[~]|€`` and form
feed) takes two septets (escape + character) that are never split across segments. UCS-2 fits
70 UTF-16 code units in one segment or 67 per segment, never splitting a surrogate pair.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

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
    "\u00e7": "Ç",  # GSM-7 has only the capital c-cedilla
}


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent in the GSM-7 alphabet."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def gsm7_septets(text: str) -> int:
    """Septets ``text`` takes in GSM-7 (extension characters count double); text must be GSM-7."""
    return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)


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
    units = _units(text, encoding)
    single, multi = (SINGLE_GSM7, MULTI_GSM7) if encoding == "GSM-7" else (SINGLE_UCS2, MULTI_UCS2)
    if sum(units) <= single:
        return encoding, 1
    return encoding, _pack(units, multi)


def to_gsm7(text: str) -> str:
    """``text`` with smart quotes, dashes, ellipses and odd spaces replaced by GSM-7 look-alikes.

    Characters without a look-alike (emoji, most accented letters) are kept, so the result may
    still need UCS-2; check with :func:`is_gsm7`.
    """
    return "".join(_TRANSLITERATIONS.get(ch, ch) for ch in text)


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
