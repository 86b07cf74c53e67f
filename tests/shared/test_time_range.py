"""The one range every accepted instant must fall in (shared.clock.Instant, parse_instant)."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import BaseModel, ValidationError

from shared.clock import Instant, parse_instant


class Model(BaseModel):
    """A model with one accepted instant."""

    at: Instant


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # converting it to UTC overflowed
        "9999-12-31T23:00:00-05:00",
        "9999-12-30T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2026-03-01T10:00:00",  # no offset
    ],
)
def test_out_of_range_or_naive_instants_are_refused(text: str) -> None:
    """Far dates and naive times are a validation error, never an OverflowError."""
    with pytest.raises(ValidationError, match="between 1900-01-01 and 2200-01-01"):
        Model.model_validate({"at": text})
    with pytest.raises(ValueError, match="between 1900-01-01 and 2200-01-01"):
        parse_instant(text)


@pytest.mark.parametrize(
    "text", ["1900-01-01T00:00:00Z", "2026-03-01T10:00:00+05:30", "2199-12-31T23:59:59Z"]
)
def test_instants_in_range_are_kept(text: str) -> None:
    """The ends of the range and ordinary times pass unchanged."""
    assert Model.model_validate({"at": text}).at == datetime.fromisoformat(text)
    assert parse_instant(text) == datetime.fromisoformat(text)
