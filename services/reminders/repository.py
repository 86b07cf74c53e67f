"""The only code of the reminders service that touches MongoDB."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.reminders.models import OPEN_STATES
from shared.mongo import Database, Document

POLICY_ID = "policy"
JOBS_ID = "jobs"
FEED_ID = "change_feed"
# What the sweep and the dry run read of a touchpoint: everything but its history, which grows
# with every state change and is never part of a digest.
NO_HISTORY = {"history": 0}


async def ensure_indexes(db: Database) -> None:
    """Indexes MongoDB needs for the sweep and lookups (harmless on FerretDB)."""
    await db.users.create_index([("next_digest_at", ASCENDING)])
    await db.contacts.create_index([("user_id", ASCENDING), ("contact_id", ASCENDING)])
    await db.touchpoints.create_index(
        [("user_id", ASCENDING), ("state", ASCENDING), ("fire_at", ASCENDING)]
    )
    await db.touchpoints.create_index([("state", ASCENDING), ("fire_at", ASCENDING)])
    await db.touchpoints.create_index([("user_id", ASCENDING), ("contact_id", ASCENDING)])
    await db.dispatches.create_index([("state", ASCENDING), ("updated_at", ASCENDING)])
    await db.dispatches.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
    await db.dispatches.create_index(
        [("state", ASCENDING), ("message_status", ASCENDING), ("recorded_at", ASCENDING)]
    )
    await db.dispatches.create_index([("created_at", DESCENDING)])
    # The nudge list filtered by a delivery outcome (?status=suppressed) matches either field.
    await db.dispatches.create_index([("message_status", ASCENDING), ("created_at", DESCENDING)])
    await db.replies.create_index([("user_id", ASCENDING)])
    await db.undo.create_index([("user_id", ASCENDING), ("at", DESCENDING)])
    await db.audit.create_index([("at", DESCENDING)])
    # Purging expired Idempotency-Key records of the touchpoint actions.
    await db.idempotency.create_index([("created_at", ASCENDING)])


class RemindersRepository:
    """Policies, users' schedules, contact mirrors, touchpoints, dispatch claims, audit."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- configuration -------------------------------------------------------------------
    async def get_config(self, config_id: str) -> Document | None:
        """One configuration document (policy or job timings)."""
        return await self.db.config.find_one({"_id": config_id})

    async def init_config(self, config_id: str, values: Document) -> None:
        """Write defaults once; an existing document wins (a lost race is fine)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db.config.insert_one({"_id": config_id, **values})

    async def set_config(self, config_id: str, values: Document) -> None:
        """Overwrite fields of a configuration document."""
        await self._upsert(self.db.config, {"_id": config_id}, {"$set": values})

    async def add_audit(self, entry: Document) -> None:
        """Append to the audit log."""
        await self.db.audit.insert_one({"_id": ObjectId(), **entry})

    async def list_audit(self, limit: int) -> list[Document]:
        """Latest audit entries first."""
        # ObjectId ids keep the order of changes made within one millisecond.
        cursor = self.db.audit.find().sort([("at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.limit(limit).to_list()

    # -- change feed cursor --------------------------------------------------------------
    async def get_cursor(self) -> str | None:
        """Where the change feed consumer stands."""
        doc = await self.db.state.find_one({"_id": FEED_ID})
        return None if doc is None else doc.get("cursor")

    async def set_cursor(self, cursor: str, now: datetime) -> None:
        """Move the change feed cursor."""
        await self._upsert(
            self.db.state, {"_id": FEED_ID}, {"$set": {"cursor": cursor, "updated_at": now}}
        )

    async def take_lease(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Best-effort lease (spreads work between replicas; NOT a correctness guard)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db.state.insert_one({"_id": f"lease:{name}", "owner": owner, "until": now})
        doc = await self.db.state.find_one_and_update(
            {"_id": f"lease:{name}", "$or": [{"until": {"$lte": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "until": until}},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None and doc.get("owner") == owner

    # -- users -----------------------------------------------------------------------------
    async def get_user(self, user_id: str) -> Document | None:
        """Our copy of a user (profile, preferences, schedule)."""
        return await self.db.users.find_one({"_id": user_id})

    async def upsert_user(self, user_id: str, fields: Document, on_insert: Document) -> Document:
        """Create or update a user's profile fields; returns the stored document."""
        return await self._upsert(
            self.db.users, {"_id": user_id}, {"$set": fields, "$setOnInsert": on_insert}
        )

    @staticmethod
    async def _upsert(collection: Any, query: Document, update: Document) -> Document:
        # Two replicas upserting the same new _id: one insert wins, the other gets a duplicate
        # key error and simply applies its change as an update.
        for attempt in range(3):
            try:
                doc: Document | None = await collection.find_one_and_update(
                    query, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                if attempt == 2:
                    raise
                continue
            assert doc is not None
            return doc
        raise AssertionError("unreachable")

    async def update_user(self, user_id: str, fields: Document) -> None:
        """Set fields on a user."""
        await self.db.users.update_one({"_id": user_id}, {"$set": fields})

    async def unset_user(self, user_id: str, *names: str) -> None:
        """Remove fields from a user."""
        await self.db.users.update_one({"_id": user_id}, {"$unset": dict.fromkeys(names, "")})

    async def due_users(self, now: datetime, limit: int, after: str = "") -> list[Document]:
        """Users whose next digest time has come, by id, after ``after`` (pagination)."""
        query = {"next_digest_at": {"$lte": now}, "_id": {"$gt": after}}
        return await self.db.users.find(query).sort("_id", 1).limit(limit).to_list()

    async def all_users(self, user_id: str | None = None) -> list[Document]:
        """Every user (or one); callers over many users page with :meth:`user_pages`."""
        query: Document = {} if user_id is None else {"_id": user_id}
        return await self.db.users.find(query).to_list()

    async def user_pages(self, size: int) -> AsyncGenerator[list[Document]]:
        """Every user, ``size`` at a time, from one cursor (memory stays one page)."""
        cursor = self.db.users.find({}).batch_size(size)
        try:
            page: list[Document] = []
            async for user in cursor:
                page.append(user)
                if len(page) >= size:
                    yield page
                    page = []
            if page:
                yield page
        finally:
            await cursor.close()

    async def users_by_id(self, batch: int) -> AsyncGenerator[Document]:
        """Every user in ``_id`` order, streamed (for walks joined with touchpoints by user)."""
        cursor = self.db.users.find({}).sort("_id", ASCENDING).batch_size(batch)
        try:
            async for user in cursor:
                yield user
        finally:
            await cursor.close()

    async def set_next_digest(self, user_id: str, when: datetime, only_if: datetime | None) -> None:
        """Move a user's next digest time, unless someone already moved it elsewhere."""
        query: Document = {"_id": user_id}
        if only_if is not None:
            query["next_digest_at"] = only_if
        await self.db.users.update_one(query, {"$set": {"next_digest_at": when}})

    async def move_next_digests(
        self, moves: Sequence[tuple[str, datetime, datetime | None]]
    ) -> None:
        """:meth:`set_next_digest` for many users in one round trip: ``(user, when, only_if)``."""
        if not moves:
            return
        operations = []
        for user_id, when, only_if in moves:
            query: Document = {"_id": user_id}
            if only_if is not None:
                query["next_digest_at"] = only_if
            operations.append(UpdateOne(query, {"$set": {"next_digest_at": when}}))
        await self.db.users.bulk_write(operations, ordered=False)

    async def set_last_digests(self, digests: Sequence[tuple[str, Document]]) -> None:
        """Remember each user's latest digest ``(user, {claim_id, items, at})`` for replies.

        One round trip. A user whose stored digest is this claim already, or a later one, keeps
        it: the condition is in the filter, atomic per document on MongoDB (FerretDB v1 reads,
        then writes, like the read-compare-write this replaces).
        """
        if not digests:
            return
        operations = [
            UpdateOne(
                {
                    "_id": user_id,
                    "last_digest.claim_id": {"$ne": digest["claim_id"]},
                    "$or": [
                        {"last_digest.at": None},
                        {"last_digest.at": {"$lte": digest["at"]}},
                    ],
                },
                {"$set": {"last_digest": digest}},
            )
            for user_id, digest in digests
        ]
        await self.db.users.bulk_write(operations, ordered=False)

    async def bulk_next_digest(self, pairs: Sequence[tuple[str, datetime]]) -> None:
        """Set many users' next digest times at once."""
        if pairs:
            await self.db.users.bulk_write(
                [UpdateOne({"_id": u}, {"$set": {"next_digest_at": w}}) for u, w in pairs],
                ordered=False,
            )

    # -- contacts mirror -------------------------------------------------------------------
    async def get_contact(self, user_id: str, contact_id: str) -> Document | None:
        """Our copy of one contact."""
        return await self.db.contacts.find_one({"_id": f"{user_id}:{contact_id}"})

    async def put_contact(self, user_id: str, contact_id: str, fields: Document) -> Document:
        """Create or update our copy of a contact."""
        return await self._upsert(
            self.db.contacts,
            {"_id": f"{user_id}:{contact_id}"},
            {"$set": {**fields, "user_id": user_id, "contact_id": contact_id}},
        )

    async def user_contacts(self, user_id: str) -> list[Document]:
        """All mirrored contacts of a user."""
        return await self.db.contacts.find({"user_id": user_id}).to_list()

    # -- touchpoints -----------------------------------------------------------------------
    async def get_touchpoint(self, tp_id: str) -> Document | None:
        """One touchpoint."""
        return await self.db.touchpoints.find_one({"_id": tp_id})

    async def insert_touchpoint(self, doc: Document) -> bool:
        """Create a touchpoint once; False if it already exists (replays are harmless)."""
        doc.setdefault("version", 1)
        try:
            await self.db.touchpoints.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update_touchpoint(
        self,
        tp_id: str,
        fields: Document,
        history: Document | None = None,
        *,
        version: int | None = None,
    ) -> bool:
        """Change a touchpoint, recording the change in its history and bumping its version.

        With ``version`` the change applies only if the touchpoint is still at that version
        (a touchpoint written before versions existed is at version 0); False when it is not.
        """
        update: Document = {"$set": fields, "$inc": {"version": 1}}
        if history is not None:
            update["$push"] = {"history": history}
        query: Document = {"_id": tp_id}
        if version is not None:
            query["version"] = version if version > 0 else None
        result = await self.db.touchpoints.update_one(query, update)
        return result.matched_count == 1

    async def delete_touchpoint(self, tp_id: str, version: int) -> bool:
        """Remove a touchpoint if it is still at this version."""
        query: Document = {"_id": tp_id, "version": version if version > 0 else None}
        result = await self.db.touchpoints.delete_one(query)
        return result.deleted_count == 1

    async def touchpoint_page(
        self,
        user_id: str,
        *,
        view: str | None,
        now: datetime,
        contact_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        """One page of a user's open touchpoints in ``(fire_at, _id)`` order.

        ``view`` ``due`` keeps those whose time has come, ``upcoming`` the others, None both.
        """
        query: Document = {"user_id": user_id, "state": {"$in": list(OPEN_STATES)}}
        if contact_id is not None:
            query["contact_id"] = contact_id
        if view == "due":
            query["fire_at"] = {"$lte": now}
        elif view == "upcoming":
            query["fire_at"] = {"$gt": now}
        if after is not None:
            fire_at, last_id = after
            query["$or"] = [
                {"fire_at": {"$gt": fire_at}},
                {"fire_at": fire_at, "_id": {"$gt": last_id}},
            ]
        return (
            await self.db.touchpoints.find(query)
            .sort([("fire_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def bulk_touchpoints(self, docs: Sequence[Document]) -> None:
        """Insert many touchpoints (benchmarks and bulk reconciliation)."""
        if docs:
            await self.db.touchpoints.insert_many(list(docs), ordered=False)

    async def open_touchpoints(self, user_id: str, contact_id: str | None = None) -> list[Document]:
        """A user's open touchpoints (optionally for one contact), soonest first."""
        query: Document = {"user_id": user_id, "state": {"$in": list(OPEN_STATES)}}
        if contact_id is not None:
            query["contact_id"] = contact_id
        return await self.db.touchpoints.find(query).sort("fire_at", 1).to_list()

    async def due_touchpoints(self, user_ids: Iterable[str], now: datetime) -> list[Document]:
        """Open touchpoints whose time has come, for a batch of users (one query per batch)."""
        query = {
            "user_id": {"$in": list(user_ids)},
            "state": {"$in": list(OPEN_STATES)},
            "fire_at": {"$lte": now},
        }
        return await self.db.touchpoints.find(query, NO_HISTORY).to_list()

    async def touchpoints_of(self, user_id: str, limit: int = 500) -> list[Document]:
        """A user's touchpoints, any state."""
        return await self.db.touchpoints.find({"user_id": user_id}).limit(limit).to_list()

    async def open_touchpoints_for(self, user_ids: Sequence[str]) -> list[Document]:
        """Open touchpoints of a few users, without their history (the dry run of one user)."""
        query: Document = {"state": {"$in": list(OPEN_STATES)}, "user_id": {"$in": list(user_ids)}}
        return await self.db.touchpoints.find(query, NO_HISTORY).to_list()

    async def open_touchpoints_by_user(
        self, batch: int
    ) -> AsyncGenerator[tuple[str, list[Document]]]:
        """Every open touchpoint without its history, grouped by user in user id order.

        One streamed query in ``user_id`` order (the ``user_id, state, fire_at`` index gives it
        on MongoDB), so a walk over every user holds one user's touchpoints at a time.
        """
        query = {"user_id": {"$gte": ""}, "state": {"$in": list(OPEN_STATES)}}
        cursor = (
            self.db.touchpoints.find(query, NO_HISTORY).sort("user_id", ASCENDING).batch_size(batch)
        )
        try:
            owner: str | None = None
            group: list[Document] = []
            async for tp in cursor:
                if tp["user_id"] != owner:
                    if owner is not None:
                        yield owner, group
                    owner, group = tp["user_id"], []
                group.append(tp)
            if owner is not None:
                yield owner, group
        finally:
            await cursor.close()

    async def cancel_by_source(self, user_id: str, source_id: str, now: datetime) -> int:
        """Cancel open follow-ups created by one interaction or referral."""
        result = await self.db.touchpoints.update_many(
            {"user_id": user_id, "source_id": source_id, "state": {"$in": list(OPEN_STATES)}},
            {
                "$set": {"state": "cancelled", "updated_at": now},
                "$inc": {"version": 1},
                "$push": {"history": {"at": now, "state": "cancelled", "why": "source removed"}},
            },
        )
        return result.modified_count

    async def close_touchpoints(
        self, ids: Sequence[str], state: str, why: str, now: datetime
    ) -> int:
        """Close those of these touchpoints still open (one statement), saying why."""
        result = await self.db.touchpoints.update_many(
            {"_id": {"$in": list(ids)}, "state": {"$in": list(OPEN_STATES)}},
            {
                "$set": {"state": state, "updated_at": now},
                "$inc": {"version": 1},
                "$push": {"history": {"at": now, "state": state, "why": why}},
            },
        )
        return result.modified_count

    async def mark_nudged(self, ids: Sequence[str], claim_id: str, now: datetime) -> None:
        """Record that a digest carried these touchpoints (idempotent per claim).

        One statement: MongoDB serves it from the ``_id`` index; FerretDB's SQLite backend scans
        the whole collection for every update (``_id`` equality included, measured), so one
        ``$in`` scan beats ten single-document updates there.
        """
        await self.mark_nudged_many([(ids, claim_id)], now)

    async def mark_nudged_many(
        self,
        nudges: Sequence[tuple[Sequence[str], str]],
        now: datetime,
        waiting: Sequence[tuple[Sequence[str], str]] = (),
    ) -> None:
        """:meth:`mark_nudged` for many claims ``(touchpoint ids, claim id)`` in one round trip.

        ``waiting`` holds the touchpoints each digest left out: each counts one more wait (once
        per claim), and a nudge resets the count, in the same round trip.
        """
        operations = [
            UpdateMany(
                {
                    "_id": {"$in": list(ids)},
                    "last_claim": {"$ne": claim_id},
                    "state": {"$in": list(OPEN_STATES)},
                },
                {
                    "$set": {
                        "state": "nudged",
                        "last_claim": claim_id,
                        "last_nudged_at": now,
                        "updated_at": now,
                        "waits": 0,
                    },
                    "$inc": {"nudge_count": 1, "version": 1},
                    "$push": {"history": {"at": now, "state": "nudged", "claim": claim_id}},
                },
            )
            for ids, claim_id in nudges
            if ids
        ]
        operations += [
            UpdateMany(
                {
                    "_id": {"$in": list(ids)},
                    "last_wait_claim": {"$ne": claim_id},
                    "state": {"$in": list(OPEN_STATES)},
                },
                {"$set": {"last_wait_claim": claim_id}, "$inc": {"waits": 1}},
            )
            for ids, claim_id in waiting
            if ids
        ]
        if operations:
            await self.db.touchpoints.bulk_write(operations, ordered=False)

    async def unmark_nudged(
        self, ids: Sequence[str], claim_id: str, why: str, now: datetime
    ) -> None:
        """Undo what an undelivered digest recorded: its touchpoints are due, not nudged."""
        if not ids:
            return
        await self.db.touchpoints.update_many(
            {"_id": {"$in": list(ids)}, "last_claim": claim_id, "state": "nudged"},
            {
                "$set": {"state": "scheduled", "updated_at": now},
                "$inc": {"nudge_count": -1, "version": 1},
                "$push": {"history": {"at": now, "state": "scheduled", "why": why}},
            },
        )

    # -- dispatch claims -------------------------------------------------------------------
    async def claim(self, doc: Document) -> bool:
        """Insert a claim with a deterministic id; False means another replica owns it."""
        try:
            await self.db.dispatches.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def claim_many(self, docs: Sequence[Document]) -> set[str]:
        """Insert many claims in one unordered insert; return the ids won.

        Each insert is still atomic on its deterministic ``_id``: a duplicate-key error for one
        document means another replica owns that one, and the others are inserted all the same.
        Only the reported write errors are trusted (mongo-java-server over-reports the count).
        """
        if not docs:
            return set()
        try:
            await self.db.dispatches.insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise
            lost = {int(error["index"]) for error in errors}
            return {doc["_id"] for index, doc in enumerate(docs) if index not in lost}
        return {doc["_id"] for doc in docs}

    async def existing_claims(self, claim_ids: Sequence[str]) -> set[str]:
        """Which of these claims exist (one ``_id`` lookup; spreads work, never a guard)."""
        if not claim_ids:
            return set()
        cursor = self.db.dispatches.find({"_id": {"$in": list(claim_ids)}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def update_claims(self, changes: Sequence[tuple[str, Document, Document | None]]) -> None:
        """:meth:`update_claim` for many claims ``(id, fields, inc)`` in one round trip."""
        if not changes:
            return
        operations = []
        for claim_id, fields, inc in changes:
            update: Document = {"$set": fields}
            if inc:
                update["$inc"] = inc
            operations.append(UpdateOne({"_id": claim_id}, update))
        await self.db.dispatches.bulk_write(operations, ordered=False)

    async def get_claim(self, claim_id: str) -> Document | None:
        """One claim."""
        return await self.db.dispatches.find_one({"_id": claim_id})

    async def update_claim(
        self, claim_id: str, fields: Document, inc: Document | None = None
    ) -> None:
        """Move a claim along."""
        update: Document = {"$set": fields}
        if inc:
            update["$inc"] = inc
        await self.db.dispatches.update_one({"_id": claim_id}, update)

    async def claims_to_retry(
        self, now: datetime, stale_before: datetime, limit: int
    ) -> list[Document]:
        """Claims due for a retry, or abandoned half-way by a crashed replica."""
        query = {
            "$or": [
                {"state": "claimed", "next_attempt_at": {"$lte": now}},
                {"state": {"$in": ["claimed", "dispatched"]}, "updated_at": {"$lte": stale_before}},
            ]
        }
        return await self.db.dispatches.find(query).sort("updated_at", 1).limit(limit).to_list()

    async def claims_awaiting_delivery(
        self, statuses: list[str], since: datetime, limit: int
    ) -> list[Document]:
        """Recorded digests whose message had not reached a final state when last seen."""
        query = {
            "state": "recorded",
            "message_id": {"$ne": None},
            "message_status": {"$in": statuses},
            "recorded_at": {"$gte": since},
        }
        return await self.db.dispatches.find(query).sort("recorded_at", 1).limit(limit).to_list()

    async def lease_claim(self, claim_id: str, owner: str, now: datetime, until: datetime) -> bool:
        """Spread recovery work between replicas (best effort; idempotency is the real guard)."""
        doc = await self.db.dispatches.find_one_and_update(
            {
                "_id": claim_id,
                "$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lte": now}}],
            },
            {"$set": {"lease_until": until, "lease_owner": owner}},
            return_document=ReturnDocument.AFTER,
        )
        return doc is not None and doc.get("lease_owner") == owner

    async def list_claims(
        self, user_id: str | None, state: str | None, limit: int
    ) -> list[Document]:
        """Recent dispatches, newest first."""
        query: Document = {}
        if user_id:
            query["user_id"] = user_id
        if state:
            # A state (failed, recorded...) or the notifier's message status (suppressed...).
            query["$or"] = [{"state": state}, {"message_status": state}]
        return await self.db.dispatches.find(query).sort("created_at", -1).limit(limit).to_list()

    # -- replies and undo ------------------------------------------------------------------
    async def start_reply(self, doc: Document) -> bool:
        """Claim an inbound message id; False when it was seen before."""
        try:
            await self.db.replies.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get_reply(self, sid: str) -> Document | None:
        """A stored reply."""
        return await self.db.replies.find_one({"_id": sid})

    async def finish_reply(self, sid: str, fields: Document) -> None:
        """Store the answer to an inbound message."""
        await self.db.replies.update_one({"_id": sid}, {"$set": fields})

    async def abandon_reply(self, sid: str) -> None:
        """Forget an unfinished reply so that the notifier's retry runs it again."""
        await self.db.replies.delete_one({"_id": sid, "state": "processing"})

    async def reopen_undo(self, undo_id: Any) -> None:
        """An UNDO failed half-way: let the user try again."""
        await self.db.undo.update_one({"_id": undo_id}, {"$set": {"undone": False}})

    async def add_undo(self, doc: Document) -> None:
        """Remember how to revert an action."""
        await self.db.undo.insert_one(doc)

    async def last_undo(self, user_id: str, since: datetime) -> Document | None:
        """The newest revertible action of a user since ``since``."""
        docs = (
            await self.db.undo.find({"user_id": user_id, "at": {"$gte": since}, "undone": False})
            # ObjectId ids order actions taken within the same millisecond.
            .sort([("at", -1), ("_id", -1)])
            .limit(1)
            .to_list()
        )
        return docs[0] if docs else None

    async def mark_undone(self, undo_id: Any, now: datetime) -> bool:
        """Mark an action reverted; False if it already was."""
        result = await self.db.undo.update_one(
            {"_id": undo_id, "undone": False}, {"$set": {"undone": True, "undone_at": now}}
        )
        return result.modified_count == 1

    # -- account deletion and export -------------------------------------------------------
    async def delete_user(self, user_id: str) -> None:
        """Remove everything the service holds about a user."""
        for name in ("touchpoints", "contacts", "dispatches", "replies", "undo"):
            await self.db[name].delete_many({"user_id": user_id})
        await self.db.users.delete_one({"_id": user_id})

    async def export_user(self, user_id: str) -> Document:
        """Everything the service holds about a user."""
        out: Document = {"user": await self.db.users.find_one({"_id": user_id})}
        for name in ("contacts", "touchpoints", "dispatches", "replies"):
            out[name] = await self.db[name].find({"user_id": user_id}).to_list()
        return out

    async def drop_data(self, names: Sequence[str]) -> None:
        """Delete all documents of the named collections (benchmarks)."""
        for name in names:
            await self.db[name].delete_many({})

    async def raw(self, name: str) -> Any:
        """A collection (tests and benchmarks only)."""
        return self.db[name]
