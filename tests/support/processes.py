"""Run services as real subprocesses on free ports, as production does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shared.devdb import die_with_parent, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    """One service process: where it listens and how to stop it."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Spawn the process and wait for ``/healthz``."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=REPO_ROOT,
                env={**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.logs()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.logs()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL) and return its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        return process.returncode

    def kill(self) -> None:
        """kill -9: no shutdown handlers run."""
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        """Everything the process wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service_process(name: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """A not-yet-started service process on a free port."""
    port = free_port()
    return ServiceProcess(name=name, port=port, env=env, log_path=log_dir / f"{name}-{port}.log")
