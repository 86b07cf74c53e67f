"""Small helpers the benchmarks share for their sections of docs/BENCHMARKS.md."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.devdb import FERRETDB, MONGO_JAVA_SERVER
from shared.devdb.ferretdb import FERRETDB_VERSION
from shared.devdb.javaserver import MJS_VERSION
from shared.devdb.server import MONGOD, chosen_engine

EXTERNAL = "external"


def median_range(values: Sequence[float], fmt: str = ".1f") -> str:
    """The median of ``values``, followed by their range when runs differ: ``12.3 (11.0-14.2)``."""
    if fmt == ".1f" and all(float(v).is_integer() for v in values):
        fmt = ".0f"  # counts read better without a decimal
    mid = statistics.median(values)
    low, high = min(values), max(values)
    if len(values) > 1 and f"{low:{fmt}}" != f"{high:{fmt}}":
        return f"{mid:{fmt}} ({low:{fmt}}-{high:{fmt}})"
    return f"{mid:{fmt}}"


# -- which database the runs used ---------------------------------------------------------------
#
# Every benchmark records ``DevDatabase().kind`` as ``meta["database"]`` ("mongo-java-server",
# "ferretdb", "mongod" or "external"; older runs may say "mongodb" for an external server), and
# its render() says what that engine's limits mean for the figures.


def engine_in_use() -> str:
    """The engine a benchmark started now runs on: ``external`` when MONGODB_URI is set, else
    ``TOUCHBASE_DEVDB``'s choice (a mongod on PATH, else mongo-java-server)."""
    return EXTERNAL if os.environ.get("MONGODB_URI") else chosen_engine()


def engine_label(kind: str) -> str:
    """An engine's name for people, with its version where the project pins one."""
    if kind == MONGO_JAVA_SERVER:
        return f"mongo-java-server {MJS_VERSION}"
    if kind == FERRETDB:
        return f"FerretDB {FERRETDB_VERSION.lstrip('v')} (SQLite backend)"
    if kind == MONGOD:
        return "the mongod found on PATH"
    if kind in (EXTERNAL, "mongodb"):
        return "the server named by MONGODB_URI"
    return kind or "unknown"


def engines(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The engines the runs recorded in ``meta["database"]``, in the order first seen."""
    seen: list[str] = []
    for run in runs:
        kind = str(run.get("meta", {}).get("database") or "unknown")
        if kind not in seen:
            seen.append(kind)
    return seen


def used_ferretdb(runs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of the runs used FerretDB (whose scans the caveats must then explain)."""
    return FERRETDB in engines(runs)


def used_mongo_java_server(runs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of the runs used mongo-java-server."""
    return MONGO_JAVA_SERVER in engines(runs)


def describe(kind: str, description: str = "") -> str:
    """An engine with where it keeps its data, from ``DevDatabase.kind`` and ``.description``:
    ``mongo-java-server 1.47.0 (in memory)``."""
    detail = description.removeprefix(kind).strip(" ,") if description else ""
    return f"{engine_label(kind)} ({detail})" if detail else engine_label(kind)


def database_of(runs: Iterable[Mapping[str, Any]]) -> str:
    """The database of the runs for a section's machine line (several when the runs differ)."""
    described: list[str] = []
    for run in runs:
        meta = run.get("meta", {})
        kind = str(meta.get("database") or "unknown")
        text = describe(kind, str(meta.get("database_description") or ""))
        if text not in described:
            described.append(text)
    return " / ".join(described)


def mongo_java_server_caveat(lookups: str = "") -> str:
    """The caveat for runs on mongo-java-server; ``lookups`` names the queries that scan."""
    return (
        "mongo-java-server caveat: it serves `_id` and unique-index lookups from an index but "
        "builds no non-unique secondary index, so queries on such fields"
        + (f" ({lookups})" if lookups else "")
        + " scan their collection in memory and grow with it; it runs on the same machine as "
        "everything else and is not MongoDB, so absolute figures say little about MongoDB "
        "(the ratios and growth shapes are the point)."
    )
