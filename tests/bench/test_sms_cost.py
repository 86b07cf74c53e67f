"""The SMS cost benchmark: a quick simulated week end to end, its classifier and its report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bench import sms_cost as bench
from shared.devdb import DevDatabase
from tests.support.bench import quick_run

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_sane_json(tmp_path: Path) -> None:
    r, stdout = quick_run("bench.sms_cost", tmp_path)
    assert r["figure"] == bench.FIGURE
    assert set(r["meta"]) >= {"machine", "cpus", "python", "database"}
    assert r["meta"]["database"] == DevDatabase().kind
    assert r["config"]["users"] == 20
    assert r["config"]["days"] == 7
    # The loaded state is what the service itself computes.
    assert r["load_checked_contacts"] > 0
    # Every user got digests, never more than one a day; items counted on both sides alike.
    assert r["messages"] > 0
    assert r["sweep_outcomes"].get("sent", 0) == r["messages"]
    assert r["max_messages_per_user_day"] == 1
    assert r["messages_per_user_month"]["max"] <= 7
    assert r["baseline"]["messages"] == r["touchpoints_carried"] >= r["messages"]
    assert r["distinct_touchpoints"] <= r["touchpoints_carried"]
    assert r["touchpoints_carried"] <= 5 * r["messages"]  # the daily budget
    assert (
        sum(int(k.split()[0]) * v for k, v in r["digest_shapes"].items())
        == (r["touchpoints_carried"])
    )
    # Users acted: replies were answered and logged, follow-ups came from the feed path.
    assert r["events"]["replies"] > 0
    assert r["events"]["reply_actions"] > 0
    assert r["events"]["meetings_logged"] > 0
    # SMS figures: cheaper than one SMS per touchpoint; no accidental UCS-2.
    assert r["segments"] < r["baseline"]["segments"]
    assert 0 < r["segment_ratio"] < 1
    assert r["ucs2"] == r["ucs2_accidental"] + r["ucs2_unavoidable"]
    assert r["ucs2_accidental"] == 0
    assert r["punctuation_only_fold"]["ucs2_accidental"] > 0
    assert r["baseline"]["ucs2"] > r["ucs2"]
    assert r["examples"]["GSM-7"].startswith("touchbase: ")
    assert "digests" in stdout
    # Every due item got its turn within the bound; no line was stale when sent.
    assert 1 <= r["longest_wait_digests"] <= bench.GOAL_LONGEST_WAIT
    assert r["stale_lines"] == 0
    assert r["digest_lines"] == r["touchpoints_carried"]
    assert "longest wait of a due item" in stdout


def test_classify_tells_accidental_from_unavoidable_ucs2() -> None:
    assert bench.classify("touchbase: 1 due\n1) Dana Lee") == "GSM-7"
    assert bench.classify("1) Jos\u00e9 S\u00e9gol\u00e8ne") == "GSM-7"
    for accidental in ("Zo\u00eb", "O\u2019Neil", "a \u2013 b", "Dana \U0001f3c0", "\u0141ukasz"):
        assert bench.classify(accidental) == "UCS-2 accidental", accidental
    for script in ("\u674e\u534e", "\u039d\u03af\u03ba\u03bf\u03c2", "Zo\u00eb \u0641\u0627\u0637"):
        assert bench.classify(script) == "UCS-2 unavoidable", script


def fake_run(scale: float, elapsed: float, database: str = "ferretdb") -> dict[str, Any]:
    return {
        "figure": bench.FIGURE,
        "config": {
            "users": 1000,
            "days": 30,
            "users_per_db": 1,
            "databases": 1000,
            "concurrency": 12,
            "seed": 8,
            "contacts_at_end": 40_000,
            "daily_budget": 5,
            "max_segments": 2,
            "quick": False,
        },
        "meta": {"machine": "x86_64", "cpus": 2, "python": "3.11.7", "database": database},
        "elapsed_s": elapsed,
        "messages": 27_000,
        "touchpoints_carried": 100_000,
        "distinct_touchpoints": 60_000,
        "segments": int(48_000 * scale),
        "segments_per_touchpoint": 0.48 * scale,
        "left_out_mean": 1.2,
        "ucs2": 300,
        "ucs2_accidental": 0,
        "ucs2_unavoidable": 300,
        "messages_per_user_month": {"median": 28, "min": 20, "max": 30, "mean": 27.0},
        "max_messages_per_user_day": 1,
        "baseline": {
            "messages": 100_000,
            "segments": 130_000,
            "segments_per_touchpoint": 1.3,
            "ucs2": 40_000,
        },
        "segment_ratio": 48_000 * scale / 130_000,
        "punctuation_only_fold": {"segments": 60_000, "ucs2_accidental": 9000},
        "confirmations": {"messages": 30_000, "segments": 40_000, "ucs2_accidental": 8000},
        "segments_per_touchpoint_with_confirmations": 0.88,
        "events": {"replies": 30_000, "meetings_logged": 7000},
        "examples": {"GSM-7": "touchbase: 2 due\n1) Dana Lee: reconnect\n2) Sam Park: hi"},
        "longest_wait_digests": 3,
        "waits": {1: 90_000, 2: 9000, 3: 1000},
        "digest_lines": 100_000,
        "stale_lines": 0,
        "stale_share": 0.0,
        "stale_reasons": {},
    }


def test_render_gives_medians_and_goals() -> None:
    runs = [fake_run(1.0, 100.0), fake_run(1.1, 140.0), fake_run(0.9, 120.0)]
    text = bench.render(copy.deepcopy(runs))
    assert text.startswith("## SMS cost\n")
    assert "| segments per touchpoint | 0.480 (0.432-0.528) | 1.300 |" in text
    assert "<= 0.5: met" in text
    assert "| SMS segments | 48000 (43200-52800) | 130000 | 0.369 |" in text
    assert "| accidental UCS-2 (look-alikes would do) | 0 |" in text
    assert "0: met" in text
    assert "120 (100-140) s" in text
    assert "python -m bench.sms_cost --users 1000 --days 30" in text
    assert "Scaling (10x data)" in text
    assert "FerretDB" in text
    assert "| longest wait of a due item (digests) | 3 | <= 3 | met |" in text
    assert "| digest lines stale when sent | 0 of 100000 (0.00%) | 0 | met |" in text
    over = [fake_run(1.2, 100.0), fake_run(1.25, 100.0)]
    assert "NOT met" in bench.render(over)
    late = fake_run(1.0, 100.0)
    late.update({"longest_wait_digests": 5, "stale_lines": 12, "stale_share": 12e-5})
    starved = bench.render([late])
    assert "| longest wait of a due item (digests) | 5 | <= 3 | NOT met |" in starved
    assert "| 0 | NOT met |" in starved


def test_render_speaks_of_the_engine_the_runs_used() -> None:
    ferret = bench.render([fake_run(1.0, 100.0, "ferretdb")])
    assert "FerretDB with SQLite scans a whole collection" in ferret
    assert "mongo-java-server" not in ferret
    mjs = bench.render([fake_run(1.0, 100.0, "mongo-java-server")])
    assert "FerretDB" not in mjs
    assert "SQLite" not in mjs
    assert "builds no non-unique secondary index" in mjs
    assert "database mongo-java-server 1.47.0;" in mjs
