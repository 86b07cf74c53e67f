"""The only code of the contacts service that talks to MongoDB.

Every query on user data carries ``user_id`` (the owner), so data stays tenant-scoped and the
collections can be sharded by owner. Writes rely only on single-document atomicity and
unique-key inserts, which hold on MongoDB and on FerretDB alike.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.clock import Clock, SystemClock
from shared.mongo import Database, Document

USERS = "users"
OTP = "otp_challenges"
RATE = "rate_events"
REFRESH = "refresh_tokens"
CLAIMS = "claims"
CONTACTS = "contacts"
INTERACTIONS = "interactions"
REFERRALS = "referrals"
CHANGES = "changes"
IDEMPOTENCY = "idempotency"
STAGES = "stage_changes"


async def create_indexes(db: Database) -> None:
    """Indexes MongoDB needs for every query below (harmless, and unused, on FerretDB)."""
    await db[USERS].create_index([("phone", ASCENDING)], unique=True, name="phone_unique")
    await db[OTP].create_index([("phone", ASCENDING), ("created_at", DESCENDING)])
    await db[OTP].create_index([("expires_at", ASCENDING)])
    await db[RATE].create_index([("key", ASCENDING), ("at", ASCENDING)])
    await db[RATE].create_index([("at", ASCENDING)])
    await db[REFRESH].create_index([("family_id", ASCENDING)])
    await db[REFRESH].create_index([("user_id", ASCENDING)])
    await db[REFRESH].create_index([("expires_at", ASCENDING)])
    await db[CLAIMS].create_index([("created_at", ASCENDING)])
    for sort_field in ("name_norm", "created_at", "updated_at", "due_at"):
        await db[CONTACTS].create_index(
            [
                ("user_id", ASCENDING),
                ("deleted", ASCENDING),
                (sort_field, ASCENDING),
                ("_id", ASCENDING),
            ]
        )
    await db[CONTACTS].create_index([("user_id", ASCENDING), ("tags", ASCENDING)])
    await db[INTERACTIONS].create_index(
        [("user_id", ASCENDING), ("contact_id", ASCENDING), ("occurred_at", DESCENDING)]
    )
    await db[INTERACTIONS].create_index([("user_id", ASCENDING), ("occurred_at", DESCENDING)])
    await db[REFERRALS].create_index(
        [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
    )
    await db[REFERRALS].create_index([("user_id", ASCENDING), ("contact_id", ASCENDING)])
    # The scorecard's closed business: referrals won during a period.
    await db[REFERRALS].create_index([("user_id", ASCENDING), ("status_times.won", ASCENDING)])
    await db[STAGES].create_index(
        [("user_id", ASCENDING), ("contact_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]
    )
    await db[CHANGES].create_index([("stamp", ASCENDING), ("_id", ASCENDING)])
    # The mobile delta sync reads one user's slice of the feed.
    await db[CHANGES].create_index(
        [("user_id", ASCENDING), ("stamp", ASCENDING), ("_id", ASCENDING)]
    )
    await db[IDEMPOTENCY].create_index([("created_at", ASCENDING)])


# --- cursors ----------------------------------------------------------------------------------


def after_filter(field: str, direction: int, value: Any, last_id: str) -> Document:
    """Keyset condition: documents after (value, last_id) in (field, _id) order."""
    op = "$gt" if direction == ASCENDING else "$lt"
    return {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}


# --- repositories -----------------------------------------------------------------------------


class UserRepository:
    """Users, keyed by id, unique by phone."""

    def __init__(self, db: Database) -> None:
        self._col: AsyncCollection[Document] = db[USERS]

    async def get(self, user_id: str) -> Document | None:
        """One user by id."""
        return await self._col.find_one({"_id": user_id})

    async def by_phone(self, phone: str) -> Document | None:
        """One user by E.164 phone number."""
        return await self._col.find_one({"phone": phone})

    async def insert(self, doc: Document) -> bool:
        """Create a user; False when the phone is already taken."""
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update(self, user_id: str, fields: Document) -> Document | None:
        """Set fields and return the new state."""
        await self._col.update_one({"_id": user_id}, {"$set": fields})
        return await self.get(user_id)

    async def delete(self, user_id: str) -> None:
        """Remove the user."""
        await self._col.delete_one({"_id": user_id})

    async def page(self, after: str | None, limit: int) -> list[Document]:
        """Users in id order after ``after``."""
        query: Document = {"_id": {"$gt": after}} if after else {}
        return await self._col.find(query).sort("_id", ASCENDING).limit(limit).to_list()

    async def many(self, ids: Sequence[str]) -> list[Document]:
        """Users by id."""
        return await self._col.find({"_id": {"$in": list(ids)}}).to_list()


class AuthRepository:
    """OTP challenges, rate-limit events, refresh tokens and one-time claims."""

    def __init__(self, db: Database) -> None:
        self._otp: AsyncCollection[Document] = db[OTP]
        self._rate: AsyncCollection[Document] = db[RATE]
        self._refresh: AsyncCollection[Document] = db[REFRESH]
        self._claims: AsyncCollection[Document] = db[CLAIMS]

    async def add_challenge(self, doc: Document) -> None:
        """Store a new OTP challenge (the code only as a hash)."""
        await self._otp.insert_one(doc)

    async def challenge(self, challenge_id: str) -> Document | None:
        """One OTP challenge."""
        return await self._otp.find_one({"_id": challenge_id})

    async def drop_challenge(self, challenge_id: str) -> None:
        """Forget a challenge (used up, or its SMS could not be queued)."""
        await self._otp.delete_one({"_id": challenge_id})

    async def claim(self, claim_id: str, now: datetime) -> bool:
        """Take a one-time claim; False when someone already took it (atomic unique insert)."""
        try:
            await self._claims.insert_one({"_id": claim_id, "created_at": now})
        except DuplicateKeyError:
            return False
        return True

    async def rate_events(self, key: str, since: datetime) -> list[datetime]:
        """Times of the events counted under ``key`` since ``since``."""
        docs = await self._rate.find({"key": key, "at": {"$gte": since}}, {"at": 1}).to_list()
        return sorted(doc["at"] for doc in docs)

    async def add_rate_event(self, key: str, event_id: str, at: datetime) -> None:
        """Count one event under ``key``."""
        await self._rate.insert_one({"_id": event_id, "key": key, "at": at})

    async def drop_rate_event(self, event_id: str) -> None:
        """Take back an event that was refused, so it does not count against the caller."""
        await self._rate.delete_one({"_id": event_id})

    async def add_refresh(self, doc: Document) -> None:
        """Store a refresh token (by hash)."""
        await self._refresh.insert_one(doc)

    async def refresh(self, token_hash: str) -> Document | None:
        """One refresh token by hash."""
        return await self._refresh.find_one({"_id": token_hash})

    async def revoke_family(self, family_id: str, user_id: str, now: datetime) -> None:
        """Revoke every token of a sign-in's family, including any a racing refresh still adds.

        The family's mark (a unique insert, atomic on every server) is what refreshes check;
        marking the tokens themselves only makes the state visible. A refresh that issues a new
        token while this runs cannot outlive the mark, whatever the interleaving.
        """
        with contextlib.suppress(DuplicateKeyError):  # revoked already
            await self._claims.insert_one({"_id": _family_mark(family_id), "created_at": now})
        await self._refresh.update_many(
            {"family_id": family_id, "user_id": user_id, "revoked_at": None},
            {"$set": {"revoked_at": now}},
        )

    async def family_revoked(self, family_id: str) -> bool:
        """Whether a sign-in's family was revoked (reuse detected, or signed out)."""
        return await self._claims.find_one({"_id": _family_mark(family_id)}) is not None

    async def revoke_user(self, user_id: str, now: datetime) -> None:
        """Revoke every refresh token of a user: each of their families, as above."""
        tokens = await self._refresh.find({"user_id": user_id}, {"family_id": 1}).to_list()
        for family_id in sorted({doc["family_id"] for doc in tokens}):
            await self.revoke_family(family_id, user_id, now)

    async def delete_user(self, user_id: str) -> None:
        """Remove a user's refresh tokens."""
        await self._refresh.delete_many({"user_id": user_id})

    async def purge(self, now: datetime, rate_window: timedelta) -> int:
        """Delete expired challenges, tokens, old rate events and old claims."""
        total = 0
        total += (await self._otp.delete_many({"expires_at": {"$lt": now}})).deleted_count
        total += (await self._refresh.delete_many({"expires_at": {"$lt": now}})).deleted_count
        total += (await self._rate.delete_many({"at": {"$lt": now - rate_window}})).deleted_count
        # Claims only need to outlive what they guard (refresh tokens live the longest).
        old = now - timedelta(days=400)
        total += (await self._claims.delete_many({"created_at": {"$lt": old}})).deleted_count
        return total


