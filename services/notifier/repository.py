"""The only notifier code that touches MongoDB: messages, claims, suppressions, inbound replies.

Guarantees rely only on single-document writes and unique-key inserts, which are atomic on
MongoDB and on FerretDB. Conditional updates (``update_one`` with a filter on state) are atomic on
MongoDB but read-then-write on FerretDB v1; they are used only where a lost race is harmless or
is backed by a unique-key claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from services.notifier.models import RANK_STATUS, STATUS_RANK
from shared.mongo import Database, Document, is_duplicate_key

MESSAGES = "messages"
CLAIMS = "claims"
SUPPRESSIONS = "suppressions"
CONSENT_EVENTS = "consent_events"
INBOUND = "inbound"


async def create_indexes(db: Database) -> None:
    """Indexes MongoDB needs for the notifier's queries (harmless on FerretDB)."""
    await db[MESSAGES].create_index([("status_rank", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[MESSAGES].create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
    await db[MESSAGES].create_index([("provider_sid", ASCENDING)])
    await db[MESSAGES].create_index([("transport", ASCENDING), ("created_at", DESCENDING)])
    # Operators' newest-first listing of every user's messages reads the first page only.
    await db[MESSAGES].create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
    # Account deletion by phone, and the sign-in codes still carrying their code.
    await db[MESSAGES].create_index([("to", ASCENDING), ("user_id", ASCENDING)])
    await db[MESSAGES].create_index([("purpose", ASCENDING), ("body_scrubbed_at", ASCENDING)])
    await db[CLAIMS].create_index([("state", ASCENDING), ("lease_until", ASCENDING)])
    await db[INBOUND].create_index([("state", ASCENDING), ("next_try_at", ASCENDING)])
    await db[INBOUND].create_index([("user_id", ASCENDING)])
    await db[INBOUND].create_index([("from", ASCENDING), ("user_id", ASCENDING)])
    await db[CONSENT_EVENTS].create_index([("phone", ASCENDING), ("at", ASCENDING)])


def _view(doc: Document | None) -> Document | None:
    # Only the rank is stored (it can only rise); the state's name is derived from it on read.
    if doc is not None:
        doc["status"] = RANK_STATUS[int(doc["status_rank"])]
    return doc


def _views(docs: list[Document]) -> list[Document]:
    return [d for d in map(_view, docs) if d is not None]


class MessageRepository:
    """Stored outbound messages and their delivery state (``status_rank``; see models)."""

    def __init__(self, db: Database) -> None:
        self._col = db[MESSAGES]

    async def insert_new(self, doc: Document) -> tuple[Document, bool]:
        """Insert ``doc`` unless its id exists; return the stored one and whether it is new."""
        stored = {k: v for k, v in doc.items() if k != "status"}
        try:
            await self._col.insert_one(stored)
        except Exception as exc:
            if not is_duplicate_key(exc):
                raise
            existing = _view(await self._col.find_one({"_id": doc["_id"]}))
            if existing is None:  # deleted between the two calls; the caller may retry
                raise
            return existing, False
        return _view(stored) or stored, True

    async def insert_many_new(self, docs: list[Document]) -> tuple[dict[str, Document], set[str]]:
        """Insert the documents whose ids are new, in one unordered insert.

        Returns every stored message by id (new or existing) and the ids inserted now. Each
        insert is still atomic on its unique ``_id``; the duplicates are read back in one query.
        Only the reported write errors are trusted (mongo-java-server over-reports the count).
        """
        stored = [{k: v for k, v in doc.items() if k != "status"} for doc in docs]
        lost: set[str] = set()
        try:
            await self._col.insert_many(stored, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise
            lost = {stored[int(error["index"])]["_id"] for error in errors}
        out = {doc["_id"]: _view(doc) or doc for doc in stored if doc["_id"] not in lost}
        if lost:
            async for doc in self._col.find({"_id": {"$in": sorted(lost)}}):
                out[doc["_id"]] = _view(doc) or doc
            if len(out) < len(stored):  # deleted in between; the caller may retry
                raise RuntimeError("a message vanished while its batch was stored")
        return out, {doc["_id"] for doc in stored if doc["_id"] not in lost}

    async def get(self, message_id: str) -> Document | None:
        """One message by id."""
        return _view(await self._col.find_one({"_id": message_id}))

    async def recent(
        self, *, user_id: str | None, status: str | None, limit: int, transport: str | None = None
    ) -> list[Document]:
        """Recent messages, newest first."""
        query: dict[str, Any] = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status_rank"] = STATUS_RANK[status]
        if transport is not None:
            query["transport"] = transport
        cursor = self._col.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return _views(await cursor.limit(limit).to_list())

    async def outbox(self, *, to: str | None, limit: int) -> list[Document]:
        """Messages the sandbox transport 'sent', newest first."""
        query: dict[str, Any] = {"transport": "sandbox", "provider_sid": {"$ne": None}}
        if to is not None:
            query["to"] = to
        cursor = self._col.find(query).sort([("sent_at", DESCENDING), ("_id", DESCENDING)])
        return _views(await cursor.limit(limit).to_list())

    async def due(self, now: datetime, limit: int) -> list[Document]:
        """Queued messages whose time has come."""
        query = {"status_rank": STATUS_RANK["queued"], "next_attempt_at": {"$lte": now}}
        cursor = self._col.find(query).sort([("next_attempt_at", ASCENDING)])
        return _views(await cursor.limit(limit).to_list())

    async def update(self, message_id: str, fields: Document) -> None:
        """Set fields (never the state: see :meth:`raise_status`)."""
        await self._col.update_one({"_id": message_id}, {"$set": fields})

    async def raise_status(self, message_id: str, status: str, fields: Document) -> None:
        """Set fields and move to ``status`` unless the message already holds a later state."""
        await self._col.update_one(
            {"_id": message_id},
            {"$set": fields, "$max": {"status_rank": STATUS_RANK[status]}},
        )

    async def by_provider_sid(self, sid: str) -> Document | None:
        """The message Twilio knows as ``sid``."""
        return _view(await self._col.find_one({"provider_sid": sid}))

    async def delete_user(self, user_id: str) -> int:
        """Delete every message of a user."""
        result = await self._col.delete_many({"user_id": user_id})
        return result.deleted_count

    async def delete_unowned_to(self, phone: str) -> int:
        """Delete the messages to ``phone`` that belong to no user (sent before an account)."""
        result = await self._col.delete_many({"to": phone, "user_id": None})
        return result.deleted_count

    async def scrub_codes(
        self, *, now: datetime, created_before: datetime, keep_settled_on: str, fields: Document
    ) -> int:
        """Set ``fields`` on the sign-in code messages that still carry their code and are past
        ``expires_at``, created before ``created_before``, or settled (taken by the provider or
        finished) on a transport other than ``keep_settled_on``."""
        query: Document = {
            "purpose": "otp",
            "body_scrubbed_at": None,
            "$or": [
                {"expires_at": {"$lte": now}},
                {"created_at": {"$lte": created_before}},
                {
                    "status_rank": {"$gte": STATUS_RANK["sending"]},
                    "transport": {"$ne": keep_settled_on},
                },
            ],
        }
        result = await self._col.update_many(query, {"$set": fields})
        return result.modified_count

    async def count_by_status(self) -> dict[str, int]:
        """How many messages are in each state (for metrics and the benchmark)."""
        counts: dict[str, int] = {}
        async for doc in self._col.find({}, {"status_rank": 1}):
            status = RANK_STATUS[doc["status_rank"]]
            counts[status] = counts.get(status, 0) + 1
        return counts


class ClaimRepository:
    """Unique-key claims: an insert with a deterministic id is the only cross-replica guard."""

    def __init__(self, db: Database) -> None:
        self._col = db[CLAIMS]

    async def claim(self, claim_id: str, doc: Document) -> bool:
        """Insert the claim; False when another worker already owns ``claim_id``."""
        try:
            await self._col.insert_one({"_id": claim_id, **doc})
        except Exception as exc:
            if is_duplicate_key(exc):
                return False
            raise
        return True

    async def claim_many(self, claims: list[Document]) -> set[str]:
        """Insert many claims at once (each insert is still atomic); return the ids won."""
        if not claims:
            return set()
        try:
            await self._col.insert_many(claims, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise
            lost = {int(error["index"]) for error in errors}
            return {c["_id"] for i, c in enumerate(claims) if i not in lost}
        return {c["_id"] for c in claims}

    async def set_state(self, claim_id: str, state: str, now: datetime) -> None:
        """Record the claim's progress (claimed, done, reaped)."""
        await self._col.update_one({"_id": claim_id}, {"$set": {"state": state, "updated_at": now}})

    async def expired(self, now: datetime, limit: int = 100) -> list[Document]:
        """Claims whose owner stopped before finishing and whose lease ran out."""
        query = {"state": "claimed", "lease_until": {"$lte": now}}
        return await self._col.find(query).limit(limit).to_list()

    async def delete(self, claim_ids: list[str]) -> None:
        """Delete finished claims."""
        if claim_ids:
            await self._col.delete_many({"_id": {"$in": claim_ids}})

    async def purge_done(self, before: datetime) -> int:
        """Drop finished claims older than ``before`` (FerretDB has no TTL indexes)."""
        result = await self._col.delete_many(
            {"state": {"$in": ["done", "reaped"]}, "updated_at": {"$lt": before}}
        )
        return result.deleted_count


class SuppressionRepository:
    """Our own opt-out list, across all senders, with every consent change recorded."""

    def __init__(self, db: Database) -> None:
        self._col = db[SUPPRESSIONS]
        self._events = db[CONSENT_EVENTS]

    async def is_suppressed(self, phone: str) -> bool:
        """Whether ``phone`` has opted out."""
        doc = await self._col.find_one({"_id": phone})
        return bool(doc and doc.get("opted_out"))

    async def suppressed_among(self, phones: set[str]) -> set[str]:
        """Which of ``phones`` have opted out."""
        if not phones:
            return set()
        cursor = self._col.find({"_id": {"$in": sorted(phones)}, "opted_out": True}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def record(
        self, phone: str, *, opted_out: bool, source: str, keyword: str | None, at: datetime
    ) -> None:
        """Record a consent change (event log first, then the current state)."""
        await self._events.insert_one(
            {
                "phone": phone,
                "action": "opt_out" if opted_out else "opt_in",
                "source": source,
                "keyword": keyword,
                "at": at,
            }
        )
        await self._col.update_one(
            {"_id": phone},
            {"$set": {"opted_out": opted_out, "source": source, "keyword": keyword, "at": at}},
            upsert=True,
        )

    async def events(self, phone: str) -> list[Document]:
        """The consent history of ``phone``, oldest first."""
        return await self._events.find({"phone": phone}).sort([("at", ASCENDING)]).to_list()


class InboundRepository:
    """Inbound messages keyed by Twilio's MessageSid, so a redelivered webhook is recognised."""

    def __init__(self, db: Database) -> None:
        self._col = db[INBOUND]

    async def insert_new(self, doc: Document) -> tuple[Document, bool]:
        """Insert unless the MessageSid was seen; return the stored record and whether it is new."""
        try:
            await self._col.insert_one(doc)
        except Exception as exc:
            if not is_duplicate_key(exc):
                raise
            existing = await self._col.find_one({"_id": doc["_id"]})
            if existing is None:
                raise
            return existing, False
        return doc, True

    async def get(self, sid: str) -> Document | None:
        """One inbound record."""
        return await self._col.find_one({"_id": sid})

    async def update(self, sid: str, fields: Document) -> None:
        """Set fields on one inbound record."""
        await self._col.update_one({"_id": sid}, {"$set": fields})

    async def deferred(self, now: datetime, limit: int = 50) -> list[Document]:
        """Records whose answer could not be given in time and is due for another try."""
        query = {"state": "deferred", "next_try_at": {"$lte": now}}
        return await self._col.find(query).limit(limit).to_list()

    async def delete_user(self, user_id: str) -> int:
        """Delete a user's inbound records."""
        result = await self._col.delete_many({"user_id": user_id})
        return result.deleted_count

    async def delete_unowned_from(self, phone: str) -> int:
        """Delete the texts from ``phone`` that were never tied to a user (an unknown number)."""
        result = await self._col.delete_many({"from": phone, "user_id": None})
        return result.deleted_count
