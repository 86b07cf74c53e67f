"""Property-based fuzzing of every published OpenAPI document against the running system.

All three services serve ``/openapi.json`` (public and internal operations, and the notifier's
signed Twilio webhooks). Whatever schemathesis sends, no service answers 5xx.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from shared.auth import issue_service_token
from tests.security.conftest import running_stack
from tests.security.support import OPERATOR_PHONE, User, call, sign_in
from tests.support.settings import INTERNAL_SECRET
from tests.support.stack import Stack

BUDGET_S = 25.0  # per document; the whole module stays near a minute
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzzed(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A system of its own: the fuzzer changes policies and deletes accounts."""
    yield from running_stack(mongodb_uri, Path(tmp_path_factory.mktemp("fuzz")))


@pytest.fixture(scope="module")
def people(fuzzed: Stack) -> dict[str, User]:
    return {"user": sign_in(fuzzed, "+12125550361"), "operator": sign_in(fuzzed, OPERATOR_PHONE)}


def fuzz(stack: Stack, service: str, people: dict[str, User]) -> Counter[int]:
    api = schemathesis.openapi.from_url(stack.url(service) + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert operations, service

    def headers_for(path: str) -> dict[str, str]:
        if path.startswith("/internal/"):
            token = issue_service_token(INTERNAL_SECRET, "cli", service)
        elif path.startswith("/admin/"):
            token = people["operator"].access
        else:
            token = people["user"].access
        return {"Authorization": f"Bearer {token}"}

    statuses: Counter[int] = Counter()
    failures: list[str] = []
    deadline = time.monotonic() + BUDGET_S
    for operation in operations:
        if time.monotonic() > deadline:
            break

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=stack.url(service), headers=headers_for(case.path))
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path}: {response.status_code}")
            case.validate_response(response, checks=[not_a_server_error])

        run()
    assert not failures, failures
    return statuses


def test_contacts_document_causes_no_server_errors(fuzzed: Stack, people: dict[str, User]) -> None:
    statuses = fuzz(fuzzed, "contacts", people)
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 20, statuses


def test_reminders_document_causes_no_server_errors(fuzzed: Stack, people: dict[str, User]) -> None:
    statuses = fuzz(fuzzed, "reminders", people)
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 20, statuses


def test_notifier_document_causes_no_server_errors(fuzzed: Stack, people: dict[str, User]) -> None:
    from openapi_spec_validator import validate

    got = call("GET", fuzzed.url("notifier") + "/openapi.json")
    assert got.status == 200
    validate(got.json)
    statuses = fuzz(fuzzed, "notifier", people)
    # Unsigned webhooks are refused (403), invalid bodies too (4xx): never a 5xx.
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 20, statuses
