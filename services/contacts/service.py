"""Domain rules of the contacts service: users, contacts, interactions, referrals, the feed."""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING

from services.contacts.importing import ParsedFile, PlannedRow, plan_import, report
from services.contacts.models import (
    DEFAULT_CADENCE_DAYS,
    REFERRAL_NEXT,
    BusinessProfile,
    Change,
    ChangePage,
    Contact,
    ContactCreate,
    ContactPage,
    ContactPatch,
    ContactQuery,
    Export,
    ImportReport,
    Interaction,
    InteractionCreate,
    InteractionPage,
    InteractionPatch,
    InternalContact,
    MePatch,
    Referral,
    ReferralCreate,
    ReferralPage,
    ReferralPatch,
    ReferralQuery,
    Scorecard,
    StageChange,
    StageChangePage,
    Stats,
    StatsQuery,
    SyncPage,
    SyncQuery,
    Tombstone,
    User,
    normalize_phone,
    normalize_text,
)
from services.contacts.repository import (
    ChangeRepository,
    ContactRepository,
    IdempotencyRepository,
    InteractionRepository,
    OwnedRepository,
    ReferralRepository,
    StageRepository,
    UserRepository,
    after_filter,
)
from services.contacts.scorecard import build as build_scorecard
from services.contacts.scorecard import window as scorecard_window
from services.contacts.settings import ContactsSettings
from services.contacts.sync import (
    SNAPSHOT_KINDS,
    FeedPosition,
    Position,
    SnapshotPosition,
    SyncTokens,
)
from shared.auth import Role
from shared.clock import Clock
from shared.errors import (
    BadRequest,
    Conflict,
    Gone,
    NotFound,
    PreconditionFailed,
    UpstreamError,
    ValidationFailed,
)
from shared.http import ServiceClient
from shared.mongo import Document
from shared.pagination import decode_cursor, encode_cursor
from shared.web.etag import make_etag

log = logging.getLogger(__name__)

SORTS: dict[str, tuple[str, int]] = {
    "name": ("name_norm", ASCENDING),
    "-name": ("name_norm", DESCENDING),
    "created_at": ("created_at", ASCENDING),
    "-created_at": ("created_at", DESCENDING),
    "updated_at": ("updated_at", ASCENDING),
    "-updated_at": ("updated_at", DESCENDING),
    # Most overdue first: the contact whose next touch was due the longest ago.
    "losing_touch": ("due_at", ASCENDING),
}
MAX_FUTURE = timedelta(days=1)
# Contacts an import writes per round trip (change records, then contacts).
IMPORT_BATCH = 500


def new_id() -> str:
    """A fresh entity id (32 hex digits)."""
    return uuid.uuid4().hex


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(errors=[{"field": field, "message": message}])


def role_for(user: Document, settings: ContactsSettings) -> Role:
    """Operators are named by configuration (OPERATOR_PHONES) or the manage command, never the API.

    The effective role is the stored flag OR membership in OPERATOR_PHONES.
    """
    if user.get("operator") is True or user["phone"] in settings.operator_phone_set:
        return "operator"
    return "networker"


def user_out(doc: Document, settings: ContactsSettings) -> User:
    """The public shape of a user document."""
    return User(
        id=doc["_id"],
        phone=doc["phone"],
        name=doc.get("name"),
        time_zone=doc["time_zone"],
        region=doc["region"],
        locale=doc["locale"],
        role=role_for(doc, settings),
        profile=BusinessProfile.model_validate(doc.get("profile") or {}),
        created_at=doc["created_at"].astimezone(UTC),
    )


def contact_out(doc: Document) -> Contact:
    """The app's shape of a contact document."""
    return Contact(
        id=doc["_id"],
        name=doc["name"],
        company=doc.get("company"),
        title=doc.get("title"),
        profession=doc.get("profession"),
        phones=doc.get("phones", []),
        emails=doc.get("emails", []),
        met=doc.get("met"),
        tier=doc.get("tier"),
        cadence_days=doc.get("cadence_days"),
        stage=doc["stage"],
        tags=doc.get("tags", []),
        notes=doc.get("notes"),
        birthday=doc.get("birthday"),
        time_zone=doc.get("time_zone"),
        last_interaction_at=_utc(doc.get("last_interaction_at")),
        interaction_count=doc.get("interaction_count", 0),
        interactions_by_kind=doc.get("interactions_by_kind", {}),
        referrals_given=doc.get("referrals_given", 0),
        referrals_received=doc.get("referrals_received", 0),
        due_at=doc["due_at"].astimezone(UTC),
        created_at=doc["created_at"].astimezone(UTC),
        updated_at=doc["updated_at"].astimezone(UTC),
        deleted=bool(doc.get("deleted")),
        deleted_at=_utc(doc.get("deleted_at")),
    )


def internal_contact_out(doc: Document) -> InternalContact:
    """The shape other services see: no private notes, phone or e-mail."""
    return InternalContact(
        id=doc["_id"],
        user_id=doc["user_id"],
        name=doc["name"],
        company=doc.get("company"),
        tier=doc.get("tier"),
        cadence_days=doc.get("cadence_days"),
        stage=doc["stage"],
        birthday=doc.get("birthday"),
        last_interaction_at=_utc(doc.get("last_interaction_at")),
        created_at=doc["created_at"].astimezone(UTC),
        deleted=bool(doc.get("deleted")),
    )


def interaction_out(doc: Document) -> Interaction:
    """The shape of an interaction document."""
    return Interaction(
        id=doc["_id"],
        contact_id=doc["contact_id"],
        user_id=doc["user_id"],
        kind=doc["kind"],
        occurred_at=doc["occurred_at"].astimezone(UTC),
        notes=doc.get("notes"),
        next_action=doc.get("next_action"),
        next_action_agreed=doc.get("next_action") is not None,
        source=doc["source"],
        created_at=doc["created_at"].astimezone(UTC),
        updated_at=(doc.get("updated_at") or doc["created_at"]).astimezone(UTC),
    )


