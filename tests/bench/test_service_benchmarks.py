"""Smoke runs of the dispatch, API overhead and send-rate benchmarks at tiny sizes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench import contacts_api, notifier_send_rate, reminders_sweep
from shared.devdb import DevDatabase
from tests.support.bench import quick_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dispatch_hands_every_digest_over_once(tmp_path: Path) -> None:
    run, _ = quick_run("bench.reminders_sweep", tmp_path, timeout=150)
    digest = run["digest"]
    assert digest["missed"] == 0
    assert digest["handed_over"] == digest["users"] == digest["users_messaged"]
    assert digest["max_messages_per_user"] == 1
    assert digest["at_twilio"] == digest["users"]
    assert digest["segments_per_touchpoint"] <= 0.5
    assert run["tenth"]["record_done"] is True
    assert run["tenth"]["touchpoints_nudged"] == run["tenth"]["touchpoints"]
    assert [v["grace"] for v in run["naive"]] == [1, None]
    text = reminders_sweep.render([run, run])
    assert "## Dispatch" in text


@pytest.mark.timeout(120)
def test_api_overhead_compares_with_the_bare_handler(tmp_path: Path) -> None:
    run, _ = quick_run("bench.contacts_api", tmp_path)
    assert set(run["ratios"]) == {"create", "list 50", "list 50 of 5"}
    assert all(s["errors"] == 0 for s in run["scenarios"].values())
    assert all(ratio > 0 for ratio in run["ratios"].values())
    text = contacts_api.render([run, run])
    assert "| create throughput |" in text
    assert run["meta"]["database"] == DevDatabase().kind
    ferret = contacts_api.render([_on(run, "ferretdb")])
    assert "FerretDB caveat" in ferret
    assert "on FerretDB both scan the whole collection" in ferret
    assert "mongo-java-server" not in ferret
    mjs = contacts_api.render([_on(run, "mongo-java-server")])
    assert "FerretDB" not in mjs
    assert "mongo-java-server caveat" in mjs
    assert "builds no non-unique secondary index" in mjs


@pytest.mark.timeout(120)
def test_send_rate_never_exceeds_the_limit(tmp_path: Path) -> None:
    run, _ = quick_run("bench.notifier_send_rate", tmp_path, "--webhooks", "0")
    assert run["sent"] == run["meta"]["messages"]
    assert run["max_per_second_token"] <= run["meta"]["limit"]
    text = notifier_send_rate.render([run, run])
    assert "## Send rate" in text
    assert run["meta"]["database"] == DevDatabase().kind
    # A worker slower than the limit: the scaling text explains what each send costs.
    slow = {**run, "rate": run["meta"]["limit"] / 2}
    ferret = notifier_send_rate.render([_on(slow, "ferretdb")])
    assert "on FerretDB every one of them scans the messages collection" in ferret
    mjs = notifier_send_rate.render([_on(slow, "mongo-java-server")])
    assert "FerretDB" not in mjs
    assert "non-unique index it does not build" in mjs


def _on(run: dict[str, Any], database: str) -> dict[str, Any]:
    """The same run, as if it had used ``database``."""
    moved = copy.deepcopy(run)
    moved["meta"]["database"] = database
    moved["meta"].pop("database_description", None)
    return moved
