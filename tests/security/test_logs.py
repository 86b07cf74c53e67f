"""After the suite has attacked the system, no log line gives away a secret.

Runs last (tests/security/conftest.py orders it): by then the services have handled sign-ins,
refreshes, forged tokens, webhooks, SMS replies and every injection attempt above. Services log at
INFO here, so everything they wrote is at info level or above.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.security.support import SEEN
from tests.support.stack import Stack


def lines(log_dir: Path) -> list[tuple[str, str]]:
    found = [
        (path.name, line)
        for path in sorted(log_dir.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]
    assert found, f"no logs in {log_dir}"
    return found


PARSER_ERROR = '"logger": "aiohttp.server"'


def leaks(logged: list[tuple[str, str]]) -> list[str]:
    """Every log line that contains something the suite marked as secret."""
    assert SEEN.phones, "the suite signed nobody in"
    patterns: dict[str, re.Pattern[str]] = {}
    for number, phone in enumerate(sorted(SEEN.phones)):
        national = re.sub(r"\D", "", phone)[-10:]
        # The national part (last ten digits) in any common spelling: 2125550311, 212-555-0311,
        # (212) 555 0311; the full E.164 form contains it.
        spelled = r"[\s().-]{0,2}".join(national)
        patterns[f"phone #{number}"] = re.compile(spelled)
    for code in SEEN.codes:
        patterns[f"sign-in code {len(patterns)}"] = re.compile(rf"(?<![\w.:-]){code}(?![\w.:-])")
    for token in SEEN.tokens:
        patterns[f"token {len(patterns)}"] = re.compile(re.escape(token))
    for body in SEEN.bodies:
        patterns[f"message body {body[:12]!r}"] = re.compile(re.escape(body))
    patterns["a JWT"] = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}")
    patterns["an Authorization header"] = re.compile(r"Bearer\s+\S{20,}")
    patterns["an SMS code text"] = re.compile(r"touchbase code is")
    return [
        f"{what} in {name}: {line[:300]}"
        for name, line in logged
        for what, pattern in patterns.items()
        if pattern.search(line)
    ]


def test_logs_carry_no_phones_codes_tokens_or_message_bodies(
    stack: Stack, security_logs: Path
) -> None:
    # aiohttp's own parser-error records are the subject of the next test.
    logged = [(name, line) for name, line in lines(security_logs) if PARSER_ERROR not in line]
    found = leaks(logged)
    assert not found, "\n".join(found[:20])


def test_unparseable_requests_do_not_log_credentials(stack: Stack, security_logs: Path) -> None:
    logged = [(name, line) for name, line in lines(security_logs) if PARSER_ERROR in line]
    assert logged, "the smuggling tests produced no parser errors"
    found = leaks(logged)
    assert not found, "\n".join(found[:5])
