"""Idempotency-Key support: a repeat of a write replays the first answer instead of acting twice.

A record is claimed with a unique-key insert (atomic on MongoDB and FerretDB) before the write
runs, so two concurrent requests with the same key never both act: the loser gets 409 while the
first is in flight, and the stored answer once it is done. Records expire by timestamp checks in
code (FerretDB has no TTL indexes); :meth:`IdempotencyStore.purge` removes old ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.clock import Clock
from shared.errors import Conflict, ValidationFailed

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_key(request: web.Request, *, required: bool = False) -> str | None:
    """The request's Idempotency-Key header, validated (printable ASCII, at most 200 chars)."""
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise ValidationFailed(
                f"the {HEADER} header is required",
                [{"field": HEADER, "message": "required header"}],
            )
        return None
    if not _VALID_KEY.match(key):
        raise ValidationFailed(
            f"the {HEADER} header is malformed",
            [{"field": HEADER, "message": "1 to 200 printable ASCII characters"}],
        )
    return key


def fingerprint(body: Any) -> str:
    """A stable hash of a request body (canonical JSON)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as first given: status and JSON body."""

    status: int
    body: Any
    replayed: bool = False


class IdempotencyStore:
    """Claims, stores and replays answers keyed by (scope, Idempotency-Key)."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        clock: Clock,
        ttl: timedelta = timedelta(hours=24),
    ) -> None:
        self._col = collection
        self._clock = clock
        self._ttl = ttl

    async def run(
        self,
        *,
        scope: str,
        key: str,
        body: Any,
        produce: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> StoredResponse:
        """Run ``produce`` once per (scope, key); a repeat with the same body gets its answer.

        The same key with a different body is refused with 422; a repeat while the first is
        still running gets 409. If ``produce`` raises, the claim is released so a retry can act.
        """
        record_id = f"{scope}\x1f{key}"
        digest = fingerprint(body)
        now = self._clock.now()
        claim = {"_id": record_id, "fingerprint": digest, "state": "pending", "created_at": now}
        try:
            await self._col.insert_one(claim)
        except DuplicateKeyError:
            existing = await self._col.find_one({"_id": record_id})
            if existing is None or self._expired(existing["created_at"], now):
                # An expired record (or one released meanwhile): replace it and act afresh.
                if existing is not None:
                    await self._col.delete_one(
                        {"_id": record_id, "created_at": existing["created_at"]}
                    )
                return await self.run(scope=scope, key=key, body=body, produce=produce)
            if existing["fingerprint"] != digest:
                raise ValidationFailed(
                    f"this {HEADER} was already used with a different body",
                    [{"field": HEADER, "message": "reused with a different body"}],
                ) from None
            if existing["state"] != "done":
                raise Conflict(f"a request with this {HEADER} is still being processed") from None
            return StoredResponse(existing["status"], existing["body"], replayed=True)
        try:
            status, answer = await produce()
        except BaseException:
            await self._col.delete_one({"_id": record_id, "state": "pending"})
            raise
        await self._col.update_one(
            {"_id": record_id},
            {"$set": {"state": "done", "status": status, "body": answer}},
        )
        return StoredResponse(status, answer)

    def _expired(self, created_at: datetime, now: datetime) -> bool:
        return created_at + self._ttl <= now

    async def purge(self) -> int:
        """Delete records older than the retention period; returns how many."""
        cutoff = self._clock.now() - self._ttl
        result = await self._col.delete_many({"created_at": {"$lt": cutoff}})
        return result.deleted_count
