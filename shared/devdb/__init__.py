"""Development and test database: MONGODB_URI if set, else a local engine started on loopback.

The default engine is mongo-java-server (in memory for tests, an H2 file for ``make run``);
``TOUCHBASE_DEVDB=ferretdb`` selects FerretDB v1.24 (SQLite) and ``TOUCHBASE_DEVDB=mongod`` a
``mongod`` on PATH, which is also taken by default when present. Run ``python -m shared.devdb``
to start one in the foreground (Ctrl-C stops it); tests and the dev stack use
:class:`DevDatabase` directly.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path

from shared.devdb.common import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    DevDatabaseError,
    die_with_parent,
    free_port,
    ping,
    tools_dir,
)
from shared.devdb.server import ENGINES, FERRETDB, MONGO_JAVA_SERVER, DevDatabase, install

__all__ = [
    "DEFAULT_DATA_DIR",
    "ENGINES",
    "FERRETDB",
    "MONGO_JAVA_SERVER",
    "REPO_ROOT",
    "DevDatabase",
    "DevDatabaseError",
    "die_with_parent",
    "free_port",
    "main",
    "ping",
    "tools_dir",
]


def main(argv: list[str] | None = None) -> int:
    """Command line: install (``--install-only``) or run the development database."""
    parser = argparse.ArgumentParser(prog="python -m shared.devdb", description=__doc__)
    parser.add_argument("--port", type=int, default=27017, help="port on 127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state directory")
    parser.add_argument(
        "--engine", choices=ENGINES, help="engine to run (default: $TOUCHBASE_DEVDB, see above)"
    )
    parser.add_argument(
        "--install-only", action="store_true", help="install the engine if missing and exit"
    )
    args = parser.parse_args(argv)
    try:
        if args.install_only:
            print(f"touchbase: {install(args.engine)}")
            return 0
        db = DevDatabase(data_dir=args.data_dir, port=args.port, engine=args.engine, quiet=False)
        uri = db.start()
    except DevDatabaseError as exc:
        print(f"touchbase: {exc}", file=sys.stderr)
        return 1
    print(f"touchbase: {db.description} database ready at {uri}  (Ctrl-C stops it)", flush=True)
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
