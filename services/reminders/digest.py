"""Digest composition: the most important due items as numbered lines within a segment budget."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from shared.sms import count_segments, fold_to_gsm7, is_gsm7, to_gsm7

SegmentCounter = Callable[[str], tuple[str, int]]


def segment_counter() -> SegmentCounter:
    """The shared segment counter (``shared.sms.count_segments``)."""
    return count_segments


def gsm_friendly(text: str) -> str:
    """Replace smart quotes, dashes and ellipses with their GSM-7 look-alikes."""
    return to_gsm7(text)


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
TINY_FOOTER = "Reply 1=done, SNOOZE 1"


def _render(header: str, lines: Sequence[str], footer: str) -> str:
    numbered = [f"{index}) {line}" for index, line in enumerate(lines, start=1)]
    return "\n".join([header, *numbered, footer])


# Composing tries every prefix of the items with two footers, so each line would otherwise be
# converted again for every candidate message (the sweep's hottest code when profiled).
@lru_cache(maxsize=4096)
def _light_line(line: str) -> str:
    return gsm_friendly(line)


@lru_cache(maxsize=4096)
def _folded_line(line: str) -> str:
    return fold_to_gsm7(line)


def sms_body(header: str, items: Sequence[DigestItem], footer: str) -> str:
    """The digest text, in GSM-7 whenever look-alikes can make it so.

    Smart punctuation is always replaced. Accents GSM-7 lacks (ë, í, Ł) and emoji are folded to
    look-alikes only when that keeps the whole message in GSM-7 (160 characters a segment
    instead of 70) and no name is left empty; when a name in another script (李华, Νίκος) needs
    UCS-2 anyway, every name is shown as written.
    """
    light = _render(header, [_light_line(i.line) for i in items], footer)
    if is_gsm7(light):
        return light
    folded = _render(header, [_folded_line(i.line) for i in items], footer)
    if is_gsm7(folded) and all(_folded_line(i.contact_name).strip() for i in items):
        return folded
    return light


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
    The full footer is used unless the short one carries more items or the same items in
    fewer segments (two items and the full footer just over one segment, say).
    """
    count = counter or segment_counter()
    ordered = sorted(items, key=lambda item: -item.priority)
    total = len(ordered)
    best: tuple[int, int, str, list[DigestItem]] | None = None
    for footer in (FOOTER, SHORT_FOOTER):
        chosen: list[DigestItem] = []
        segments = 0
        for item in ordered[:max_items]:
            candidate = [*chosen, item]
            body = sms_body(_header(len(candidate), total), candidate, footer)
            used = count(body)[1]
            if used > max_segments:
                break
            chosen, segments = candidate, used
        if chosen and (best is None or (len(chosen), -segments) > (best[0], -best[1])):
            best = (len(chosen), segments, footer, chosen)
    if best is None:
        return None
    chosen = best[3]
    body = sms_body(_header(len(chosen), total), chosen, best[2])
    encoding, segments = count(body)
    if len(chosen) == 1 and segments > 1:
        # A lone item in UCS-2 (a name in another script) has 70 characters a segment: the
        # barest form often fits in one where the usual one takes two.
        compact = sms_body("touchbase:", [_without_company(chosen[0])], TINY_FOOTER)
        compact_encoding, compact_segments = count(compact)
        if compact_segments < segments:
            body, encoding, segments = compact, compact_encoding, compact_segments
    left = tuple(i for i in ordered if i not in chosen)
    return Digest(body, tuple(chosen), left, encoding, segments)


def _without_company(item: DigestItem) -> DigestItem:
    # "Name (Company): reason" -> "Name: reason", for the barest form of a lone item.
    prefix = f"{item.contact_name} ("
    if item.line.startswith(prefix) and "): " in item.line[len(prefix) :]:
        rest = item.line[len(prefix) :].split("): ", 1)[1]
        return replace(item, line=f"{item.contact_name}: {rest}")
    return item


def _header(shown: int, total: int) -> str:
    if total > shown:
        return f"touchbase: {shown} of {total} due"
    return "touchbase: 1 due" if shown == 1 else f"touchbase: {shown} due"
