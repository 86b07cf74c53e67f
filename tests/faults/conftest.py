"""Fixtures of the fault suite: a flaky Twilio side and a way to build a stack on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import FaultStack
from tests.faults.twilio_side import FlakyTwilio

# Scale of every fault run: USERS networkers, each with one contact (its "first touch" follow-up)
# and ONE_OFFS one-off touchpoints, all due in the same digest window: 50 x 21 = 1,050 due,
# 1,000 of them in digests (20 a digest) and 50 left out for the next window.
USERS = int(os.environ.get("FAULT_USERS", "50"))
ONE_OFFS = int(os.environ.get("FAULT_ONE_OFFS", "20"))


@pytest.fixture
def twilio() -> Iterator[FlakyTwilio]:
    """The Twilio side, reliable until a test turns ``flaky`` on."""
    stub = FlakyTwilio()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def make_stack(
    mongodb_uri: str, twilio: FlakyTwilio, tmp_path: Path
) -> Iterator[Callable[..., FaultStack]]:
    """Build and start a FaultStack; everything it started is stopped after the test."""
    built: list[FaultStack] = []

    def make(uri: str | None = None, **kwargs: Any) -> FaultStack:
        prefix = f"faults_{uuid.uuid4().hex[:8]}"
        fs = FaultStack(uri or mongodb_uri, prefix, tmp_path, twilio, **kwargs)
        built.append(fs)
        fs.start()
        return fs

    try:
        yield make
    finally:
        for fs in built:
            fs.stop()
            fs.drop()
