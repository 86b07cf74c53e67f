"""Development and test database: MONGODB_URI if set, else a local mongod, else FerretDB.

Run ``python -m shared.devdb`` to start one in the foreground (Ctrl-C stops it); tests and the
dev stack use :class:`DevDatabase` directly.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from pymongo import MongoClient
from pymongo.errors import PyMongoError

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".data"


class DevDatabaseError(RuntimeError):
    """The development database could not be provided; the message says what to do."""


def tools_dir() -> Path:
    """Where project tools are installed: ``$TOUCHBASE_TOOLS_DIR`` or a per-user cache."""
    env = os.environ.get("TOUCHBASE_TOOLS_DIR")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "touchbase" / "tools"


# Resolved here, in the parent: between fork and exec the child may only make the call itself.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process: be sent SIGTERM when the parent dies (Linux; a no-op elsewhere).

    A test run that is killed outright runs no teardown; this keeps the servers it started
    from outliving it.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            "no database available: MONGODB_URI is not set, no mongod is on PATH, and Go is not "
            "installed to build FerretDB.\n"
            "Do one of:\n"
            "  - set MONGODB_URI=mongodb://host:port to use an existing MongoDB (or FerretDB);\n"
            "  - run `docker compose up -d mongo` and set MONGODB_URI=mongodb://127.0.0.1:27017;\n"
            "  - install Go 1.22+ (https://go.dev/dl/) so FerretDB can be built locally."
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
        _run_go(step, build, env)
    version_file = build / "vendor" / "github.com" / "FerretDB" / "FerretDB" / "build"
    (version_file / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    env["GOFLAGS"] = "-mod=vendor"
    _run_go([go, "build", "-o", str(target), f"{FERRETDB_MODULE}/cmd/ferretdb"], build, env)
    if _ferretdb_version(target) != FERRETDB_VERSION:
        raise DevDatabaseError(f"the FerretDB built at {target} does not report {FERRETDB_VERSION}")
    return target


def _run_go(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevDatabaseError(
            f"building FerretDB failed at `{' '.join(cmd[1:])}`:\n{result.stderr.strip()}\n"
            "Set MONGODB_URI to use an existing MongoDB instead."
        )


def ensure_ferretdb() -> Path:
    """The FerretDB binary, built first if missing."""
    return find_ferretdb() or install_ferretdb()


def ping(uri: str, timeout_s: float = 2.0) -> bool:
    """Whether a MongoDB-wire server answers ``ping`` at ``uri``."""
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000)
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class DevDatabase:
    """A database server for development and tests; a no-op wrapper when MONGODB_URI is set."""

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        uri: str | None = None,
        quiet: bool = True,
    ) -> None:
        self.external_uri = uri if uri is not None else os.environ.get("MONGODB_URI") or None
        self.data_dir = data_dir
        self.port = port
        self.quiet = quiet
        self.kind = "external" if self.external_uri else ""
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._command: list[str] = []
        self._env: dict[str, str] = {}

    @property
    def uri(self) -> str:
        """The connection string of the running server."""
        if self.external_uri:
            return self.external_uri
        if self.port is None:
            raise DevDatabaseError("the database is not started")
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start (or check) the server and wait until it answers ``ping``; return its URI."""
        if self.external_uri:
            if not ping(self.external_uri, timeout_s=min(timeout_s, 10.0)):
                raise DevDatabaseError(f"MONGODB_URI is set but nothing answers there: {self.uri}")
            return self.uri
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="touchbase-db-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        mongod = shutil.which("mongod")
        if mongod:
            self.kind = "mongod"
            dbpath = self.data_dir / "mongod"
            dbpath.mkdir(exist_ok=True)
            self._command = [
                mongod,
                "--bind_ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dbpath",
                str(dbpath),
                "--quiet",
            ]
        else:
            self.kind = "ferretdb"
            binary = ensure_ferretdb()
            state = self.data_dir / "ferretdb"
            state.mkdir(exist_ok=True)
            self._command = [
                str(binary),
                "--handler=sqlite",
                f"--sqlite-url=file:{state}/",
                f"--state-dir={state}",
                f"--listen-addr=127.0.0.1:{self.port}",
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=warn",
            ]
        self._env = {**os.environ, "DO_NOT_TRACK": "1"}
        self._log_path = self.data_dir / f"{self.kind}.log"
        self._spawn()
        self._wait_ready(timeout_s)
        return self.uri

    def _spawn(self) -> None:
        assert self._log_path is not None
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                # Own process group: a Ctrl-C in the terminal is handled by us, in order.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self._log_path.read_text(errors="replace")[-2000:] if self._log_path else ""
                raise DevDatabaseError(f"{self.kind} exited at start:\n{tail}")
            if ping(self.uri, timeout_s=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise DevDatabaseError(f"{self.kind} did not answer ping within {timeout_s:g}s")

    def stop(self) -> None:
        """Stop the server if this object started it (the data stays for :meth:`restart`)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def restart(self, timeout_s: float = 60.0) -> None:
        """Start the stopped server again on the same port and data."""
        if self.external_uri:
            raise DevDatabaseError("cannot restart a database given by MONGODB_URI")
        self._spawn()
        self._wait_ready(timeout_s)

    def close(self) -> None:
        """Stop the server and remove a temporary data directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DevDatabase:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: install (``--install-only``) or run the development database."""
    parser = argparse.ArgumentParser(prog="python -m shared.devdb", description=__doc__)
    parser.add_argument("--port", type=int, default=27017, help="port on 127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state directory")
    parser.add_argument(
        "--install-only", action="store_true", help="build FerretDB if missing and exit"
    )
    args = parser.parse_args(argv)
    try:
        if args.install_only:
            if os.environ.get("MONGODB_URI") or shutil.which("mongod"):
                print("touchbase: a database is configured; FerretDB is not needed")
            else:
                print(f"touchbase: FerretDB at {ensure_ferretdb()}")
            return 0
        db = DevDatabase(data_dir=args.data_dir, port=args.port, quiet=False)
        uri = db.start()
    except DevDatabaseError as exc:
        print(f"touchbase: {exc}", file=sys.stderr)
        return 1
    print(f"touchbase: {db.kind} database ready at {uri}  (Ctrl-C stops it)", flush=True)
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and (db.process is None or db.process.poll() is None):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            db.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
