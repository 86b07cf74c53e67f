"""What every development database engine shares: paths, ports, child processes, ping."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
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


def run_step(cmd: list[str], cwd: Path, env: dict[str, str] | None, what: str) -> None:
    """Run one install step; a failure raises with the tool's own message and a way out."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-4000:]
        raise DevDatabaseError(
            f"{what} failed at `{' '.join(cmd)}`:\n{output}\n"
            "Set MONGODB_URI to use an existing MongoDB instead."
        )
