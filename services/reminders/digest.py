"""Digest composition: the most important due items as numbered lines within a segment budget."""

from __future__ import annotations

import importlib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SegmentCounter = Callable[[str], tuple[str, int]]

# Characters of the GSM 03.38 basic set (plus the extension table, which costs two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")

# Typographic characters that cost a whole UCS-2 message for no benefit.
_ASCII_FOR = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2022": "-",
}


def _fallback_count_segments(text: str) -> tuple[str, int]:
    """Count SMS segments (GSM-7 or UCS-2).

    Private stand-in for ``shared.sms.count_segments``, used only while that module is missing;
    to be removed once it exists.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        return "GSM-7", 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else -(-units // 67)


def segment_counter() -> SegmentCounter:
    """``shared.sms.count_segments`` when available, else the private fallback above."""
    try:
        module = importlib.import_module("shared.sms")
    except ImportError:
        return _fallback_count_segments
    counter: SegmentCounter = module.count_segments
    return counter


def gsm_friendly(text: str) -> str:
    """Replace smart quotes, dashes and ellipses with their GSM-7 equivalents."""
    return "".join(_ASCII_FOR.get(ch, ch) for ch in text)


def fold_accents(text: str) -> str:
    """Strip accents (for matching, never for display)."""
    normal = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in normal if not unicodedata.combining(ch))


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One due touchpoint as it appears in a digest."""

    touchpoint_id: str
    contact_id: str | None
    contact_name: str
    line: str
    priority: float


@dataclass(frozen=True, slots=True)
class Digest:
    """A composed digest: the SMS body, the numbered items it carries and those left out."""

    body: str
    items: tuple[DigestItem, ...]
    left_out: tuple[DigestItem, ...]
    encoding: str
    segments: int


FOOTER = "Reply 1 when done, SNOOZE 1 2w, MET 1 coffee, HELP."
SHORT_FOOTER = "Reply 1=done, SNOOZE 1, HELP"


def _render(header: str, lines: Sequence[str], footer: str) -> str:
    numbered = [f"{index}) {line}" for index, line in enumerate(lines, start=1)]
    return "\n".join([header, *numbered, footer])


def compose(
    items: Sequence[DigestItem],
    *,
    max_segments: int,
    max_items: int,
    counter: SegmentCounter | None = None,
) -> Digest | None:
    """Fit the highest-priority items into ``max_segments`` segments; ``None`` if none fit.

    Items are taken in priority order; an item that does not fit waits for the next window
    (later, smaller items are not squeezed in ahead of it, so order stays by importance).
    """
    count = counter or segment_counter()
    ordered = sorted(items, key=lambda item: -item.priority)
    chosen: list[DigestItem] = []
    total = len(ordered)
    for footer in (FOOTER, SHORT_FOOTER):
        chosen = []
        for item in ordered[:max_items]:
            candidate = [*chosen, item]
            header = _header(len(candidate), total)
            body = _render(header, [gsm_friendly(i.line) for i in candidate], footer)
            if count(body)[1] > max_segments:
                break
            chosen = candidate
        if chosen:
            break
    if not chosen:
        return None
    header = _header(len(chosen), total)
    body = _render(header, [gsm_friendly(i.line) for i in chosen], footer)
    encoding, segments = count(body)
    left = tuple(i for i in ordered if i not in chosen)
    return Digest(body, tuple(chosen), left, encoding, segments)


def _header(shown: int, total: int) -> str:
    if total > shown:
        return f"touchbase: {shown} of {total} due"
    return "touchbase: 1 due" if shown == 1 else f"touchbase: {shown} due"
