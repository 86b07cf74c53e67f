"""The opaque, signed tokens of the mobile delta sync (``GET /v1/sync``).

A token says where a user's sync stands: either inside the first full sync (the snapshot's start
time, the kind being listed and the last item listed) or in the change feed (the last record
served). It is signed with a key derived from ``AUTH_JWT_SECRET`` and bound to its user, so a
forged, altered or borrowed token is refused with a 400 before anything is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import BadRequest

# The order in which a full sync lists the kinds.
SNAPSHOT_KINDS = ("contact", "interaction", "referral")
_SIG_BYTES = 16


@dataclass(frozen=True)
class SnapshotPosition:
    """Inside a full sync: listing ``SNAPSHOT_KINDS[kind]`` after ``after`` (sort value, id)."""

    start: datetime
    kind: int
    after: tuple[datetime, str] | None


@dataclass(frozen=True)
class FeedPosition:
    """In the change feed: after the record (stamp, id)."""

    stamp: datetime
    record_id: str


Position = SnapshotPosition | FeedPosition


class SyncTokens:
    """Encodes and checks sync tokens."""

    def __init__(self, secret: str) -> None:
        # A key of its own, so a sync token can never pass for anything else signed.
        self._key = hmac.new(secret.encode(), b"touchbase sync token v1", hashlib.sha256).digest()

    def _sign(self, user_id: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{user_id}\x1f{payload}".encode(), hashlib.sha256).digest()
        return _b64(mac[:_SIG_BYTES])

    def encode(self, user_id: str, position: Position) -> str:
        """The token of ``position`` for ``user_id``."""
        plain: list[Any]
        if isinstance(position, SnapshotPosition):
            after = position.after
            plain = ["s", _ms(position.start), position.kind]
            plain += [_ms(after[0]), after[1]] if after else [None, None]
        else:
            plain = ["f", _ms(position.stamp), position.record_id]
        payload = _b64(json.dumps(plain, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(user_id, payload)}"

    def decode(self, user_id: str, token: str) -> Position:
        """The position in a token this service issued to ``user_id``; else a 400."""
        try:
            payload, signature = token.split(".")
            if not hmac.compare_digest(signature, self._sign(user_id, payload)):
                raise ValueError("bad signature")
            plain = json.loads(_unb64(payload))
            return _position(plain)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError):
            raise BadRequest(
                "since is not a sync token issued to you; use the next of your last page, "
                "or omit since for a full sync",
                errors=[{"field": "since", "message": "invalid sync token"}],
            ) from None


def _position(plain: Any) -> Position:
    if not isinstance(plain, list) or not plain:
        raise ValueError("wrong shape")
    if plain[0] == "f" and len(plain) == 3 and isinstance(plain[2], str):
        return FeedPosition(_date(plain[1]), plain[2])
    if plain[0] == "s" and len(plain) == 5:
        kind = plain[2]
        if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind < 3:
            raise ValueError("no such kind")
        after = None
        if plain[3] is not None or plain[4] is not None:
            if not isinstance(plain[4], str):
                raise ValueError("an id was expected")
            after = (_date(plain[3]), plain[4])
        return SnapshotPosition(_date(plain[1]), kind, after)
    raise ValueError("wrong shape")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime) -> int:
    # Exact integer arithmetic, rounding down: a float product can land 1 ms early or late.
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _date(value: Any) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("a date is whole milliseconds")
    return datetime.fromtimestamp(value / 1000, UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())
