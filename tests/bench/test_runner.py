"""The benchmark runner: sections between markers, failures reported in the document."""

from __future__ import annotations

import pytest

from bench.__main__ import SUITE, Benchmark, assemble, header, machine, merge, section
from bench.report import database_of, describe, engines, median_range


def test_median_range_shows_the_spread_only_when_runs_differ() -> None:
    assert median_range([3.0, 1.0, 2.0]) == "2 (1-3)"
    assert median_range([1.25, 1.5, 1.75]) == "1.5 (1.2-1.8)"
    assert median_range([0.5, 0.5], ".2f") == "0.50"
    assert median_range([7.0]) == "7"


def test_merge_replaces_only_the_named_section() -> None:
    text = (
        "# Benchmarks\n\n<!-- bench:a:start -->\nold a\n<!-- bench:a:end -->\n\n"
        "<!-- bench:b:start -->\nold b\n<!-- bench:b:end -->\n"
    )
    new = "<!-- bench:a:start -->\nnew a\n<!-- bench:a:end -->"
    merged = merge(text, "a", new)
    assert "new a" in merged
    assert "old a" not in merged
    assert "old b" in merged
    appended = merge(text, "c", "<!-- bench:c:start -->\nc\n<!-- bench:c:end -->")
    assert appended.endswith("<!-- bench:c:end -->\n")
    assert "old a" in appended


def test_a_failed_benchmark_is_written_down_not_hidden() -> None:
    text = section(Benchmark("x", "bench.nothing", 1), [], "bench.nothing exited 1:\nboom")
    assert text.startswith("<!-- bench:x:start -->")
    assert text.endswith("<!-- bench:x:end -->")
    assert "failed" in text
    assert "boom" in text


def test_every_benchmark_in_the_suite_is_importable_and_renders() -> None:
    import importlib

    for bench in SUITE:
        module = importlib.import_module(bench.module)
        assert callable(module.render), bench.module


def test_assemble_keeps_sections_not_rerun_in_the_suite_order() -> None:
    first, last = SUITE[0].name, SUITE[-1].name
    previous = f"# old head\n\n<!-- bench:{last}:start -->\nkept\n<!-- bench:{last}:end -->\n"
    new = f"<!-- bench:{first}:start -->\nfresh\n<!-- bench:{first}:end -->"
    text = assemble(previous, {first: new}, "# new head")
    assert text.startswith("# new head")
    assert "old head" not in text
    assert text.index("fresh") < text.index("kept")


def test_header_describes_the_engine_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("TOUCHBASE_DEVDB", "mongo-java-server")
    info = machine()
    assert info["engine"] == "mongo-java-server"
    assert info["database"].startswith("mongo-java-server 1.47")
    text = header(info, quick=False)
    assert "per-document atomicity" in text
    assert "unique-index lookups from an index" in text
    assert "does not build non-unique secondary indexes" in text
    assert "scan their collection in memory" in text
    assert "it is not MongoDB" in text
    assert "FerretDB" not in text
    assert "SQLite" not in text
    assert "[docs/indexes.md](indexes.md)" in text
    assert f"database {info['database']}." in text

    monkeypatch.setenv("TOUCHBASE_DEVDB", "ferretdb")
    info = machine()
    assert info["database"] == "FerretDB 1.24.2 (SQLite backend)"
    text = header(info, quick=True)
    assert "FerretDB 1.24 with its SQLite backend" in text
    assert "SQLite scans the table for it too" in text
    assert "mongo-java-server" not in text
    assert "[docs/indexes.md](indexes.md)" in text

    monkeypatch.setenv("MONGODB_URI", "mongodb://db.example:27017/")
    info = machine()
    assert info["engine"] == "external"
    text = header(info, quick=False)
    assert "the server named by MONGODB_URI" in text
    assert "FerretDB" not in text
    assert "mongo-java-server" not in text
    assert "[docs/indexes.md](indexes.md)" in text


def test_sections_name_the_database_each_run_recorded() -> None:
    mjs = "mongo-java-server"
    memory = {"database": mjs, "database_description": f"{mjs}, in memory"}
    h2 = {"database": mjs, "database_description": f"{mjs}, H2 file"}
    old = {"database": "ferretdb"}
    assert describe("mongo-java-server", "mongo-java-server, in memory") == (
        "mongo-java-server 1.47.0 (in memory)"
    )
    assert database_of([{"meta": memory}, {"meta": memory}]) == f"{mjs} 1.47.0 (in memory)"
    assert database_of([{"meta": h2}]) == "mongo-java-server 1.47.0 (H2 file)"
    assert database_of([{"meta": old}]) == "FerretDB 1.24.2 (SQLite backend)"
    assert engines([{"meta": memory}, {"meta": old}, {"meta": h2}]) == [
        "mongo-java-server",
        "ferretdb",
    ]