def stage_change_out(doc: Document) -> StageChange:
    """The shape of a stage change record."""
    return StageChange(
        id=doc["_id"],
        contact_id=doc["contact_id"],
        stage=doc["stage"],
        previous=doc.get("previous"),
        at=doc["at"].astimezone(UTC),
    )


def referral_out(doc: Document) -> Referral:
    """The shape of a referral document."""
    return Referral(
        id=doc["_id"],
        user_id=doc["user_id"],
        direction=doc["direction"],
        contact_id=doc["contact_id"],
        for_name=doc.get("for_name"),
        for_contact_id=doc.get("for_contact_id"),
        description=doc.get("description"),
        temperature=doc.get("temperature"),
        status=doc["status"],
        status_times={k: v.astimezone(UTC) for k, v in doc.get("status_times", {}).items()},
        value=doc.get("value"),
        currency=doc.get("currency"),
        created_at=doc["created_at"].astimezone(UTC),
        updated_at=doc["updated_at"].astimezone(UTC),
    )


def entity_etag(doc: Document) -> str:
    """The ETag of a versioned document's current version (contacts, referrals)."""
    return make_etag(doc["_id"], int(doc.get("version", 1)))


def due_at(doc: Document) -> datetime:
    """When the contact's next touch is due: last touch (or creation) plus the cadence."""
    base: datetime = doc.get("last_interaction_at") or doc["created_at"]
    cadence = doc.get("cadence_days") or DEFAULT_CADENCE_DAYS[doc.get("tier")]
    return base + timedelta(days=cadence)


def new_contact_doc(user_id: str, fields: Document, now: datetime) -> Document:
    """The stored form of a new contact from its normalised fields (see ``_contact_fields``)."""
    doc: Document = {
        "_id": new_id(),
        "user_id": user_id,
        **fields,
        "name_norm": normalize_text(fields["name"]),
        "company_norm": normalize_text(fields.get("company") or ""),
        "last_interaction_at": None,
        "interaction_count": 0,
        "interactions_by_kind": {},
        "referrals_given": 0,
        "referrals_received": 0,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
        "deleted_at": None,
        "version": 1,
    }
    doc["due_at"] = due_at(doc)
    return doc