def _family_mark(family_id: str) -> str:
    # Kept with the one-time claims, which outlive every refresh token (see purge).
    return f"revoked-family:{family_id}"


class OwnedRepository:
    """A collection of documents each owned by one user."""

    collection = ""

    def __init__(self, db: Database) -> None:
        self._col: AsyncCollection[Document] = db[self.collection]

    async def get(self, user_id: str, entity_id: str) -> Document | None:
        """One document of the user's."""
        return await self._col.find_one({"_id": entity_id, "user_id": user_id})

    async def by_ids(self, pairs: Sequence[tuple[str, str]]) -> list[Document]:
        """Documents by (user_id, id) for the change feed, which spans users.

        The owners ride along so that a sharded cluster targets only their shards.
        """
        users = sorted({user for user, _ in pairs})
        ids = sorted({entity for _, entity in pairs})
        return await self._col.find({"user_id": {"$in": users}, "_id": {"$in": ids}}).to_list()

    async def insert(self, doc: Document) -> None:
        """Store a new document."""
        await self._col.insert_one(doc)

    async def insert_many(self, docs: Sequence[Document]) -> None:
        """Store new documents in one round trip (in order; the first failure stops the rest)."""
        if docs:
            await self._col.insert_many(list(docs), ordered=True)

    async def set(self, user_id: str, entity_id: str, fields: Document) -> None:
        """Set fields of one of the user's documents."""
        await self._col.update_one({"_id": entity_id, "user_id": user_id}, {"$set": fields})

    async def update_versioned(
        self, user_id: str, entity_id: str, version: int, fields: Document
    ) -> bool:
        """Set fields if the document is still at ``version``; bumps the version.

        On MongoDB the version condition makes this a compare-and-set; FerretDB v1 evaluates it
        read-then-write, so two racing writers there may both succeed (last one wins).
        """
        result = await self._col.update_one(
            {"_id": entity_id, "user_id": user_id, "version": version},
            {"$set": fields, "$inc": {"version": 1}},
        )
        return result.matched_count == 1

    async def delete(self, user_id: str, entity_id: str) -> bool:
        """Remove one of the user's documents; False if it was not there."""
        result = await self._col.delete_one({"_id": entity_id, "user_id": user_id})
        return result.deleted_count == 1

    async def all_of(self, user_id: str) -> list[Document]:
        """Every document of the user's (export)."""
        return await self._col.find({"user_id": user_id}).sort("_id", ASCENDING).to_list()

    async def delete_user(self, user_id: str) -> None:
        """Remove every document of the user's (account deletion)."""
        await self._col.delete_many({"user_id": user_id})

    async def find_page(
        self, query: Document, sort: Sequence[tuple[str, int]], limit: int
    ) -> list[Document]:
        """Documents matching ``query`` (which must carry user_id) in ``sort`` order."""
        assert "user_id" in query
        return await self._col.find(query).sort(list(sort)).limit(limit).to_list()

    async def find(self, query: Document, projection: Document | None = None) -> list[Document]:
        """Every document matching ``query`` (which must carry user_id)."""
        assert "user_id" in query
        return await self._col.find(query, projection).to_list()

    async def count(self, query: Document) -> int:
        """How many documents match ``query`` (which must carry user_id)."""
        assert "user_id" in query
        return await self._col.count_documents(query)


