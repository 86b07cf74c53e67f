"""The reminders memory benchmark: a quick run end to end, and its report of several runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bench import reminders_memory as bench
from shared.devdb import DevDatabase
from tests.support.bench import quick_run

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("loaded", "sync", "sweep", "retry", "dry_run", "listings", "idle")


def test_quick_run_writes_sane_json(tmp_path: Path) -> None:
    result, stdout = quick_run("bench.reminders_memory", tmp_path)
    assert result["figure"] == bench.FIGURE
    assert set(result["meta"]) >= {"machine", "cpus", "python", "database"}
    # The engine it ran on, not an assumed one (this benchmark ignores MONGODB_URI).
    assert result["meta"]["database"] == DevDatabase(uri="").kind
    steps = result["steps"]
    assert [s["touchpoints"] for s in steps] == list(bench.QUICK_STEPS)
    due = result["config"]["due_per_step"]
    for number, step in enumerate(steps, start=1):
        assert step["users"] * bench.PER_USER == step["touchpoints"]
        for phase in PHASES:
            memory = step["memory"][phase]
            assert 0 < memory["rss_mb"] <= memory["hwm_mb"]
        counts = step["counts"]
        # Every due user was swept: one digest accepted, the others deferred and retried.
        assert counts["due_users"] == due
        assert counts["sweep_accepted"] == 1
        assert counts["sweep_posts"] >= due
        assert counts["claims"] == due * number
        assert counts["retry_posts"] >= (due - 1) * number
        assert counts["nudged_total"] > 0
        # The dry run walked every user: each active user has digests planned, none missed.
        active = step["users"] // bench.ACTIVE_EVERY
        assert counts["dry_run_users"] == active
        assert not counts["dry_run_truncated"]
        assert counts["schedule_touchpoints"] == 3 * bench.PER_USER
        assert counts["changes_served"] == result["config"]["changes_per_step"] * number
    assert result["baseline"] == steps[0]["memory"]["idle"]
    last = steps[-1]["memory"]["idle"]
    assert result["growth"]["rss_mb"] == round(last["rss_mb"] - result["baseline"]["rss_mb"], 1)
    assert result["goal_met"] == (
        result["growth"]["rss_mb"] < bench.GOAL_MB and result["growth"]["hwm_mb"] < bench.GOAL_MB
    )
    assert result["tracebacks"] == 0
    assert "## Memory" in stdout


def _fake_run(
    rss: list[float], hwm: list[float], dry: list[float], database: str = "ferretdb"
) -> dict[str, Any]:
    steps = []
    for n, (r, h, d) in enumerate(zip(rss, hwm, dry, strict=True)):
        steps.append(
            {
                "touchpoints": (n + 1) * 1000,
                "users": (n + 1) * 100,
                "memory": {"idle": {"rss_mb": r, "hwm_mb": h}},
                "seconds": {"dry_run": d, "sweep": 2 * d},
                "counts": {"dry_run_digests": 10 * (n + 1)},
            }
        )
    return {
        "meta": {"machine": "x86_64", "cpus": 2, "python": "3.11", "database": database},
        "config": {"per_user": 10, "active_every": 20, "due_per_step": 20, "changes_per_step": 2},
        "steps": steps,
        "baseline": copy.deepcopy(steps[0]["memory"]["idle"]),
        "growth": {"rss_mb": rss[-1] - rss[0], "hwm_mb": hwm[-1] - hwm[0]},
    }


def test_render_gives_the_medians_of_the_runs() -> None:
    runs = [
        _fake_run([60.0, 70.0], [62.0, 80.0], [1.0, 3.0]),
        _fake_run([64.0, 90.0], [66.0, 100.0], [2.0, 5.0]),
    ]
    text = bench.render(runs)
    assert text.startswith(f"## {bench.FIGURE}")
    # Idle RSS medians 62 and 80, growth medians 18 (RSS) and 26 (peak).
    assert "| 1,000 | 100 | 62.0 (60.0-64.0) | 64.0 (62.0-66.0) | 0.0 / 0.0 | 1.5 | 10 |" in text
    assert "| 2,000 | 200 | 80.0 (70.0-90.0) | 90.0 (80.0-100.0) | 18.0 / 26.0 | 4.0 | 20 |" in text
    assert "**18.0 MiB idle RSS, 26.0 MiB peak**" in text
    assert "goal met" in text
    assert "FerretDB" in text
    assert (
        "from 1,000 to 2,000 touchpoints (2x) the idle RSS grew 18.0 MiB and the peak 26.0" in text
    )
    assert "the dry run took 2.8x" in text  # median of 3x and 2.5x
    assert "goal NOT met" in bench.render([_fake_run([60.0, 120.0], [62.0, 130.0], [1.0, 2.0])])


def test_render_speaks_of_the_engine_the_runs_used() -> None:
    ferret = bench.render([_fake_run([60.0, 70.0], [62.0, 80.0], [1.0, 3.0], "ferretdb")])
    assert "FerretDB caveat" in ferret
    assert "scans whole collections" in ferret
    assert "mongo-java-server" not in ferret
    mjs = bench.render([_fake_run([60.0, 70.0], [62.0, 80.0], [1.0, 3.0], "mongo-java-server")])
    assert "FerretDB" not in mjs
    assert "mongo-java-server caveat" in mjs
    assert "non-unique secondary index" in mjs
    assert "database mongo-java-server 1.47.0)" in mjs
