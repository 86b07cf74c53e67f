"""Prism serving Twilio's own OpenAPI spec (api v2010), as a subprocess on a free local port."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from shared.devdb import free_port
from tests.support.processes import REPO_ROOT

PRISM_BIN = REPO_ROOT / "node_modules" / ".bin" / "prism"
TWILIO_SPEC = (
    REPO_ROOT / "node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"
)


def prism_available() -> bool:
    """Whether ``npm ci`` (run by scripts/bootstrap) has installed Prism and the spec."""
    return PRISM_BIN.exists() and TWILIO_SPEC.exists()


class PrismServer:
    """``prism mock`` of Twilio's API on 127.0.0.1; it validates every request against the spec.

    Static examples (no ``-d``): answers are the spec's examples, so they are stable and parse
    in the SDK; invalid requests (missing ``To``, no credentials) get a 4xx from Prism.
    """

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL to use instead of https://api.twilio.com."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        """Spawn Prism and wait until it answers HTTP."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(TWILIO_SPEC)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prism exited at start:\n{self.logs()[-2000:]}")
            try:
                # Any HTTP answer (here 401 for missing credentials) means Prism is serving.
                urllib.request.urlopen(self.url + "/2010-04-01/Accounts.json", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"prism did not start in {timeout_s}s:\n{self.logs()[-2000:]}")

    def stop(self) -> None:
        """Terminate Prism (kill if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def logs(self) -> str:
        """What Prism printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