class ContactsService:
    """Everything a user (or another service on a user's behalf) can do with their data."""

    def __init__(
        self,
        *,
        settings: ContactsSettings,
        clock: Clock,
        users: UserRepository,
        contacts: ContactRepository,
        interactions: InteractionRepository,
        referrals: ReferralRepository,
        stages: StageRepository,
        changes: ChangeRepository,
        idempotency: IdempotencyRepository,
        reminders: ServiceClient | None = None,
        notifier: ServiceClient | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._users = users
        self._contacts = contacts
        self._interactions = interactions
        self._referrals = referrals
        self._stages = stages
        self._changes = changes
        self._idempotency = idempotency
        self._reminders = reminders
        self._notifier = notifier
        self._sync_tokens = SyncTokens(settings.auth_jwt_secret.get_secret_value())

    @property
    def settings(self) -> ContactsSettings:
        """This service's settings."""
        return self._settings

    def wall_now(self) -> datetime:
        """The real time, as the change feed stamps it."""
        return self._changes.wall_now()

    async def purge_changes(self, before: datetime) -> int:
        """Drop change records older than the retention period."""
        return await self._changes.purge(before)

    async def _change(self, kind: str, op: str, user_id: str, entity_id: str) -> None:
        # Written before the entity write: a feed reader past the lag never misses the write.
        await self._changes.record(new_id(), kind, op, user_id, entity_id)

    # --- users --------------------------------------------------------------------------------

    async def user(self, user_id: str) -> Document:
        """The user's document, or 404."""
        doc = await self._users.get(user_id)
        if doc is None:
            raise NotFound("no such user")
        return doc

    async def me(self, user_id: str) -> User:
        """The signed-in user's profile."""
        return user_out(await self.user(user_id), self._settings)

    async def update_me(self, user_id: str, patch: MePatch) -> User:
        """Change the user's profile."""
        await self.user(user_id)
        fields = {k: getattr(patch, k) for k in patch.model_fields_set}
        if "profile" in fields:
            profile = fields["profile"]
            fields["profile"] = profile.model_dump() if profile is not None else None
        for key in ("time_zone", "region", "locale"):
            if key in fields and fields[key] is None:
                raise _invalid(key, "may not be null")
        if fields:
            fields["updated_at"] = self._clock.now()
            await self._change("user", "upsert", user_id, user_id)
            await self._users.update(user_id, fields)
        return await self.me(user_id)

    async def user_by_phone(self, phone: str) -> User:
        """Resolve an inbound SMS's sender."""
        doc = await self._users.by_phone(phone)
        if doc is None:
            raise NotFound("no user with this phone number")
        return user_out(doc, self._settings)

    async def set_operator(self, phone: str, operator: bool) -> str:
        """Grant or revoke the stored operator flag of the user with ``phone``; their id.

        Only the manage command calls this, never an API route. The change is recorded in the
        feed like any user write, so other services see the new role. OPERATOR_PHONES still
        makes a listed number an operator whatever the stored flag says.
        """
        try:
            number = normalize_phone(phone, self._settings.default_region)
        except ValueError as exc:
            raise ValidationFailed(
                f"phone: {exc}", errors=[{"field": "phone", "message": str(exc)}]
            ) from None
        doc = await self._users.by_phone(number)
        if doc is None:
            raise NotFound("no user has this phone number (they must sign in once first)")
        user_id: str = doc["_id"]
        if bool(doc.get("operator")) != operator:
            await self._change("user", "upsert", user_id, user_id)
            await self._users.update(
                user_id, {"operator": operator, "updated_at": self._clock.now()}
            )
        log.info(
            "operator role %s", "granted" if operator else "revoked", extra={"user_id": user_id}
        )
        return user_id

    async def users_page(self, after: str | None, limit: int) -> tuple[list[User], str | None]:
        """All users in id order, for reconciliation."""
        last = decode_cursor(after, (str,), "after")[0] if after else None
        docs = await self._users.page(last, limit)
        nxt = encode_cursor([docs[-1]["_id"]]) if len(docs) == limit else None
        return [user_out(d, self._settings) for d in docs], nxt

    # --- contacts -----------------------------------------------------------------------------

    async def _contact_fields(
        self, user_id: str, fields: Document, user: Document | None = None
    ) -> Document:
        """Normalise list and nested fields of a create or patch into their stored form."""
        if fields.get("phones") is not None:
            region = (user or await self.user(user_id))["region"]
            phones: list[Document] = []
            seen: set[str] = set()
            for index, entry in enumerate(fields["phones"]):
                try:
                    number = normalize_phone(entry["number"], region)
                except ValueError as exc:
                    raise _invalid(f"phones.{index}.number", str(exc)) from None
                if number not in seen:  # the first label of a repeated number wins
                    seen.add(number)
                    phones.append({"number": number, "label": entry.get("label")})
            fields["phones"] = phones
        if fields.get("emails") is not None:
            by_key: dict[str, str] = {}
            for email in fields["emails"]:
                by_key.setdefault(email.casefold(), email)
            fields["emails"] = list(by_key.values())
        if fields.get("tags") is not None:
            fields["tags"] = sorted(set(fields["tags"]))
        if fields.get("met") is not None and not any(fields["met"].values()):
            fields["met"] = None  # nothing said about the meeting
        return fields

    async def create_contact(self, user_id: str, data: ContactCreate) -> Document:
        """Add a contact to the user's book."""
        now = self._clock.now()
        user = await self.user(user_id)
        fields = await self._contact_fields(user_id, data.model_dump(), user)
        doc = new_contact_doc(user_id, fields, now)
        await self._change("contact", "upsert", user_id, doc["_id"])
        await self._contacts.insert(doc)
        await self._record_stage(user_id, doc["_id"], doc["stage"], None, now)
        return doc

    async def contact(self, user_id: str, contact_id: str) -> Document:
        """One of the user's contacts (soft-deleted ones too), or 404."""
        doc = await self._contacts.get(user_id, contact_id)
        if doc is None:
            raise NotFound("no such contact")
        return doc

    async def live_contact(self, user_id: str, contact_id: str) -> Document:
        """One of the user's contacts that is not deleted, or 404."""
        doc = await self.contact(user_id, contact_id)
        if doc.get("deleted"):
            raise NotFound("no such contact")
        return doc

    async def import_contacts(
        self, user_id: str, parsed: ParsedFile, *, dry_run: bool
    ) -> ImportReport:
        """Preview (``dry_run``) or create the contacts of an import file; a report per row.

        Rows are validated like ``POST /v1/contacts`` bodies (phones read in the user's region)
        and de-duplicated against the user's live contacts and the earlier rows, so importing
        the same file again creates nothing. Creates are written like ``create_contact``'s,
        in batches: each batch's change records first, then its contacts.
        """
        user = await self.user(user_id)
        existing = await self._contacts.find(
            {"user_id": user_id, "deleted": False},
            {"phones": 1, "emails": 1, "name": 1, "company": 1},
        )
        planned = plan_import(parsed, user["region"], existing)
        if not dry_run:
            creates = [row for row in planned if row.data is not None and row.outcome == "create"]
            for start in range(0, len(creates), IMPORT_BATCH):
                await self._create_batch(user, creates[start : start + IMPORT_BATCH])
        return report(parsed, planned, dry_run=dry_run)

    async def _create_batch(self, user: Document, rows: list[PlannedRow]) -> None:
        now = self._clock.now()
        docs: list[Document] = []
        for row in rows:
            assert row.data is not None
            fields = await self._contact_fields(user["_id"], row.data.model_dump(), user)
            docs.append(new_contact_doc(user["_id"], fields, now))
        # Records before entities, as in create_contact: the feed never misses one of these.
        await self._changes.record_many(
            [(new_id(), "contact", "upsert", user["_id"], doc["_id"]) for doc in docs]
        )
        await self._contacts.insert_many(docs)
        # Each contact starts its stage history, as create_contact's do (after the write).
        await self._stages.insert_many(
            [
                {
                    "_id": new_id(),
                    "user_id": user["_id"],
                    "contact_id": doc["_id"],
                    "stage": doc["stage"],
                    "previous": None,
                    "at": now,
                }
                for doc in docs
            ]
        )
        for row, doc in zip(rows, docs, strict=True):
            row.contact_id = doc["_id"]

    async def list_contacts(self, user_id: str, query: ContactQuery) -> ContactPage:
        """A filtered, sorted page of the user's contacts."""
        field, direction = SORTS[query.sort]
        conditions: list[Document] = [{"user_id": user_id, "deleted": query.deleted}]
        if query.tag:
            conditions.append({"tags": query.tag})
        if query.tier:
            conditions.append({"tier": query.tier})
        if query.stage:
            conditions.append({"stage": query.stage})
        if query.q:
            needle = normalize_text(query.q)
            if not needle:
                # Only punctuation: nothing can match it.
                return ContactPage(items=[], next=None)
            pattern = re.escape(needle)
            conditions.append(
                {
                    "$or": [
                        {"name_norm": {"$regex": pattern}},
                        {"company_norm": {"$regex": pattern}},
                    ]
                }
            )
        if query.cursor:
            value_kind = str if field == "name_norm" else datetime
            sort_name, value, last_id = decode_cursor(
                query.cursor, (str, value_kind, str), "cursor"
            )
            if sort_name != query.sort:
                raise BadRequest(
                    "the cursor belongs to another sort order",
                    errors=[{"field": "cursor", "message": "cursor of another sort order"}],
                )
            conditions.append(after_filter(field, direction, value, last_id))
        mongo_query: Document = {"$and": conditions} if len(conditions) > 1 else conditions[0]
        mongo_query.setdefault("user_id", user_id)
        docs = await self._contacts.find_page(
            mongo_query, [(field, direction), ("_id", direction)], query.limit + 1
        )
        nxt = None
        if len(docs) > query.limit:
            docs = docs[: query.limit]
            nxt = encode_cursor([query.sort, docs[-1][field], docs[-1]["_id"]])
        return ContactPage(items=[contact_out(d) for d in docs], next=nxt)

    async def update_contact(
        self, user_id: str, contact_id: str, patch: ContactPatch, if_match: frozenset[str] | None
    ) -> Document:
        """Change a live contact; ``if_match`` (acceptable ETags) guards against lost updates."""
        doc = await self.live_contact(user_id, contact_id)
        if if_match is not None and entity_etag(doc) not in if_match:
            raise PreconditionFailed("the contact has changed since it was read; fetch it again")
        fields: Document = patch.model_dump(include=patch.model_fields_set)
        for key in ("name", "stage"):
            if key in fields and fields[key] is None:
                raise _invalid(key, "may not be null")
        for key in ("phones", "emails", "tags"):
            if key in fields and fields[key] is None:
                fields[key] = []
        fields = await self._contact_fields(user_id, fields)
        if "name" in fields:
            fields["name_norm"] = normalize_text(fields["name"])
        if "company" in fields:
            fields["company_norm"] = normalize_text(fields["company"] or "")
        if not fields:
            return doc
        fields["updated_at"] = self._clock.now()
        fields["due_at"] = due_at({**doc, **fields})
        await self._change("contact", "upsert", user_id, contact_id)
        if not await self._contacts.update_versioned(
            user_id, contact_id, int(doc.get("version", 1)), fields
        ):
            raise PreconditionFailed("the contact changed during the update; fetch it again")
        if fields.get("stage", doc["stage"]) != doc["stage"]:
            await self._record_stage(
                user_id, contact_id, fields["stage"], doc["stage"], fields["updated_at"]
            )
        return await self.contact(user_id, contact_id)

    async def delete_contact(
        self, user_id: str, contact_id: str, if_match: frozenset[str] | None
    ) -> None:
        """Soft-delete a contact (restorable; its history is kept)."""
        doc = await self.live_contact(user_id, contact_id)
        if if_match is not None and entity_etag(doc) not in if_match:
            raise PreconditionFailed("the contact has changed since it was read; fetch it again")
        now = self._clock.now()
        await self._change("contact", "delete", user_id, contact_id)
        if not await self._contacts.update_versioned(
            user_id,
            contact_id,
            int(doc.get("version", 1)),
            {"deleted": True, "deleted_at": now, "updated_at": now},
        ):
            raise PreconditionFailed("the contact changed during the update; fetch it again")

    async def restore_contact(self, user_id: str, contact_id: str) -> Document:
        """Bring a soft-deleted contact back."""
        doc = await self.contact(user_id, contact_id)
        if not doc.get("deleted"):
            return doc
        now = self._clock.now()
        await self._change("contact", "upsert", user_id, contact_id)
        await self._contacts.bump(
            user_id, contact_id, {"deleted": False, "deleted_at": None, "updated_at": now}
        )
        return await self.contact(user_id, contact_id)

    async def _record_stage(
        self, user_id: str, contact_id: str, stage: str, previous: str | None, at: datetime
    ) -> None:
        # Written after the contact write it describes, so a refused write leaves no record;
        # a crash in between loses that one entry of the history, never the stage itself.
        await self._stages.insert(
            {
                "_id": new_id(),
                "user_id": user_id,
                "contact_id": contact_id,
                "stage": stage,
                "previous": previous,
                "at": at,
            }
        )

    async def stage_history(
        self, user_id: str, contact_id: str, cursor: str | None, limit: int
    ) -> StageChangePage:
        """A contact's stage changes, oldest first (deleted contacts' too)."""
        await self.contact(user_id, contact_id)
        docs, nxt = await _contact_page(
            self._stages, user_id, contact_id, "at", ASCENDING, cursor, limit
        )
        return StageChangePage(items=[stage_change_out(d) for d in docs], next=nxt)

    async def match_contacts(self, user_id: str, name: str, limit: int) -> list[InternalContact]:
        """Live contacts whose name has a word starting with each word of ``name``."""
        words = normalize_text(name).split()
        if not words:
            raise _invalid("name", "needs at least one letter or digit")
        conditions: list[Document] = [{"user_id": user_id, "deleted": False}]
        conditions += [{"name_norm": {"$regex": f"(^| ){re.escape(w)}"}} for w in words[:8]]
        docs = await self._contacts.find_page(
            {"user_id": user_id, "$and": conditions}, [("name_norm", ASCENDING)], limit
        )
        return [internal_contact_out(d) for d in docs]

    async def live_contacts_page(
        self, user_id: str, after: str | None, limit: int
    ) -> tuple[list[InternalContact], str | None]:
        """A user's live contacts in id order, for reconciliation."""
        query: Document = {"user_id": user_id, "deleted": False}
        if after:
            query["_id"] = {"$gt": decode_cursor(after, (str,), "after")[0]}
        docs = await self._contacts.find_page(query, [("_id", ASCENDING)], limit)
        nxt = encode_cursor([docs[-1]["_id"]]) if len(docs) == limit else None
        return [internal_contact_out(d) for d in docs], nxt

    # --- interactions -------------------------------------------------------------------------

    async def _recount(self, user_id: str, contact_id: str) -> None:
        """Recompute a contact's counters from its history (idempotent, so safe to repeat)."""
        contact = await self._contacts.get(user_id, contact_id)
        if contact is None:
            return
        items = await self._interactions.find(
            {"user_id": user_id, "contact_id": contact_id}, {"kind": 1, "occurred_at": 1}
        )
        refs = await self._referrals.find(
            {"user_id": user_id, "contact_id": contact_id}, {"direction": 1}
        )
        directions = Counter(r["direction"] for r in refs)
        fields: Document = {
            "interaction_count": len(items),
            "interactions_by_kind": dict(Counter(i["kind"] for i in items)),
            "last_interaction_at": max((i["occurred_at"] for i in items), default=None),
            "referrals_given": directions.get("given", 0),
            "referrals_received": directions.get("received", 0),
        }
        fields["due_at"] = due_at({**contact, **fields})
        fields["updated_at"] = self._clock.now()
        await self._change("contact", "upsert", user_id, contact_id)
        if contact.get("interactions_by_kind", {}) != fields["interactions_by_kind"]:
            # FerretDB v1 skips a $set of an embedded document whose values equal the old
            # one's, whatever its keys ({"call": 1} stays when set to {"one_to_one": 1}, as an
            # edited kind does): empty the map first, so the set below always writes it.
            await self._contacts.set(user_id, contact_id, {"interactions_by_kind": {}})
        await self._contacts.bump(user_id, contact_id, fields)

    async def log_interaction(
        self, user_id: str, contact_id: str, data: InteractionCreate, *, trusted_time: bool = False
    ) -> Interaction:
        """Record a touch with a live contact and update its counters."""
        await self.live_contact(user_id, contact_id)
        now = self._clock.now()
        occurred = data.occurred_at.astimezone(UTC) if data.occurred_at else now
        next_action = data.next_action or None
        # Only the app's own entries are checked against this clock: another service stamps
        # with its own, and in test mode the two clocks may be moved independently.
        if not trusted_time and occurred > now + MAX_FUTURE:
            raise _invalid("occurred_at", "may not be more than a day in the future")
        doc: Document = {
            "_id": new_id(),
            "user_id": user_id,
            "contact_id": contact_id,
            "kind": data.kind,
            "occurred_at": occurred,
            "notes": data.notes,
            # Blank means none agreed: stored as null with an explicit flag, so a 1-2-1
            # without a next action is on record as such (and reminders can follow it up).
            "next_action": next_action,
            "next_action_agreed": next_action is not None,
            "source": data.source,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        await self._change("interaction", "upsert", user_id, doc["_id"])
        await self._interactions.insert(doc)
        await self._recount(user_id, contact_id)
        return interaction_out(doc)

    async def list_interactions(
        self, user_id: str, contact_id: str, cursor: str | None, limit: int
    ) -> InteractionPage:
        """A contact's interactions, newest first."""
        await self.contact(user_id, contact_id)
        docs, nxt = await _contact_page(
            self._interactions, user_id, contact_id, "occurred_at", DESCENDING, cursor, limit
        )
        return InteractionPage(items=[interaction_out(d) for d in docs], next=nxt)

    async def interaction_doc(self, user_id: str, interaction_id: str) -> Document:
        """One of the user's interaction documents, or 404."""
        doc = await self._interactions.get(user_id, interaction_id)
        if doc is None:
            raise NotFound("no such interaction")
        return doc

    async def update_interaction(
        self,
        user_id: str,
        interaction_id: str,
        patch: InteractionPatch,
        if_match: frozenset[str] | None = None,
    ) -> Document:
        """Correct a logged interaction; its contact's counters are recomputed.

        The change feed carries the new state, so reminders re-applies it (cadence, follow-ups).
        """
        doc = await self.interaction_doc(user_id, interaction_id)
        if if_match is not None and entity_etag(doc) not in if_match:
            raise PreconditionFailed("the interaction has changed since it was read; read it again")
        fields: Document = {k: getattr(patch, k) for k in patch.model_fields_set}
        for key in ("kind", "occurred_at"):
            if key in fields and fields[key] is None:
                raise _invalid(key, "may not be null")
        now = self._clock.now()
        if "occurred_at" in fields:
            fields["occurred_at"] = fields["occurred_at"].astimezone(UTC)
            if fields["occurred_at"] > now + MAX_FUTURE:
                raise _invalid("occurred_at", "may not be more than a day in the future")
        if "next_action" in fields:
            fields["next_action"] = fields["next_action"] or None  # blank means none agreed
            fields["next_action_agreed"] = fields["next_action"] is not None
        if not fields:
            return doc
        fields["updated_at"] = now
        await self._change("interaction", "upsert", user_id, interaction_id)
        if not await self._interactions.update_versioned(
            user_id, interaction_id, int(doc.get("version", 1)), fields
        ):
            raise PreconditionFailed("the interaction changed during the update; fetch it again")
        await self._recount(user_id, doc["contact_id"])
        return await self.interaction_doc(user_id, interaction_id)

    async def delete_interaction(
        self, user_id: str, interaction_id: str, if_match: frozenset[str] | None = None
    ) -> None:
        """Remove an interaction (UNDO) and restore its contact's counters."""
        doc = await self.interaction_doc(user_id, interaction_id)
        if if_match is not None and entity_etag(doc) not in if_match:
            raise PreconditionFailed("the interaction has changed since it was read; read it again")
        await self._change("interaction", "delete", user_id, interaction_id)
        await self._interactions.delete(user_id, interaction_id)
        await self._recount(user_id, doc["contact_id"])

    # --- referrals ----------------------------------------------------------------------------

    async def create_referral(self, user_id: str, data: ReferralCreate) -> Referral:
        """Record a referral given to or received from a live contact."""
        if (
            await self._contacts.count(
                {"user_id": user_id, "_id": data.contact_id, "deleted": False}
            )
            == 0
        ):
            raise _invalid("contact_id", "no such contact")
        if (
            data.for_contact_id
            and await self._contacts.count(
                {"user_id": user_id, "_id": data.for_contact_id, "deleted": False}
            )
            == 0
        ):
            raise _invalid("for_contact_id", "no such contact")
        now = self._clock.now()
        doc: Document = {
            "_id": new_id(),
            "user_id": user_id,
            **data.model_dump(),
            "status": "open",
            "status_times": {"open": now},
            "value": None,
            "currency": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        await self._change("referral", "upsert", user_id, doc["_id"])
        await self._referrals.insert(doc)
        await self._recount(user_id, data.contact_id)
        return referral_out(doc)

    async def referral_doc(self, user_id: str, referral_id: str) -> Document:
        """One of the user's referral documents, or 404."""
        doc = await self._referrals.get(user_id, referral_id)
        if doc is None:
            raise NotFound("no such referral")
        return doc

    async def referral(self, user_id: str, referral_id: str) -> Referral:
        """One of the user's referrals, or 404."""
        return referral_out(await self.referral_doc(user_id, referral_id))

    async def list_referrals(self, user_id: str, query: ReferralQuery) -> ReferralPage:
        """The user's referrals, newest first."""
        conditions: list[Document] = [{"user_id": user_id}]
        for key in ("direction", "status", "contact_id"):
            value = getattr(query, key)
            if value is not None:
                conditions.append({key: value})
        if query.cursor:
            when, last_id = decode_cursor(query.cursor, (datetime, str), "cursor")
            conditions.append(after_filter("created_at", DESCENDING, when, last_id))
        docs = await self._referrals.find_page(
            {"user_id": user_id, "$and": conditions},
            [("created_at", DESCENDING), ("_id", DESCENDING)],
            query.limit + 1,
        )
        nxt = None
        if len(docs) > query.limit:
            docs = docs[: query.limit]
            nxt = encode_cursor([docs[-1]["created_at"], docs[-1]["_id"]])
        return ReferralPage(items=[referral_out(d) for d in docs], next=nxt)

    async def update_referral(
        self,
        user_id: str,
        referral_id: str,
        patch: ReferralPatch,
        if_match: frozenset[str] | None = None,
    ) -> Document:
        """Move a referral forward in its pipeline (open → contacted → meeting → won | lost)."""
        doc = await self.referral_doc(user_id, referral_id)
        if if_match is not None and entity_etag(doc) not in if_match:
            raise PreconditionFailed("the referral has changed since it was read; fetch it again")
        fields: Document = {k: getattr(patch, k) for k in patch.model_fields_set}
        if "status" in fields and fields["status"] is None:
            raise _invalid("status", "may not be null")
        now = self._clock.now()
        status = fields.get("status")
        if status is not None and status != doc["status"]:
            if status not in REFERRAL_NEXT[doc["status"]]:
                raise Conflict(f"a referral cannot go from {doc['status']} to {status}")
            fields[f"status_times.{status}"] = now
        final_status = status or doc["status"]
        value = fields.get("value", doc.get("value"))
        currency = fields.get("currency", doc.get("currency"))
        if final_status == "won" and (value is None or currency is None):
            raise _invalid("value", "a won referral needs a value and a currency")
        if (value is None) != (currency is None):
            raise _invalid("currency", "value and currency go together")
        if final_status != "won" and value is not None:
            raise _invalid("value", "only a won referral has a value")
        if not fields:
            return doc
        fields["updated_at"] = now
        await self._change("referral", "upsert", user_id, referral_id)
        # The version guard keeps two racing moves from both applying (on MongoDB).
        if not await self._referrals.update_versioned(
            user_id, referral_id, int(doc.get("version", 1)), fields
        ):
            raise PreconditionFailed("the referral changed during the update; fetch it again")
        return await self.referral_doc(user_id, referral_id)

    async def delete_referral(self, user_id: str, referral_id: str) -> None:
        """Remove a referral (UNDO) and restore its contact's counters."""
        doc = await self._referrals.get(user_id, referral_id)
        if doc is None:
            raise NotFound("no such referral")
        await self._change("referral", "delete", user_id, referral_id)
        await self._referrals.delete(user_id, referral_id)
        await self._recount(user_id, doc["contact_id"])

    # --- change feed --------------------------------------------------------------------------

    async def changes(self, after: str | None, limit: int) -> ChangePage:
        """Changes older than the safety lag, after ``after``, with entities read now."""
        position: tuple[datetime, str] | None = None
        if after:
            when, last_id = decode_cursor(after, (datetime, str), "after")
            position = (when, last_id)
        until = self._changes.wall_now() - timedelta(seconds=self._settings.change_feed_lag_s)
        records = await self._changes.page(position, until, limit + 1)
        has_more = len(records) > limit
        records = records[:limit]
        entities = await self._hydrate(records)
        out: list[Change] = []
        for rec in records:
            entity = entities.get((rec["kind"], rec["entity_id"]))
            deleted = entity is None or bool(entity.get("deleted"))
            out.append(
                Change(
                    cursor=encode_cursor([rec["stamp"], rec["_id"]]),
                    kind=rec["kind"],
                    # The op reflects the entity's state now, consistent with the entity shown.
                    op="delete" if deleted else "upsert",
                    user_id=rec["user_id"],
                    entity_id=rec["entity_id"],
                    at=rec["stamp"].astimezone(UTC),
                    entity=entity,
                )
            )
        nxt = out[-1].cursor if out else after
        return ChangePage(changes=out, next=nxt, has_more=has_more)

    async def _hydrate(self, records: Sequence[Document]) -> dict[tuple[str, str], dict[str, Any]]:
        ids: dict[str, set[tuple[str, str]]] = {}
        for rec in records:
            ids.setdefault(rec["kind"], set()).add((rec["user_id"], rec["entity_id"]))
        found: dict[tuple[str, str], dict[str, Any]] = {}
        if "contact" in ids:
            for doc in await self._contacts.by_ids(sorted(ids["contact"])):
                found[("contact", doc["_id"])] = internal_contact_out(doc).model_dump(mode="json")
        if "interaction" in ids:
            for doc in await self._interactions.by_ids(sorted(ids["interaction"])):
                found[("interaction", doc["_id"])] = interaction_out(doc).model_dump(mode="json")
        if "referral" in ids:
            for doc in await self._referrals.by_ids(sorted(ids["referral"])):
                found[("referral", doc["_id"])] = referral_out(doc).model_dump(mode="json")
        if "user" in ids:
            for doc in await self._users.many(sorted(uid for uid, _ in ids["user"])):
                found[("user", doc["_id"])] = user_out(doc, self._settings).model_dump(mode="json")
        return found

    # --- mobile delta sync --------------------------------------------------------------------

    async def sync(self, user_id: str, query: SyncQuery) -> SyncPage:
        """A page of the user's delta sync: a full listing first, then their slice of the feed.

        The feed's records are written before the writes they announce and served only once
        older than the safety lag, so a position in the feed never passes a write it has not
        shown. A full sync starts its feed position at its own start less the lag: any write
        the listing misses has a record from then on, and is served afterwards.
        """
        now = self._changes.wall_now()
        lag = timedelta(seconds=self._settings.change_feed_lag_s)
        position: Position
        if query.since is None:
            position = SnapshotPosition(now - lag, 0, None)
        else:
            position = self._sync_tokens.decode(user_id, query.since)
            start = position.start if isinstance(position, SnapshotPosition) else position.stamp
            if start > now:
                raise BadRequest(
                    "since is not a sync token issued to you",
                    errors=[{"field": "since", "message": "invalid sync token"}],
                )
            # The purge keeps this much of the feed; an older position may have lost records.
            if start < now - timedelta(days=self._settings.change_retention_days):
                raise Gone(
                    "the sync token is older than the change history kept "
                    f"({self._settings.change_retention_days} days); "
                    "drop local data and sync again without since"
                )
        page = SyncPage(
            contacts=[], interactions=[], referrals=[], tombstones=[], next="", has_more=False
        )
        if isinstance(position, SnapshotPosition):
            nxt = await self._sync_snapshot(user_id, position, query.limit, page)
        else:
            nxt = await self._sync_feed(user_id, position, now - lag, query.limit, page)
        page.next = self._sync_tokens.encode(user_id, nxt)
        return page

    async def _sync_snapshot(
        self, user_id: str, position: SnapshotPosition, limit: int, page: SyncPage
    ) -> Position:
        """List the user's live documents kind after kind; the position after this page."""
        room = limit
        kind, after = position.kind, position.after
        while kind < len(SNAPSHOT_KINDS) and room > 0:
            repo, base, field, direction = self._snapshot_source(user_id, SNAPSHOT_KINDS[kind])
            query = dict(base)
            if after is not None:
                query["$and"] = [after_filter(field, direction, after[0], after[1])]
            docs = await repo.find_page(query, [(field, direction), ("_id", direction)], room + 1)
            if len(docs) > room:
                self._add_documents(SNAPSHOT_KINDS[kind], docs[:room], page)
                last = docs[room - 1]
                page.has_more = True
                return SnapshotPosition(position.start, kind, (last[field], last["_id"]))
            self._add_documents(SNAPSHOT_KINDS[kind], docs, page)
            room -= len(docs)
            kind, after = kind + 1, None
        if kind < len(SNAPSHOT_KINDS):
            page.has_more = True
            return SnapshotPosition(position.start, kind, None)
        # Listed: the feed takes over from the listing's start (repeats are harmless upserts).
        return FeedPosition(position.start, "")

    def _snapshot_source(
        self, user_id: str, kind: str
    ) -> tuple[OwnedRepository, Document, str, int]:
        # Each order is the prefix of an index the lists already use.
        if kind == "contact":
            return self._contacts, {"user_id": user_id, "deleted": False}, "created_at", ASCENDING
        if kind == "interaction":
            return self._interactions, {"user_id": user_id}, "occurred_at", DESCENDING
        return self._referrals, {"user_id": user_id}, "created_at", DESCENDING

    def _add_documents(self, kind: str, docs: Sequence[Document], page: SyncPage) -> None:
        for doc in docs:
            if kind == "contact":
                page.contacts.append(contact_out(doc))
            elif kind == "interaction":
                page.interactions.append(interaction_out(doc))
            else:
                page.referrals.append(referral_out(doc))

    async def _sync_feed(
        self, user_id: str, position: FeedPosition, until: datetime, limit: int, page: SyncPage
    ) -> Position:
        """Resolve the user's records after the position to documents or tombstones."""
        records = await self._changes.user_page(
            user_id, SNAPSHOT_KINDS, (position.stamp, position.record_id), until, limit + 1
        )
        page.has_more = len(records) > limit
        records = records[:limit]
        # One entry per entity, at its last record: the document is read now anyway.
        latest: dict[tuple[str, str], Document] = {}
        for rec in records:
            latest.pop((rec["kind"], rec["entity_id"]), None)
            latest[(rec["kind"], rec["entity_id"])] = rec
        repos: dict[str, OwnedRepository] = {
            "contact": self._contacts,
            "interaction": self._interactions,
            "referral": self._referrals,
        }
        found: dict[tuple[str, str], Document] = {}
        for kind, repo in repos.items():
            pairs = [(user_id, eid) for k, eid in latest if k == kind]
            if pairs:
                for doc in await repo.by_ids(pairs):
                    found[(kind, doc["_id"])] = doc
        for key, rec in latest.items():
            current = found.get(key)
            if current is not None and not current.get("deleted"):
                self._add_documents(key[0], [current], page)
                continue
            # A soft-deleted contact keeps its time; a removed entity has its record's.
            deleted_at = (current or {}).get("deleted_at") or rec["stamp"]
            page.tombstones.append(
                Tombstone(kind=key[0], id=key[1], deleted_at=deleted_at.astimezone(UTC))
            )
        if page.has_more:
            return FeedPosition(records[-1]["stamp"], records[-1]["_id"])
        # Every record older than ``until`` was served: move up to it, so an idle user's token
        # stays within the retention period.
        return FeedPosition(until, "")

    # --- stats, export, account deletion ------------------------------------------------------

    async def stats(self, user_id: str, query: StatsQuery | None = None) -> Stats:
        """Counts of contacts, interactions and referrals, and the scorecard of a period."""
        now = self._clock.now()
        user = await self.user(user_id)
        scorecard = await self._scorecard(user, query or StatsQuery(), now)
        contacts = await self._contacts.find(
            {"user_id": user_id, "deleted": False}, {"tier": 1, "stage": 1, "due_at": 1}
        )
        items = await self._interactions.find(
            {"user_id": user_id}, {"kind": 1, "occurred_at": 1, "next_action": 1}
        )
        refs = await self._referrals.find(
            {"user_id": user_id}, {"direction": 1, "status": 1, "value": 1, "currency": 1}
        )
        won: dict[str, float] = {}
        for ref in refs:
            if ref["status"] == "won" and ref.get("currency"):
                won[ref["currency"]] = won.get(ref["currency"], 0.0) + float(ref.get("value") or 0)
        month_ago = now - timedelta(days=30)
        return Stats(
            contacts={
                "total": len(contacts),
                "by_tier": dict(Counter(c.get("tier") or "none" for c in contacts)),
                "by_stage": dict(Counter(c["stage"] for c in contacts)),
                "overdue": sum(1 for c in contacts if c["due_at"] <= now),
            },
            interactions={
                "total": len(items),
                "last_30_days": sum(1 for i in items if i["occurred_at"] >= month_ago),
                "by_kind": dict(Counter(i["kind"] for i in items)),
                "one_to_ones_without_next_action": sum(
                    1 for i in items if i["kind"] == "one_to_one" and i.get("next_action") is None
                ),
            },
            referrals={
                "given": sum(1 for r in refs if r["direction"] == "given"),
                "received": sum(1 for r in refs if r["direction"] == "received"),
                "by_status": dict(Counter(r["status"] for r in refs)),
                "won_value_by_currency": dict(won),
            },
            scorecard=scorecard,
        )

    async def _scorecard(self, user: Document, query: StatsQuery, now: datetime) -> Scorecard:
        span = scorecard_window(query, now, user.get("time_zone"))
        user_id = user["_id"]
        during = {"$gte": span.start, "$lt": span.end}
        items = await self._interactions.find(
            {"user_id": user_id, "occurred_at": during}, {"kind": 1, "contact_id": 1}
        )
        fields = {"direction": 1, "contact_id": 1, "value": 1, "currency": 1}
        created = await self._referrals.find({"user_id": user_id, "created_at": during}, fields)
        won = await self._referrals.find({"user_id": user_id, "status_times.won": during}, fields)
        ids = sorted({d["contact_id"] for d in (*items, *created, *won)})
        named = await self._contacts.find(
            {"user_id": user_id, "_id": {"$in": ids}}, {"name": 1, "deleted": 1}
        )
        return build_scorecard(span, items, created, won, {d["_id"]: d for d in named})

    async def export(self, user_id: str) -> Export:
        """Everything held about the user, including what reminders keeps."""
        user = await self.me(user_id)
        reminders: Any = None
        if self._reminders is not None:
            answer = await self._reminders.request("GET", f"/internal/v1/users/{user_id}/export")
            if answer.status == 200:
                reminders = answer.body
            elif answer.status != 404:
                raise UpstreamError("reminders could not export", upstream_status=answer.status)
        return Export(
            exported_at=self._clock.now(),
            user=user,
            contacts=[contact_out(d) for d in await self._contacts.all_of(user_id)],
            interactions=[interaction_out(d) for d in await self._interactions.all_of(user_id)],
            referrals=[referral_out(d) for d in await self._referrals.all_of(user_id)],
            stage_changes=[stage_change_out(d) for d in await self._stages.all_of(user_id)],
            reminders=reminders,
        )

    async def delete_account(
        self, user_id: str, delete_tokens: Callable[[str], Awaitable[None]]
    ) -> None:
        """Erase the user everywhere: reminders and notifier first, then this service's data.

        Each step is idempotent, so a failed deletion can simply be retried.
        """
        user = await self.user(user_id)
        # The notifier also deletes what it sent to the phone before the account existed.
        phone = {"phone": str(user["phone"])}
        for client, params in ((self._reminders, None), (self._notifier, phone)):
            if client is None:
                continue
            answer = await client.request("DELETE", f"/internal/v1/users/{user_id}", params=params)
            if answer.status not in (200, 202, 204, 404):
                raise UpstreamError(
                    "account deletion failed upstream", upstream_status=answer.status
                )
        await self._change("user", "delete", user_id, user_id)
        await self._interactions.delete_user(user_id)
        await self._referrals.delete_user(user_id)
        await self._stages.delete_user(user_id)
        await self._contacts.delete_user(user_id)
        await self._idempotency.delete_user(user_id)
        await delete_tokens(user_id)
        await self._users.delete(user_id)
        log.info("account deleted", extra={"user_id": user_id})


async def _contact_page(
    repo: Any,
    user_id: str,
    contact_id: str,
    field: str,
    direction: int,
    cursor: str | None,
    limit: int,
) -> tuple[list[Document], str | None]:
    """One keyset page of a contact's records in (``field``, ``_id``) order, and the next cursor."""
    query: Document = {"user_id": user_id, "contact_id": contact_id}
    if cursor:
        when, last_id = decode_cursor(cursor, (datetime, str), "cursor")
        query = {
            "user_id": user_id,
            "$and": [query, after_filter(field, direction, when, last_id)],
        }
    docs: list[Document] = await repo.find_page(
        query, [(field, direction), ("_id", direction)], limit + 1
    )
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    return docs, encode_cursor([docs[-1][field], docs[-1]["_id"]])