class ContactRepository(OwnedRepository):
    """Contacts."""

    collection = CONTACTS

    async def bump(self, user_id: str, contact_id: str, fields: Document) -> None:
        """Set derived fields (counters) and bump the version."""
        await self._col.update_one(
            {"_id": contact_id, "user_id": user_id}, {"$set": fields, "$inc": {"version": 1}}
        )


class InteractionRepository(OwnedRepository):
    """Interactions."""

    collection = INTERACTIONS

    async def update_versioned(
        self, user_id: str, entity_id: str, version: int, fields: Document
    ) -> bool:
        """As for every owned document, except that an interaction logged before interactions
        could be edited has no version yet and counts as version 1."""
        current: Any = {"$in": [1, None]} if version == 1 else version
        # Set rather than $inc: an $inc of the missing field would make it 1, not 2.
        result = await self._col.update_one(
            {"_id": entity_id, "user_id": user_id, "version": current},
            {"$set": {**fields, "version": version + 1}},
        )
        return result.matched_count == 1


class ReferralRepository(OwnedRepository):
    """Referrals."""

    collection = REFERRALS


class StageRepository(OwnedRepository):
    """Stage changes of contacts (the relationship ladder's history)."""

    collection = STAGES


ScopeKind = Literal["contact", "interaction", "referral", "import"]


