"""FerretDB v1.24 with its SQLite backend: the second, independent wire implementation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from shared.devdb.common import DevDatabaseError, run_step, tools_dir

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"


def _ferretdb_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError:
        return None
    for line in out.stdout.splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return None


def find_ferretdb() -> Path | None:
    """A FerretDB binary of the pinned version: ``$FERRETDB_BIN``, the tools dir, or PATH."""
    candidates = []
    if os.environ.get("FERRETDB_BIN"):
        candidates.append(Path(os.environ["FERRETDB_BIN"]))
    candidates.append(tools_dir() / "bin" / "ferretdb")
    on_path = shutil.which("ferretdb")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and _ferretdb_version(candidate) == FERRETDB_VERSION:
            return candidate
    return None


def install_ferretdb(log: bool = True) -> Path:
    """Build the pinned FerretDB from the Go module proxy into the tools dir.

    ``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` builds, but the binary
    panics at start: the module archive lacks the generated ``build/version/version.txt`` that
    FerretDB checks when it is the main module. So the same module is vendored into a small
    build module, the version file its ``gen-version`` task would write is added, and the
    unchanged ``cmd/ferretdb`` package is built from there.
    """
    go = shutil.which("go")
    if go is None:
        raise DevDatabaseError(
            "FerretDB was asked for (TOUCHBASE_DEVDB=ferretdb), but Go is not installed to "
            "build it.\n"
            "Do one of:\n"
            "  - set MONGODB_URI=mongodb://host:port to use an existing MongoDB (or FerretDB);\n"
            "  - run `docker compose up -d mongo` and set MONGODB_URI=mongodb://127.0.0.1:27017;\n"
            "  - install Go 1.22+ (https://go.dev/dl/) so FerretDB can be built locally;\n"
            "  - unset TOUCHBASE_DEVDB to use the default development database."
        )
    target = tools_dir() / "bin" / "ferretdb"
    build = tools_dir() / "ferretdb-build"
    build.mkdir(parents=True, exist_ok=True)
    (build / "go.mod").write_text("module touchbase.local/ferretdb-build\n\ngo 1.22\n")
    (build / "tools.go").write_text(
        f'//go:build tools\n\npackage tools\n\nimport _ "{FERRETDB_MODULE}/cmd/ferretdb"\n'
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    steps = [
        [go, "get", f"{FERRETDB_MODULE}/cmd/ferretdb@{FERRETDB_VERSION}"],
        [go, "mod", "tidy"],
        [go, "mod", "vendor"],
    ]
    if log:
        print(f"touchbase: building FerretDB {FERRETDB_VERSION} (first run only)...", flush=True)
    for step in steps:
        run_step(step, build, env, "building FerretDB")
    version_file = build / "vendor" / "github.com" / "FerretDB" / "FerretDB" / "build"
    (version_file / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    env["GOFLAGS"] = "-mod=vendor"
    run_step(
        [go, "build", "-o", str(target), f"{FERRETDB_MODULE}/cmd/ferretdb"],
        build,
        env,
        "building FerretDB",
    )
    if _ferretdb_version(target) != FERRETDB_VERSION:
        raise DevDatabaseError(f"the FerretDB built at {target} does not report {FERRETDB_VERSION}")
    return target


def ensure_ferretdb() -> Path:
    """The FerretDB binary, built first if missing."""
    return find_ferretdb() or install_ferretdb()


def ferretdb_command(binary: Path, state: Path, port: int) -> list[str]:
    """The command line that serves ``state`` (a directory) on 127.0.0.1:``port``."""
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{state}/",
        f"--state-dir={state}",
        f"--listen-addr=127.0.0.1:{port}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]
