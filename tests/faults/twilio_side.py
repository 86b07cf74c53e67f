"""A local stand-in for Twilio's Messages API that fails on purpose, and records every request.

It answers ``POST /2010-04-01/Accounts/{sid}/Messages.json`` like Twilio (201 with a message
resource, or Twilio's error format). When ``flaky`` is on, a seeded share of the requests gets a
500 or 503 (code 20500), a 429 (code 20429) or a hang longer than the notifier's send timeout.
A hang is the worst case for duplicates: the stub *accepts* the message (it counts as sent to
the handset) and then never answers in time, exactly like a Twilio answer lost on the way back.
It runs on a thread of the test process, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fault-suite-twilio-auth-token-0001"
FROM_NUMBER = "+15005550006"
_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")


@dataclass
class Request:
    """One request the stub received and what it did with it."""

    to: str
    body: str
    status_callback: str | None
    outcome: str  # accepted | timeout_accepted | 500 | 503 | 429
    sid: str | None

    @property
    def accepted(self) -> bool:
        """Whether the message went on to the handset."""
        return self.sid is not None


@dataclass
class FlakyTwilio:
    """The stub's behaviour and its record of requests."""

    failure_rate: float = 0.2
    hang_s: float = 4.0
    seed: int = 7
    flaky: bool = False
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @property
    def url(self) -> str:
        """Base URL to give the notifier as ``TWILIO_API_BASE_URL``."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve on a free loopback port, on a daemon thread."""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (hanging answers are abandoned)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _choose(self) -> str:
        with self._lock:
            if not self.flaky or self._random.random() >= self.failure_rate:
                return "accepted"
            return self._random.choice(["500", "503", "429", "timeout_accepted"])

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        match = _PATH.match(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        if match is None or "To" not in form:
            self._answer(handler, 404, {"code": 20404, "message": "not found", "status": 404})
            return
        outcome = self._choose()
        sid = "SM" + uuid.uuid4().hex if outcome in ("accepted", "timeout_accepted") else None
        with self._lock:
            self.requests.append(
                Request(form["To"], form.get("Body", ""), form.get("StatusCallback"), outcome, sid)
            )
        if outcome == "timeout_accepted":
            time.sleep(self.hang_s)
        if sid is None:
            status = int(outcome)
            code = 20429 if status == 429 else 20500
            body = {"code": code, "message": f"injected {status}", "status": status}
            self._answer(handler, status, body)
            return
        resource = {
            "sid": sid,
            "account_sid": match.group(1),
            "status": "queued",
            "to": form["To"],
            "from": form.get("From"),
            "body": form.get("Body", ""),
            "num_segments": "1",
            "direction": "outbound-api",
        }
        self._answer(handler, 201, resource)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: dict[str, object]) -> None:
        raw = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except OSError:
            # The caller gave up waiting (a timeout we caused on purpose).
            pass

    def snapshot(self) -> list[Request]:
        """A copy of the requests so far."""
        with self._lock:
            return list(self.requests)

    def latest_code(self, to: str) -> str | None:
        """The sign-in code most recently accepted for ``to``."""
        for request in reversed(self.snapshot()):
            if request.to == to and request.accepted:
                found = re.search(r"\b(\d{6})\b", request.body)
                if found and "code" in request.body:
                    return found.group(1)
        return None
