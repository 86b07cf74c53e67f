"""The documentation matches the code: every setting documented, every document linked exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.contacts.settings import ContactsSettings
from services.notifier.settings import NotifierSettings
from services.reminders.settings import RemindersSettings
from shared.config import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
CLASSES: dict[str, type[ServiceSettings]] = {
    "contacts": ContactsSettings,
    "reminders": RemindersSettings,
    "notifier": NotifierSettings,
}


def _documented() -> dict[str, str]:
    """``NAME -> row`` for each row of the configuration tables."""
    rows = {}
    for line in OPERATIONS.read_text().splitlines():
        match = re.match(r"^\| `([A-Z0-9_]+)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


@pytest.mark.parametrize("service", sorted(CLASSES))
def test_every_setting_the_code_reads_is_documented(service: str) -> None:
    documented = _documented()
    missing = [
        name.upper()
        for name in CLASSES[service].model_fields
        if name != "service_name" and name.upper() not in documented
    ]
    assert not missing, f"undocumented {service} settings: {missing}"


def test_no_documented_setting_is_unknown_to_the_code() -> None:
    known = {name.upper() for cls in CLASSES.values() for name in cls.model_fields}
    unknown = set(_documented()) - known
    assert not unknown, unknown


def test_relative_links_in_docs_resolve() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
