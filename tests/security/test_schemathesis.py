"""Property-based fuzzing of every published OpenAPI document against the running system.

All three services serve ``/openapi.json`` (public and internal operations, and the notifier's
signed Twilio webhooks). schemathesis runs each document through its examples, coverage, fuzzing
and stateful phases (links it infers between operations, e.g. a created contact's id fed to the
operations on one contact) with several fixed seeds, one worker and no example database, so a run
is repeatable and bounded by the number of examples. Whatever it sends, no service answers 5xx;
503 is kept for a dependency that is down, and none is down here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import running_stack
from tests.security.support import OPERATOR_PHONE, User, call, outbox, sign_in
from tests.support.processes import REPO_ROOT
from tests.support.stack import SERVICES, Stack

# The first seed runs every phase; the others repeat only the seeded ones (examples and coverage
# send the same requests whatever the seed). Sized for about 30 s per document on two cores.
SEEDS = (1, 2, 3)
MAX_EXAMPLES = 12
# Guards against a hang only: a busy machine may take several times the usual 10 s per run.
RUN_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def fuzzed(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A system of its own: the fuzzer changes policies and deletes accounts."""
    yield from running_stack(mongodb_uri, Path(tmp_path_factory.mktemp("fuzz")))


@pytest.fixture(scope="module")
def people(fuzzed: Stack) -> dict[str, User]:
    return {"user": sign_in(fuzzed, "+12125550361"), "operator": sign_in(fuzzed, OPERATOR_PHONE)}


@pytest.fixture(scope="module")
def real_ids(fuzzed: Stack, people: dict[str, User]) -> dict[str, str]:
    """Ids that exist (the networker's contact, interaction, referral; a message)."""
    user = people["user"]
    base = fuzzed.url("contacts")
    contact = call(
        "POST", base + "/v1/contacts", {"name": "Dana Lee", "tier": "A"}, token=user.access
    )
    assert contact.status == 201, contact.json
    cid = contact.json["id"]
    met = call(
        "POST", f"{base}/v1/contacts/{cid}/interactions", {"kind": "coffee"}, token=user.access
    )
    assert met.status == 201, met.json
    referral = call(
        "POST", base + "/v1/referrals", {"direction": "given", "contact_id": cid}, token=user.access
    )
    assert referral.status == 201, referral.json
    return {
        "user_id": user.id,
        "contact_id": cid,
        "interaction_id": met.json["id"],
        "referral_id": referral.json["id"],
        "message_id": outbox(fuzzed, user.phone)[0]["id"],
    }


def fuzz(
    stack: Stack, service: str, people: dict[str, User], ids: dict[str, str], work: Path
) -> Counter[int]:
    """Run schemathesis on one document with every seed; the statuses it got back."""
    log = work / f"{service}.jsonl"
    context = work / f"{service}.json"
    context.write_text(
        json.dumps(
            {
                "service": service,
                "user_id": people["user"].id,
                "operator_id": people["operator"].id,
                "ids": ids,
                "log": str(log),
            }
        )
    )
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks",
        "TOUCHBASE_FUZZ_CONTEXT": str(context),
        "PYTHONPATH": str(REPO_ROOT),
    }
    for number, seed in enumerate(SEEDS):
        phases = "examples,coverage,fuzzing,stateful" if number == 0 else "fuzzing,stateful"
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            stack.url(service) + "/openapi.json",
            f"--phases={phases}",
            f"--seed={seed}",
            f"--max-examples={MAX_EXAMPLES}",
            "--workers=1",
            "--generation-database=none",
            "--checks=not_a_server_error",
            "--continue-on-failure",
            "--suppress-health-check=all",
            "--request-timeout=20",
            "--no-color",
            # Deleting the account would sign the fuzzer out; tests/security/test_access.py
            # and the deletion tests cover that operation.
            "--exclude-operation-id=delete_me",
        ]
        ran = subprocess.run(
            command,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert ran.returncode == 0, (seed, ran.stdout[-4000:], ran.stderr[-2000:])
    answers = [json.loads(line) for line in log.read_text().splitlines()]
    server_errors = [a for a in answers if a["status"] >= 500]
    assert not server_errors, server_errors[:10]
    return Counter(a["status"] for a in answers)


def assert_dependencies_up(stack: Stack) -> None:
    """Every service is ready: no dependency was down, so no 503 was deserved."""
    for name in SERVICES:
        ready = call("GET", stack.url(name) + "/readyz")
        assert ready.status == 200, (name, ready.json)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICES)
def test_document_causes_no_server_errors(
    service: str,
    fuzzed: Stack,
    people: dict[str, User],
    real_ids: dict[str, str],
    tmp_path: Path,
) -> None:
    if service == "notifier":
        from openapi_spec_validator import validate

        got = call("GET", fuzzed.url("notifier") + "/openapi.json")
        assert got.status == 200
        validate(got.json)
    statuses = fuzz(fuzzed, service, people, real_ids, tmp_path)
    assert_dependencies_up(fuzzed)
    assert 503 not in statuses, statuses
    # Both accepted and refused requests were exercised (the notifier's unsigned webhooks are
    # refused with 403, invalid bodies with 4xx).
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > 50, statuses
    assert sum(n for s, n in statuses.items() if s < 300) > 20, statuses
    print(service, dict(sorted(statuses.items())))
