"""The development and test database server: which engine, started how, stopped when."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from shared.devdb import ferretdb, javaserver
from shared.devdb.common import DevDatabaseError, die_with_parent, free_port, ping

MONGO_JAVA_SERVER = "mongo-java-server"
FERRETDB = "ferretdb"
MONGOD = "mongod"
ENGINES = (MONGO_JAVA_SERVER, FERRETDB, MONGOD)


def chosen_engine(explicit: str | None = None) -> str:
    """The engine to run: ``explicit``, else ``$TOUCHBASE_DEVDB``, else mongod on PATH, else
    mongo-java-server."""
    name = (explicit or os.environ.get("TOUCHBASE_DEVDB") or "").strip().lower()
    if name:
        if name not in ENGINES:
            raise DevDatabaseError(
                f"TOUCHBASE_DEVDB={name!r} is not a known engine; use one of {', '.join(ENGINES)}"
            )
        return name
    return MONGOD if shutil.which(MONGOD) else MONGO_JAVA_SERVER


class DevDatabase:
    """A database server for development and tests; a no-op wrapper when MONGODB_URI is set.

    Without ``data_dir`` the state lives in a temporary place and is removed by :meth:`close`;
    mongo-java-server then keeps it in memory. With ``data_dir`` (or ``persistent=True``) it is
    kept on disk: mongo-java-server uses its H2 backend, flushed on a normal stop.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        uri: str | None = None,
        engine: str | None = None,
        persistent: bool | None = None,
        quiet: bool = True,
    ) -> None:
        self.external_uri = uri if uri is not None else os.environ.get("MONGODB_URI") or None
        self.data_dir = data_dir
        self.port = port
        self.quiet = quiet
        self.persistent = data_dir is not None if persistent is None else persistent
        self.engine = "external" if self.external_uri else chosen_engine(engine)
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._command: list[str] = []
        self._env: dict[str, str] = {}

    @property
    def kind(self) -> str:
        """The engine's name: ``mongo-java-server``, ``ferretdb``, ``mongod`` or ``external``."""
        return self.engine

    @property
    def description(self) -> str:
        """The engine and where it keeps its state, for people."""
        if self.engine == MONGO_JAVA_SERVER:
            return f"{self.engine}, {'H2 file' if self.persistent else 'in memory'}"
        return self.engine

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
        self._command = self._build_command(self.data_dir, self.port)
        self._env = {**os.environ, "DO_NOT_TRACK": "1"}
        self._log_path = self.data_dir / f"{self.engine}.log"
        self._spawn()
        self._wait_ready(timeout_s)
        return self.uri

    def _build_command(self, data_dir: Path, port: int) -> list[str]:
        if self.engine == MONGOD:
            mongod = shutil.which(MONGOD)
            if mongod is None:
                raise DevDatabaseError("TOUCHBASE_DEVDB=mongod, but no mongod is on PATH")
            dbpath = data_dir / "mongod"
            dbpath.mkdir(exist_ok=True)
            return [
                mongod,
                *("--bind_ip", "127.0.0.1", "--port", str(port)),
                *("--dbpath", str(dbpath), "--quiet"),
            ]
        if self.engine == FERRETDB:
            state = data_dir / "ferretdb"
            state.mkdir(exist_ok=True)
            return ferretdb.ferretdb_command(ferretdb.ensure_ferretdb(), state, port)
        h2_file = None
        if self.persistent:
            state = data_dir / MONGO_JAVA_SERVER
            state.mkdir(exist_ok=True)
            h2_file = state / "touchbase.mv.db"
        return javaserver.server_command(port, h2_file)

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
                raise DevDatabaseError(f"{self.engine} exited at start:\n{tail}")
            if ping(self.uri, timeout_s=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise DevDatabaseError(f"{self.engine} did not answer ping within {timeout_s:g}s")

    def stop(self) -> None:
        """Stop the server if this object started it (on-disk state stays for :meth:`restart`)."""
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
        """Start the stopped server again on the same port and data (empty when in memory)."""
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


def install(engine: str | None = None) -> str:
    """Install what the chosen engine needs (nothing for an external one); say what it is."""
    if os.environ.get("MONGODB_URI"):
        return "MONGODB_URI is set; no local database is needed"
    name = chosen_engine(engine)
    if name == MONGOD:
        return f"using the mongod on PATH ({shutil.which(MONGOD)})"
    if name == FERRETDB:
        return f"FerretDB at {ferretdb.ensure_ferretdb()}"
    return f"mongo-java-server {javaserver.MJS_VERSION} at {javaserver.install()}"
