"""The system benchmark suite: ``python -m bench`` (or ``make bench``) writes docs/BENCHMARKS.md.

Each benchmark module runs one complete measurement per invocation (its baseline in the same
run), starts its own database and servers on 127.0.0.1 and stops them; this runner invokes each
several times as a subprocess (``python -m bench.<name> --json FILE``), then asks the module to
render its section from all runs (medians, min-max). Sections sit between markers, so
``--only NAME`` reruns one benchmark and replaces just its section.

    .venv/bin/python -m bench                       # everything (~45 min on mongo-java-server)
    .venv/bin/python -m bench --only send_rate      # one section
    .venv/bin/python -m bench --quick --output /tmp/b.md   # tiny sizes, a smoke run
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import engine_in_use, engine_label
from shared.devdb import FERRETDB, MONGO_JAVA_SERVER
from shared.devdb.server import MONGOD

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"


@dataclass(frozen=True)
class Benchmark:
    """One module of the suite and how often to run it."""

    name: str
    module: str
    runs: int
    args: tuple[str, ...] = field(default=())
    timeout_s: float = 1800.0


# In the order. Deterministic simulations (SMS cost) and long growth curves (memory)
# run once; everything timed runs three times for a median.
SUITE = (
    Benchmark("dispatch", "bench.reminders_sweep", 3),
    # The same burst shared by two replicas; the one-job-per-touchpoint baseline is above.
    Benchmark("dispatch_replicas", "bench.reminders_sweep", 3, ("--replicas", "2", "--skip-naive")),
    Benchmark("sms_cost", "bench.sms_cost", 1, timeout_s=5400.0),
    Benchmark("api_overhead", "bench.contacts_api", 3),
    Benchmark("reply_latency", "bench.reply_latency", 3),
    Benchmark("memory", "bench.reminders_memory", 1, timeout_s=5400.0),
    Benchmark("send_rate", "bench.notifier_send_rate", 3, ("--webhooks", "0")),
    Benchmark("hot_paths", "bench.profile_hotpaths", 1),
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    memory_gb = 0.0
    try:
        info = Path("/proc/cpuinfo").read_text()
        found = re.search(r"model name\s*:\s*(.+)", info)
        cpu = found.group(1).strip() if found else cpu
        mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
        memory_gb = int(mem.group(1)) / 1024 / 1024 if mem else 0.0
    except OSError:
        pass
    engine = engine_in_use()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "engine": engine,
        "database": database_label(engine),
    }


def database_label(engine: str) -> str:
    """The header's name for the engine the runs use, with where it keeps its data."""
    if engine == MONGO_JAVA_SERVER:
        return f"{engine_label(engine)} (in memory unless a section says otherwise)"
    return engine_label(engine)


def run_once(bench: Benchmark, quick: bool, workdir: Path, index: int) -> dict[str, Any]:
    """One invocation of a benchmark module; raises with its log tail when it fails."""
    out = workdir / f"{bench.name}-{index}.json"
    log = workdir / f"{bench.name}-{index}.log"
    command = [sys.executable, "-m", bench.module, "--json", str(out), *bench.args]
    if quick:
        command.append("--quick")
    with log.open("wb") as sink:
        code = subprocess.call(
            command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=bench.timeout_s
        )
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command[1:])} exited {code}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def section(
    bench: Benchmark,
    runs: list[dict[str, Any]],
    error: str | None,
    measured: str = "",
) -> str:
    """A benchmark's section between its markers (``measured`` says when and how long)."""
    if error is not None:
        body = f"## {bench.name}\n\nThis benchmark failed in the last run:\n\n```\n{error}\n```\n"
    else:
        module = importlib.import_module(bench.module)
        body = module.render(runs).rstrip() + "\n"
        if measured:
            title, _, rest = body.partition("\n")
            body = f"{title}\n\n{measured}\n{rest}"
    return f"<!-- bench:{bench.name}:start -->\n{body}<!-- bench:{bench.name}:end -->"


HEADER = """# Benchmarks

Written by `make bench` (`.venv/bin/python -m bench`); do not edit by hand between the markers.
Every benchmark runs on loopback on one machine: load generator, services, stand-ins and
database share its CPUs. The machine is small and noisy, so each timed figure is the median of
several runs (min-max in brackets) and is compared with a baseline measured in the same run.
"""

# What the engine in use means for the figures: the header's "Database caveat" paragraph.
MJS_CAVEAT = """**Database caveat.** These runs use {label}, in memory (a benchmark that
keeps its database in a directory uses its H2 file instead, and its section says so), as
development and tests do. It keeps MongoDB's per-document atomicity and serves `_id` and
unique-index lookups from an index, but it does not build non-unique secondary indexes: queries
on those fields scan their collection in memory, so their cost grows with the collection. It
runs in the same {cpus}-core machine as everything else, and it is not MongoDB: absolute figures
here say little about MongoDB; the ratios and the shapes of growth are the point."""