def idempotency_scope(kind: ScopeKind, user_id: str, *parts: str) -> str:
    """The Idempotency-Key scope of one of a user's creates: ``kind:user_id[:part...]``."""
    return ":".join((kind, user_id, *parts))


class IdempotencyRepository:
    """The stored answers of creates (written by :class:`shared.web.idempotency.IdempotencyStore`).

    They repeat the request's data (names, notes, phone numbers), so an account deletion
    deletes its user's records instead of letting them wait out ``IDEMPOTENCY_TTL_S``.
    """

    def __init__(self, db: Database) -> None:
        self._col: AsyncCollection[Document] = db[IDEMPOTENCY]

    async def delete_user(self, user_id: str) -> int:
        """Remove every record of the user's scopes; how many there were."""
        # A record's _id is its scope, a \x1f, then the key (the shared store's layout); each
        # pattern is anchored on a fixed prefix, which MongoDB serves from the _id index.
        owner = re.escape(user_id)
        patterns = [{"_id": {"$regex": f"^{kind}:{owner}[:\x1f]"}} for kind in get_args(ScopeKind)]
        return (await self._col.delete_many({"$or": patterns})).deleted_count


class ChangeRepository:
    """The change feed's records, stamped with the real wall clock.

    The stamp must be the server's wall time even when the service clock is moved in tests:
    the feed's safety lag compares stamps with real elapsed time.
    """

    def __init__(self, db: Database, wall_clock: Clock | None = None) -> None:
        self._col: AsyncCollection[Document] = db[CHANGES]
        self._wall = wall_clock or SystemClock()

    def wall_now(self) -> datetime:
        """The real time (never the controllable clock)."""
        return self._wall.now()

    async def record(
        self, change_id: str, kind: str, op: str, user_id: str, entity_id: str
    ) -> None:
        """Write a change record; call this BEFORE the entity write it announces."""
        await self._col.insert_one(
            {
                "_id": change_id,
                "stamp": self._wall.now(),
                "kind": kind,
                "op": op,
                "user_id": user_id,
                "entity_id": entity_id,
            }
        )

    async def record_many(self, entries: Sequence[tuple[str, str, str, str, str]]) -> None:
        """Write change records ``(id, kind, op, user_id, entity_id)`` in one round trip.

        Like :meth:`record`, BEFORE the entity writes they announce; all share one stamp.
        """
        if not entries:
            return
        stamp = self._wall.now()
        await self._col.insert_many(
            [
                {
                    "_id": cid,
                    "stamp": stamp,
                    "kind": kind,
                    "op": op,
                    "user_id": uid,
                    "entity_id": eid,
                }
                for cid, kind, op, uid, eid in entries
            ],
            ordered=True,
        )

    async def page(
        self, after: tuple[datetime, str] | None, until: datetime, limit: int
    ) -> list[Document]:
        """Records older than ``until`` and after the cursor, in (stamp, _id) order."""
        query: Document = {"stamp": {"$lt": until}}
        if after is not None:
            query = {"$and": [query, after_filter("stamp", ASCENDING, after[0], after[1])]}
        return (
            await self._col.find(query)
            .sort([("stamp", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def user_page(
        self,
        user_id: str,
        kinds: Sequence[str],
        after: tuple[datetime, str],
        until: datetime,
        limit: int,
    ) -> list[Document]:
        """One user's records of ``kinds`` older than ``until`` and after the position."""
        query: Document = {
            "user_id": user_id,
            "kind": {"$in": list(kinds)},
            "$and": [{"stamp": {"$lt": until}}, after_filter("stamp", ASCENDING, *after)],
        }
        return (
            await self._col.find(query)
            .sort([("stamp", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def purge(self, before: datetime) -> int:
        """Drop records older than the retention period."""
        return (await self._col.delete_many({"stamp": {"$lt": before}})).deleted_count
