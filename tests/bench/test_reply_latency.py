"""The reply latency benchmark: a quick run end to end, its plan, its baseline and its report."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pytest_aiohttp import AiohttpClient
from twilio.request_validator import RequestValidator

from bench import reply_latency as bench
from shared.devdb import DevDatabase
from tests.support.bench import quick_run

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_sane_json(tmp_path: Path) -> None:
    result, stdout = quick_run("bench.reply_latency", tmp_path)
    assert result["figure"] == bench.FIGURE
    assert set(result["meta"]) >= {"machine", "cpus", "python", "database"}
    assert result["meta"]["database"] == DevDatabase().kind
    assert result["goal_p99_ms"] == bench.GOAL_P99_MS
    webhooks = result["config"]["webhooks"]
    assert [lv["concurrency"] for lv in result["levels"]] == result["config"]["concurrency"]
    for level in result["levels"]:
        for side in ("subject", "baseline"):
            stats = level[side]
            # Nothing lost: every webhook was answered, and with the answer it should get.
            assert stats["requests"] == webhooks, (side, stats)
            assert stats["errors"] == 0, (side, stats)
            assert stats["ok"] + stats["deferred"] + stats["unexpected"] == webhooks
            assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
            assert stats["throughput_rps"] > 0
        assert level["baseline"]["ok"] == webhooks
        assert level["subject"]["unexpected"] == 0, level["subject"]
        assert sum(k["n"] for k in level["subject"]["by_kind"].values()) == webhooks
        assert level["goal_met"] == (level["subject"]["p99_ms"] < bench.GOAL_P99_MS)
    # The replies reached contacts and reminders: interactions logged, reply records kept.
    after, before = result["collections_after"], result["collections_before"]
    assert after["contacts.interactions"] > before.get("contacts.interactions", 0)
    assert after["reminders.replies"] > before.get("reminders.replies", 0)
    assert sum(result["tracebacks"].values()) == 0
    assert "## Reply latency" in stdout


def test_plan_gives_each_client_whole_users_and_signs_every_request() -> None:
    phones = ["+12125550001", "+12125550002", "+12125550003", "+12125550004"]
    url = "http://127.0.0.1:1/webhooks/twilio/sms"
    clients = bench.plan(phones, 48, 2, url, offset=0)
    assert sum(len(c) for c in clients) == 48
    validator = RequestValidator(bench.WEBHOOK_TOKEN)
    sids = set()
    for index, hooks in enumerate(clients):
        assert {phones.index(h.params["From"]) % 2 for h in hooks} == {index}
        for hook in hooks:
            assert validator.validate(url, hook.params, hook.signature)
            sids.add(hook.params["MessageSid"])
        # Each user's texts go in the order of the mix.
        first_user = [h.kind for h in hooks if h.params["From"] == phones[index]]
        assert first_user == [text for text, _ in bench.MIX] * 2
    assert len(sids) == 48


async def test_baseline_checks_the_signature(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(bench.baseline_app(bench.WEBHOOK_TOKEN))
    url = str(client.make_url(bench.WEBHOOK_PATH))
    params = {"MessageSid": "SM1", "From": "+12125550001", "Body": "1"}
    signature = RequestValidator(bench.WEBHOOK_TOKEN).compute_signature(url, params)
    good = await client.post(
        bench.WEBHOOK_PATH, data=params, headers={"X-Twilio-Signature": signature}
    )
    assert good.status == 200
    assert await good.text() == bench.FIXED_TWIML
    tampered = {**params, "Body": "2"}
    bad = await client.post(
        bench.WEBHOOK_PATH, data=tampered, headers={"X-Twilio-Signature": signature}
    )
    assert bad.status == 403
    unsigned = await client.post(bench.WEBHOOK_PATH, data=params)
    assert unsigned.status == 403


def _stats(p50: float, p99: float, rps: float) -> dict[str, Any]:
    return {
        "requests": 100,
        "ok": 100,
        "deferred": 0,
        "unexpected": 0,
        "errors": 0,
        "p50_ms": p50,
        "p95_ms": p99 - 1,
        "p99_ms": p99,
        "mean_ms": p50,
        "max_ms": p99 + 1,
        "wall_s": 100 / rps,
        "throughput_rps": rps,
        "rounds": 2,
        "first_round_mean_ms": p50,
        "last_round_mean_ms": p50 + 1,
        "by_kind": {text: {"n": 1, "p50_ms": p50, "p99_ms": p99} for text, _ in bench.MIX},
        "cpu_ms_per_reply": {"database": p50, "reminders": 10.0},
    }


def _fake_run(p99: float, base_p99: float, database: str = "ferretdb") -> dict[str, Any]:
    level = {
        "concurrency": 1,
        "subject": _stats(40.0, p99, 20.0),
        "baseline": _stats(0.5, base_p99, 1000.0),
        "ratio_p99": round(p99 / base_p99, 2),
        "ratio_throughput": 0.02,
        "goal_met": p99 < bench.GOAL_P99_MS,
    }
    sizes = {"contacts.interactions": 10, "notifier.inbound": 5}
    return {
        "figure": bench.FIGURE,
        "meta": {"machine": "x86_64", "cpus": 2, "python": "3.11", "database": database},
        "config": {
            "webhooks": 100,
            "concurrency": [1],
            "users": 8,
            "contacts": 6,
            "warmup": 48,
            "quick": False,
            "mix": [text for text, _ in bench.MIX],
        },
        "command": ".venv/bin/python -m bench.reply_latency --webhooks 100",
        "goal_p99_ms": bench.GOAL_P99_MS,
        "levels": [level],
        "goal_met": level["goal_met"],
        "collections_before": sizes,
        "collections_after": {k: v * 3 for k, v in sizes.items()},
        "tracebacks": {},
        "seed_s": 10.0,
        "total_s": 60.0,
    }


def test_render_reports_medians_ranges_and_the_goal() -> None:
    runs = [_fake_run(100.0, 2.0), _fake_run(300.0, 4.0)]
    text = bench.render(copy.deepcopy(runs))
    assert text.startswith("## Reply latency")
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    # Median p99 of 100 and 300 is 200 (range 100-300); baseline 3.0 (2.0-4.0); ratios 50, 75.
    assert "| 200 (100-300) |" in row
    assert "| 3.0 (2.0-4.0) |" in row
    assert "| 62.5 (50.0-75.0)x |" in row
    assert row.endswith("| met |")
    assert "Goal p99 < 250 ms: met at every concurrency measured." in text
    assert "--webhooks 100" in text
    assert "Scaling (10x data)" in text
    cpu = next(line for line in text.splitlines() if line.startswith("| clients | database"))
    assert cpu == "| clients | database | reminders |"
    assert "| 1 | 40.0 (40.0-40.0) | 10.0 (10.0-10.0) |" in text
    assert "FerretDB" in text
    slow = bench.render([_fake_run(400.0, 2.0), _fake_run(260.0, 2.0)])
    assert "**not met**" in slow
    assert "Goal p99 < 250 ms: **not met** - with 1 client(s) p99 is 330 ms" in slow


def test_render_speaks_of_the_engine_the_runs_used() -> None:
    ferret = bench.render([_fake_run(100.0, 2.0, "ferretdb")])
    assert "FerretDB caveat" in ferret
    assert "scans a whole collection for every query" in ferret
    assert "mongo-java-server" not in ferret
    mjs = bench.render([_fake_run(100.0, 2.0, "mongo-java-server")])
    assert "FerretDB" not in mjs
    assert "SQLite" not in mjs
    assert "mongo-java-server caveat" in mjs
    assert "non-unique secondary index" in mjs
    assert "separate processes on mongo-java-server 1.47.0" in mjs
