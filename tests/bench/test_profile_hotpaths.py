"""The hot-path profile: a quick run under py-spy, the stack aggregation and the report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bench import profile_hotpaths as bench
from shared.devdb import DevDatabase
from tests.support.bench import quick_run

ROOT = Path(__file__).resolve().parents[2]
SITE = "/work/.venv/lib/python3.11/site-packages"
SERVICE = "/work/main/services/contacts/service.py"
REPO = "/work/main/services/contacts/repository.py"
ENTRY = (
    f"run_service (/work/main/shared/app.py:80);run_app ({SITE}/aiohttp/web.py:500);"
    "run_forever (/usr/lib/python3.11/asyncio/base_events.py:607);"
    "_run (/usr/lib/python3.11/asyncio/events.py:80)"
)


def test_quick_run_profiles_every_workload(tmp_path: Path) -> None:
    r, stdout = quick_run("bench.profile_hotpaths", tmp_path)
    assert set(r["meta"]) >= {"machine", "cpus", "python", "database"}
    assert r["meta"]["database"] == DevDatabase().kind
    assert set(r["workloads"]) == set(bench.WORKLOADS)
    for name, profile in r["workloads"].items():
        assert profile["samples"] > 0, name
        assert abs(sum(profile["areas"].values()) - 100) < 1, name
        assert len(profile["top_inclusive"]) <= bench.TOP
        # Tables of our own code name only our own code, entry points left out.
        for row in profile["top_self"] + profile["top_own"] + profile["top_inclusive"]:
            assert row["name"].startswith(("services/", "shared/")), row
            assert "__main__" not in row["name"]
            assert "run_service" not in row["name"]
    w = {name: p["workload"] for name, p in r["workloads"].items()}
    # Nothing was lost: every request answered, every message sent, every user handed over.
    assert w["contacts_list"]["requests"] > 0
    assert w["contacts_list"]["errors"] == 0
    assert w["contacts_list"]["pages_in_book"] == 2  # 100 contacts, pages of 50
    assert w["contacts_create"]["requests"] > 0
    assert w["contacts_create"]["errors"] == 0
    assert 0 < w["notifier_ingest"]["requests"] <= 150
    assert w["notifier_ingest"]["errors"] == 0
    assert w["notifier_drain"]["sent"] == w["notifier_drain"]["messages"]
    assert w["notifier_drain"]["messages"] == w["notifier_ingest"]["requests"]
    assert w["reminders_sweep"]["handed_over"] == w["reminders_sweep"]["users"] == 60
    assert w["reminders_sweep"]["recorded"] == 60
    assert w["reminders_sweep"]["completed"] is True
    # The service answering the list spends time in the driver and in HTTP.
    inclusive = r["workloads"]["contacts_list"]["areas_inclusive"]
    assert inclusive.get("database driver (pymongo, bson)", 0) > 0
    assert "## Hot paths" in stdout
    # Raw profiles live in a temporary directory, never in the repository.
    for folder in (ROOT, ROOT / "bench", ROOT / "tests" / "bench"):
        assert not [p for p in folder.glob("*.txt") if p.stem in bench.WORKLOADS]


def test_aggregation_of_collapsed_stacks() -> None:
    raw = "\n".join(
        [
            # our code calling the driver: driver time, owned by repository.find_page
            f"{ENTRY};list (/work/main/services/contacts/handlers.py:10);"
            f"find_page ({REPO}:20);to_list ({SITE}/pymongo/asynchronous/cursor.py:5) 30",
            # our own code as the leaf
            f"{ENTRY};list (/work/main/services/contacts/handlers.py:10);"
            f"contact_out ({SERVICE}:50) 20",
            # JSON inside aiohttp's json_response below our handler counts as JSON
            f"{ENTRY};list (/work/main/services/contacts/handlers.py:11);"
            f"json_response ({SITE}/aiohttp/web_response.py:1);"
            "dumps (/usr/lib/python3.11/json/__init__.py:231) 10",
            # no code of ours: the HTTP server parsing a request
            f"{ENTRY};start ({SITE}/aiohttp/web_protocol.py:666) 40",
            # an idle pool thread, dropped
            "_bootstrap (/usr/lib/python3.11/threading.py:1002);"
            "_worker (/usr/lib/python3.11/concurrent/futures/thread.py:81) 99",
            "garbage line without a count",
        ]
    )
    a = bench.aggregate(raw)
    assert a["samples"] == 100
    assert a["idle_samples_dropped"] == 99
    assert a["areas"] == {
        "aiohttp / HTTP parsing": 40.0,
        "database driver (pymongo, bson)": 30.0,
        "ours: services.contacts.service": 20.0,
        "JSON encode / decode": 10.0,
    }
    assert a["areas_inclusive"]["aiohttp / HTTP parsing"] == 50.0
    assert a["ours_pct"] == 20.0
    assert a["top_self"] == [
        {"name": "services/contacts/service.py:contact_out", "samples": 20, "pct": 20.0}
    ]
    own = {row["name"]: row["pct"] for row in a["top_own"]}
    assert own == {
        "services/contacts/repository.py:find_page": 30.0,
        "services/contacts/service.py:contact_out": 20.0,
        "services/contacts/handlers.py:list": 10.0,
    }
    inclusive = {row["name"]: row["pct"] for row in a["top_inclusive"]}
    assert inclusive["services/contacts/handlers.py:list"] == 60.0
    assert not any("run_service" in name for name in inclusive)
    assert a["top_lines"][0]["name"] == "services/contacts/repository.py:find_page:20"
    # Every function of a top table carries all three shares.
    assert a["functions"]["services/contacts/repository.py:find_page"] == {
        "self": 0.0,
        "own": 30.0,
        "inclusive": 30.0,
    }


def fake_run(scale: float, database: str = "ferretdb") -> dict[str, Any]:
    profile = {
        "samples": int(1000 * scale),
        "idle_samples_dropped": 0,
        "areas": {"database driver (pymongo, bson)": 50.0 * scale, "ours: shared.sms": 10.0},
        "areas_inclusive": {"database driver (pymongo, bson)": 60.0 * scale},
        "ours_pct": 10.0,
        "top_self": [{"name": "shared/sms.py:count_segments", "samples": 5, "pct": 5.0 * scale}],
        "top_own": [{"name": "shared/sms.py:count_segments", "samples": 5, "pct": 8.0}],
        "top_inclusive": [{"name": "services/reminders/service.py:sweep", "samples": 9, "pct": 90}],
        "top_lines": [],
        "seconds": 10.0,
        "errors": 0,
    }
    figures = {
        "contacts_list": {
            "requests": 400,
            "errors": 0,
            "book": 1000,
            "pages_in_book": 20,
            "rate": 100,
        },
        "reminders_sweep": {
            "users": 1000,
            "touchpoints": 5000,
            "handed_over": 1000,
            "recorded": 1000,
            "handover_s": 12.0,
            "completed": True,
            "seconds": 30.0,
            "rate": 33.0 * scale,
        },
    }
    return {
        "meta": {
            "machine": "x86_64",
            "cpus": 2,
            "python": "3.11.7",
            "database": database,
            "py_spy_rate": 200,
            "idle": False,
            "log_level": "INFO",
            "contacts": 1000,
            "seconds": 20.0,
            "clients": 50,
            "messages": 3000,
            "send_rate": 500.0,
            "users": 1000,
            "per_user": 5,
            "sweep_seconds": 60.0,
            "send_concurrency": 4,
            "quick": False,
        },
        "workloads": {
            name: {**copy.deepcopy(profile), "workload": figures[name]} for name in figures
        },
    }


def test_render_gives_median_shares_per_workload() -> None:
    runs = [fake_run(1.0), fake_run(1.2), fake_run(0.8)]
    text = bench.render(copy.deepcopy(runs))
    assert text.startswith("## Hot paths")
    assert "### contacts_list" in text
    assert "### reminders_sweep" in text
    assert "### notifier_drain" not in text  # not run: no empty section
    assert "| database driver (pymongo, bson) | 50.0 (40.0-60.0) | 60.0 (48.0-72.0) |" in text
    assert "| `shared/sms.py:count_segments` | 5.0 (4.0-6.0) | 8.0 | 0.0 |" in text
    assert "| `services/reminders/service.py:sweep` | 0.0 | 0.0 | 90.0 |" in text
    assert "33.0 (26.4-39.6) digests handed over/s" in text
    assert "What was done" in text
    assert "Scaling (10x data)" in text
    assert "FerretDB" in text
    assert "python -m bench.profile_hotpaths" in text


def test_render_speaks_of_the_engine_the_runs_used() -> None:
    ferret = bench.render([fake_run(1.0, "ferretdb")])
    assert "FerretDB caveat" in ferret
    assert "scans whole collections" in ferret
    assert "The database's scans grow with the collections on FerretDB" in ferret
    assert "mongo-java-server" not in ferret
    mjs = bench.render([fake_run(1.0, "mongo-java-server")])
    # The findings still say they were drawn on FerretDB, but no caveat speaks of its scans.
    assert "FerretDB caveat" not in mjs
    assert "scans whole collections" not in mjs
    assert "collections on FerretDB" not in mjs
    assert "drawn from profiles taken on FerretDB" in mjs
    assert "mongo-java-server caveat" in mjs
    assert "one database server (mongo-java-server 1.47.0)" in mjs
