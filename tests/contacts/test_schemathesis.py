"""Property-based API test: schemathesis drives every documented operation of a real process.

The service runs as a subprocess (as in production) against FerretDB, with a tiny stand-in for
notifier and reminders, and must never answer with a server error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth import issue_access_token, issue_service_token
from tests.support.processes import ServiceProcess, service_process
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET, base_env

USER_ID = uuid.uuid4().hex


class _Upstream(BaseHTTPRequestHandler):
    """Answers like notifier and reminders do on success."""

    def _answer(self, status: int, body: Any = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer(201, {"id": "m1", "status": "queued"})

    def do_DELETE(self) -> None:
        self._answer(204)

    def do_GET(self) -> None:
        self._answer(200, {"touchpoints": []})

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A stand-in for notifier and reminders on a free local port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def contacts_process(
    mongodb_uri: str, upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The contacts service as a real process with one user in its database."""
    db_name = f"t_{uuid.uuid4().hex[:16]}"
    env = base_env(
        mongodb_uri,
        db_name,
        notifier_url=upstream,
        reminders_url=upstream,
        log_format="text",
        log_level="WARNING",
    )
    proc = service_process("contacts", env, Path(tmp_path_factory.mktemp("schemathesis")))
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        client.drop_database(db_name)
        client.close()


def _ensure_user(mongodb_uri: str, db_name: str) -> None:
    # DELETE /v1/me may have erased the account; each operation starts with it in place.
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        now = datetime.now(UTC)
        doc = {
            "phone": "+14155550123",
            "name": "Test",
            "time_zone": "UTC",
            "region": "US",
            "locale": "en",
            "created_at": now,
            "updated_at": now,
        }
        client[db_name]["users"].replace_one({"_id": USER_ID}, doc, upsert=True)
    finally:
        client.close()


def test_no_server_errors(contacts_process: ServiceProcess, mongodb_uri: str) -> None:
    """Whatever schemathesis sends to any operation, the service answers without a 5xx."""
    api = schemathesis.openapi.from_url(contacts_process.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 30

    def headers_for(path: str) -> dict[str, str]:
        if path.startswith("/internal/"):
            token = issue_service_token(INTERNAL_SECRET, "reminders", "contacts")
        else:
            token = issue_access_token(JWT_SECRET, USER_ID, "networker")
        return {"Authorization": f"Bearer {token}"}

    statuses: Counter[int] = Counter()
    for operation in operations:
        _ensure_user(mongodb_uri, contacts_process.env["DB_NAME"])

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(
                base_url=contacts_process.url,
                headers=headers_for(case.path),
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )
            statuses[response.status_code] += 1

        run()
    # Both accepted and refused requests were exercised.
    assert sum(n for s, n in statuses.items() if s < 300) > 50, statuses
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 50, statuses
    print(dict(statuses))
