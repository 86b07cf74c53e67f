"""Keyset page cursors: opaque to clients, validated when they come back (a bad one is a 400)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.errors import BadRequest


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque page cursor from the last item's sort values (strings and aware datetimes)."""
    plain = [{"$d": int(v.timestamp() * 1000)} if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type[str] | type[datetime]], name: str) -> list[Any]:
    """The sort values inside a cursor, each of the kind expected at its place; else a 400.

    Only the shapes :func:`encode_cursor` writes are accepted (UTF-8 strings, dates as whole
    milliseconds within Python's range), so no number or operator document reaches the driver.
    ``name`` is the query parameter.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, list) or len(plain) != len(kinds):
            raise ValueError("wrong shape")
        return [_cursor_value(value, kind) for value, kind in zip(plain, kinds, strict=True)]
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        raise BadRequest(
            f"the {name} is not a valid cursor; use the one a page returned",
            errors=[{"field": name, "message": "malformed cursor"}],
        ) from None


def _cursor_value(value: Any, kind: type[str] | type[datetime]) -> str | datetime:
    if kind is datetime:
        if not isinstance(value, dict) or set(value) != {"$d"}:
            raise ValueError("a date was expected")
        millis = value["$d"]
        if not isinstance(millis, int) or isinstance(millis, bool):
            raise ValueError("a date is whole milliseconds")
        return datetime.fromtimestamp(millis / 1000, UTC)
    if not isinstance(value, str):
        raise ValueError("a string was expected")
    value.encode()  # a lone surrogate cannot be stored or compared: UnicodeEncodeError
    return value