FERRETDB_CAVEAT = """**Database caveat.** These runs use FerretDB 1.24 with its SQLite backend
(`TOUCHBASE_DEVDB=ferretdb`). It evaluates every filter in Go after reading the whole
collection: its only pushdown is a lone `_id` equality, and even that reaches SQLite as
`_ferretdb_sjson->'$._id' = ?` while the `_id` index is built on `_ferretdb_sjson->"_id"`, so
SQLite scans the table for it too (checked with `EXPLAIN QUERY PLAN`). Every read and write
therefore costs time proportional to its collection's size, and concurrent writers queue on
SQLite's single writer lock. Absolute figures here say little about MongoDB; the ratios and the
shapes of growth are the point."""

MONGOD_CAVEAT = """**Database caveat.** These runs use {label}, in the same {cpus}-core machine as
everything else. It uses the services' indexes, so lookups do not scan, but it shares the cores
with the load generator and the services and is no production replica set: the ratios to the
baselines measured in the same runs and the shapes of growth are the point."""

OTHER_CAVEAT = """**Database caveat.** These runs use {label}. Its figures depend on how that
server is deployed (hardware, configuration, network) and whether it shares this machine's
{cpus} cores with the services, so compare the ratios to the baselines measured in the same runs
and the shapes of growth rather than absolute figures."""

INDEXES = """The code stays index-friendly for MongoDB: every query the services send is checked
against the indexes they create by `tests/system/test_indexes.py`, which writes
[docs/indexes.md](indexes.md)."""


def database_caveat(engine: str, cpus: int | None = None) -> str:
    """The header's paragraph on what ``engine`` means for the figures, ending with the link
    to docs/indexes.md."""
    templates = {MONGO_JAVA_SERVER: MJS_CAVEAT, FERRETDB: FERRETDB_CAVEAT, MONGOD: MONGOD_CAVEAT}
    template = templates.get(engine, OTHER_CAVEAT)
    text = template.format(label=engine_label(engine), cpus=cpus or os.cpu_count() or "?")
    return f"{text}\n{INDEXES}\n"


def header(info: dict[str, Any], quick: bool) -> str:
    """The document's opening: what the engine in use means for the figures, and the machine
    every section was measured on."""
    run = "`.venv/bin/python -m bench" + (" --quick" if quick else "") + "`"
    return (
        HEADER
        + "\n"
        + database_caveat(str(info.get("engine") or engine_in_use()), info.get("cpus"))
        + f"\nMachine: {info['cpu']} ({info['cpus']} CPUs, {info['memory_gb']} GB), "
        f"{info['system']}, Python {info['python']}; database {info['database']}. Command: {run} "
        "(each section says when it was measured; `--only NAME` refreshes one).\n"
    )


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"<!-- bench:{re.escape(name)}:start -->.*?<!-- bench:{re.escape(name)}:end -->",
        re.DOTALL,
    )


def merge(text: str, name: str, new: str) -> str:
    """Replace one benchmark's section in ``text`` (or append it)."""
    pattern = _pattern(name)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text)
    return text.rstrip() + "\n\n" + new + "\n"


def assemble(previous: str, sections: dict[str, str], head: str) -> str:
    """The document: ``head``, then every section in the suite's order, new or kept."""
    parts = [head.rstrip() + "\n"]
    for bench in SUITE:
        if bench.name in sections:
            parts.append(sections[bench.name])
        else:
            found = _pattern(bench.name).search(previous)
            if found:
                parts.append(found.group(0))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or part of it) and write the document; exit 1 if any benchmark failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    names = [b.name for b in SUITE]
    parser.add_argument("--only", nargs="+", choices=names, help="run just these benchmarks")
    parser.add_argument("--runs", type=int, help="override every benchmark's number of runs")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing")
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args(argv)
    chosen = [b for b in SUITE if not args.only or b.name in args.only]
    previous = args.output.read_text() if args.output.exists() else ""
    head = header(machine(), args.quick)
    failed = 0
    sections: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="touchbase-bench-") as tmp:
        for bench in chosen:
            runs: list[dict[str, Any]] = []
            error = None
            started = datetime.now(UTC)
            began = time.monotonic()
            for index in range(args.runs or bench.runs):
                print(f"== {bench.name} run {index + 1}: python -m {bench.module}", flush=True)
                run_began = time.monotonic()
                try:
                    runs.append(run_once(bench, args.quick, Path(tmp), index))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    error = str(exc)
                    print(error, flush=True)
                    break
                print(f"   done in {time.monotonic() - run_began:.0f}s", flush=True)
            failed += error is not None
            measured = (
                f"Measured {started:%Y-%m-%d %H:%M} UTC: {len(runs)} "
                f"run{'s' if len(runs) != 1 else ''} in {(time.monotonic() - began) / 60:.0f} min"
                f"{' (--quick sizes)' if args.quick else ''}."
            )
            sections[bench.name] = section(bench, runs, error, measured)
            # Written after every benchmark: a long suite that stops keeps what it measured.
            # Read again first, so sections another run wrote meanwhile are kept.
            if args.output.exists():
                previous = args.output.read_text()
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(assemble(previous, sections, head))
    print(f"wrote {args.output} ({'with failures' if failed else 'all benchmarks ran'})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
