"""Digest composition within the SMS segment budget."""

from __future__ import annotations

import pytest

from services.reminders.digest import (
    FOOTER,
    SHORT_FOOTER,
    DigestItem,
    compose,
    gsm_friendly,
    segment_counter,
)


def item(
    n: int, name: str = "Dana Lee", priority: float | None = None, line: str | None = None
) -> DigestItem:
    return DigestItem(
        touchpoint_id=f"tp{n}",
        contact_id=f"c{n}",
        contact_name=name,
        line=line or f"{name} (Lee Insurance): reconnect, last touch {30 + n}d ago",
        priority=priority if priority is not None else float(n),
    )


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_fits_the_budget_highest_priority_first(budget: int) -> None:
    items = [item(n) for n in range(1, 15)]
    digest = compose(items, max_segments=budget, max_items=20)
    assert digest is not None
    encoding, segments = segment_counter()(digest.body)
    assert segments <= budget
    assert encoding == "GSM-7"
    priorities = [i.priority for i in digest.items]
    assert priorities == sorted(priorities, reverse=True)
    assert priorities[0] == 14
    # What did not fit waits, highest first.
    assert {i.touchpoint_id for i in digest.left_out} | {i.touchpoint_id for i in digest.items} == {
        f"tp{n}" for n in range(1, 15)
    }
    assert f"of {len(items)} due" in digest.body


def test_numbered_lines_and_footer() -> None:
    digest = compose(
        [item(1, priority=5), item(2, "Sam Park", priority=9)], max_segments=2, max_items=5
    )
    assert digest is not None
    lines = digest.body.split("\n")
    assert lines[0] == "touchbase: 2 due"
    assert lines[1].startswith("1) Sam Park")
    assert lines[2].startswith("2) Dana Lee")
    assert "Reply 1 when done" in lines[-1]


def test_daily_budget_caps_items() -> None:
    digest = compose([item(n) for n in range(1, 10)], max_segments=10, max_items=3)
    assert digest is not None
    assert len(digest.items) == 3
    assert len(digest.left_out) == 6


def test_smart_punctuation_stays_gsm7() -> None:
    line = "Dana O\u2019Neil \u2013 \u201cbig\u201d client\u2026"
    assert gsm_friendly(line) == 'Dana O\'Neil - "big" client...'
    digest = compose([item(1, line=line)], max_segments=1, max_items=5)
    assert digest is not None
    assert digest.encoding == "GSM-7"


def test_names_that_need_unicode_switch_encoding_and_still_fit() -> None:
    items = [item(n, name="Zo\u00eb \u674e\u534e") for n in range(1, 8)]
    digest = compose(items, max_segments=2, max_items=10)
    assert digest is not None
    assert digest.encoding == "UCS-2"
    assert digest.segments <= 2
    assert len(digest.items) < 7


def test_nothing_fits_returns_none() -> None:
    huge = item(1, line="x" * 2000)
    assert compose([huge], max_segments=1, max_items=5) is None
    assert compose([], max_segments=1, max_items=5) is None


def test_escalated_items_come_first_with_losing_touch_wording() -> None:
    from datetime import UTC, datetime, timedelta

    from services.reminders.service import describe, priority

    now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def tp(source: str, days_since: int, ideal: int, maximum: int) -> dict[str, object]:
        base = now - timedelta(days=days_since)
        return {
            "_id": f"{source}{days_since}",
            "source": source,
            "contact_name": "Dana Lee",
            "company": "Lee Insurance",
            "base": base,
            "has_touch": True,
            "due_at": base + timedelta(days=ideal),
            "max_at": base + timedelta(days=maximum),
            "reason": "follow up after your 1-2-1",
        }

    overdue = tp("cadence", 41, 14, 28)
    due = tp("cadence", 20, 14, 28)
    follow = tp("followup", 2, 1, 3)
    ranked = sorted([due, follow, overdue], key=lambda t: -priority(t, now))
    assert [t["_id"] for t in ranked] == ["cadence41", "followup2", "cadence20"]
    assert describe(overdue, now) == "Dana Lee (Lee Insurance): losing touch, 41d"
    assert describe(due, now) == "Dana Lee (Lee Insurance): last touch 20d ago"
    assert describe(follow, now) == "Dana Lee (Lee Insurance): follow up after your 1-2-1"


def test_accents_and_emoji_outside_gsm7_fold_when_that_keeps_gsm7() -> None:
    names = ["Zo\u00eb Martin", "\u0141ukasz Nowak", "Dana \U0001f3c0", "Jos\u00e9 Garc\u00eda"]
    items = [
        item(n, name=name, line=f"{name}: reconnect, last touch {30 + n}d ago")
        for n, name in enumerate(names, start=1)
    ]
    digest = compose(items, max_segments=2, max_items=5)
    assert digest is not None
    assert digest.encoding == "GSM-7"
    assert len(digest.items) == 4
    for shown in ("Zoe Martin:", "Lukasz Nowak:", "Dana:", "Jos\u00e9 Garcia:"):
        assert shown in digest.body


def test_a_name_in_another_script_keeps_every_name_as_written() -> None:
    items = [
        item(1, name="\u674e\u534e", line="\u674e\u534e: reconnect, last touch 31d ago"),
        item(2, name="Zo\u00eb Martin", line="Zo\u00eb Martin \u2013 reconnect"),
    ]
    digest = compose(items, max_segments=2, max_items=5)
    assert digest is not None
    assert digest.encoding == "UCS-2"
    assert "Zo\u00eb Martin - reconnect" in digest.body
    assert "\u674e\u534e" in digest.body


def test_a_name_made_only_of_emoji_is_not_folded_away() -> None:
    digest = compose(
        [item(1, name="\U0001f984", line="\U0001f984: reconnect")], max_segments=2, max_items=5
    )
    assert digest is not None
    assert "\U0001f984" in digest.body


def test_short_footer_when_it_saves_a_segment_for_the_same_items() -> None:
    line = "x" * 45
    items = [item(1, line=line, priority=2), item(2, line=line, priority=1)]
    digest = compose(items, max_segments=2, max_items=5)
    assert digest is not None
    assert len(digest.items) == 2
    assert digest.segments == 1
    assert digest.body.endswith(SHORT_FOOTER)
    # With room to spare the full footer, with its examples, stays.
    small = compose([item(1, line="Dana Lee: reconnect")], max_segments=2, max_items=5)
    assert small is not None
    assert small.body.endswith(FOOTER)


def test_a_lone_item_in_another_script_takes_its_barest_form_to_fit_one_segment() -> None:
    line = "\u674e\u534e: reconnect, last touch 31d ago"
    digest = compose([item(1, name="\u674e\u534e", line=line)], max_segments=2, max_items=5)
    assert digest is not None
    assert digest.encoding == "UCS-2"
    assert digest.segments == 1
    assert digest.body == f"touchbase:\n1) {line}\nReply 1=done, SNOOZE 1"


def test_the_barest_form_of_a_lone_item_leaves_out_the_company() -> None:
    name = "\u674e\u534e"
    line = f"{name} (\u534e\u4e3a\u6280\u672f): reconnect, last touch 31d ago"
    digest = compose([item(1, name=name, line=line)], max_segments=2, max_items=5)
    assert digest is not None
    assert digest.segments == 1
    assert (
        digest.body
        == f"touchbase:\n1) {name}: reconnect, last touch 31d ago\nReply 1=done, SNOOZE 1"
    )
