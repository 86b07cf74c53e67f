"""Times far from now are refused at the boundary of the messages API, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.notifier.conftest import AppFactory, service_headers
from tests.notifier.test_messages_api import body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("not_before", "0001-01-01T00:00:00+01:00"),
        ("not_before", "9999-12-31T23:00:00-05:00"),
        ("expires_at", "9999-12-31T00:00:00Z"),
        ("expires_at", "1800-01-01T00:00:00Z"),
    ],
)
async def test_far_times_are_a_422_and_store_nothing(
    notifier_app: AppFactory, field: str, value: str
) -> None:
    """A not_before or expires_at out of range answers 422 naming the field."""
    client = await notifier_app(worker_enabled=False)
    url = "/internal/v1/messages"
    resp = await client.post(
        url, json=body(**{field: value}), headers=service_headers(**{"Idempotency-Key": "k"})
    )
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert problem["errors"][0]["field"] == field
    assert "1900-01-01" in problem["errors"][0]["message"]
    listed = await client.get(url, headers=service_headers())
    assert (await listed.json())["items"] == []
