"""Hooks of the schemathesis CLI runs in test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Every request carries the credentials its path needs (a networker under /v1, an operator under
/admin, a service token under /internal), half of the generated path ids are swapped for ids that
exist (so requests reach the code behind the lookups), and every answer is logged to a file for
the test to count. The context comes from the JSON file named by ``TOUCHBASE_FUZZ_CONTEXT``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import schemathesis

from shared.auth import issue_access_token, issue_service_token
from tests.support.settings import INTERNAL_SECRET, JWT_SECRET

CONTEXT: dict[str, Any] = json.loads(Path(os.environ["TOUCHBASE_FUZZ_CONTEXT"]).read_text())
_LOCK = threading.Lock()


def _swap(value: object) -> bool:
    # Decided by the generated value itself, so a seeded run swaps the same ids every time.
    return hashlib.sha256(repr(value).encode()).digest()[0] % 2 == 0


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Authenticate the request as its path requires; point half of the ids at real ones."""
    path: str = case.path
    if path.startswith("/internal/"):
        token = issue_service_token(INTERNAL_SECRET, "cli", CONTEXT["service"])
    elif path.startswith("/admin/"):
        token = issue_access_token(JWT_SECRET, CONTEXT["operator_id"], "operator")
    else:
        token = issue_access_token(JWT_SECRET, CONTEXT["user_id"], "networker")
    if case.headers is None:
        case.headers = {}
    case.headers["Authorization"] = f"Bearer {token}"
    real: dict[str, str] = CONTEXT["ids"]
    for key, value in list((case.path_parameters or {}).items()):
        if key in real and _swap(value):
            case.path_parameters[key] = real[key]


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    """Log the answer (and, for a server error, the request that caused it)."""
    entry: dict[str, Any] = {
        "status": response.status_code,
        "method": case.method,
        "path": case.path,
    }
    if response.status_code >= 500:
        body = response.request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        entry.update(url=response.request.url, body=body, response=response.text[:300])
    with _LOCK, Path(CONTEXT["log"]).open("a") as log:
        log.write(json.dumps(entry) + "\n")
