"""HTTP handlers of the contacts service: parse the request, call the service, serialize."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from services.contacts.importing import parse_file, read_upload
from services.contacts.keys import AUTH_SERVICE, CONTACTS_SERVICE, IDEMPOTENCY
from services.contacts.models import (
    ByPhoneQuery,
    Candidates,
    ChangeQuery,
    ContactCreate,
    ContactPatch,
    ContactQuery,
    ImportQuery,
    InteractionCreate,
    InteractionPatch,
    InternalContactPage,
    InternalInteractionCreate,
    LogoutRequest,
    MatchQuery,
    MePatch,
    OtpStart,
    OtpVerify,
    PageQuery,
    ReferralCreate,
    ReferralPatch,
    ReferralQuery,
    RefreshRequest,
    StatsQuery,
    SyncQuery,
    UserPage,
)
from services.contacts.repository import idempotency_scope
from services.contacts.service import (
    ContactsService,
    contact_out,
    entity_etag,
    interaction_out,
    internal_contact_out,
    referral_out,
)
from services.contacts.settings import ContactsSettings
from shared.web.auth import public, require_user
from shared.web.etag import if_match_tags, make_etag, not_modified
from shared.web.idempotency import StoredResponse, idempotency_key
from shared.web.keys import SETTINGS
from shared.web.validation import parse_body, parse_obj, parse_query, read_json


def _json(
    model: BaseModel | Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    if isinstance(model, BaseModel):
        # One pass from the model to JSON bytes (a page of contacts is the hottest response).
        return web.Response(
            text=model.model_dump_json(),
            status=status,
            headers=headers,
            content_type="application/json",
        )
    return web.json_response(model, status=status, headers=headers)


def _conditional_get(
    request: web.Request, doc: dict[str, Any], out: Callable[[dict[str, Any]], BaseModel]
) -> web.Response:
    """One stored entity as JSON with its ETag, or a bare 304 when If-None-Match matches."""
    etag = entity_etag(doc)
    if not_modified(request, etag):
        return web.Response(status=304, headers={"ETag": etag})
    return _json(out(doc), headers={"ETag": etag})


def _svc(request: web.Request) -> ContactsService:
    return request.app[CONTACTS_SERVICE]


def _client_ip(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    assert isinstance(settings, ContactsSettings)
    if settings.trust_forwarded_for:
        # The right-most entry is the one our proxy appended; anything left of it was sent
        # by the client and could be forged to dodge the per-address limit.
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"


async def _idempotent(
    request: web.Request,
    scope: str,
    body: Any,
    produce: Callable[[], Awaitable[tuple[int, Any]]],
    location: str | None = None,
) -> web.Response:
    """Run a create once per Idempotency-Key; a repeat replays the first answer."""
    key = idempotency_key(request)
    if key is None:
        status, answer = await produce()
        stored = StoredResponse(status, answer)
    else:
        stored = await request.app[IDEMPOTENCY].run(
            scope=scope, key=key, body=body, produce=produce
        )
    headers: dict[str, str] = {}
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    if location and isinstance(stored.body, dict) and "id" in stored.body:
        headers["Location"] = f"{location}/{stored.body['id']}"
    return web.json_response(stored.body, status=stored.status, headers=headers)


def _path(request: web.Request, name: str) -> str:
    return request.match_info[name]


# --- auth -------------------------------------------------------------------------------------


@public
async def otp_start(request: web.Request) -> web.Response:
    """Send a sign-in code by SMS."""
    data = await parse_body(request, OtpStart)
    started = await request.app[AUTH_SERVICE].start(data.phone, _client_ip(request))
    return _json(started, 202)


@public
async def otp_verify(request: web.Request) -> web.Response:
    """Exchange the code for tokens."""
    data = await parse_body(request, OtpVerify)
    return _json(await request.app[AUTH_SERVICE].verify(data.challenge_id, data.code))


@public
async def refresh(request: web.Request) -> web.Response:
    """Rotate a refresh token."""
    data = await parse_body(request, RefreshRequest)
    return _json(await request.app[AUTH_SERVICE].refresh(data.refresh_token))


async def logout(request: web.Request) -> web.Response:
    """Revoke a session (or all of them)."""
    user_id = require_user(request)
    data = await parse_body(request, LogoutRequest)
    await request.app[AUTH_SERVICE].logout(user_id, data.refresh_token, data.all)
    return web.Response(status=204)


# --- me ---------------------------------------------------------------------------------------


async def get_me(request: web.Request) -> web.Response:
    """The signed-in user's profile."""
    return _json(await _svc(request).me(require_user(request)))


async def patch_me(request: web.Request) -> web.Response:
    """Change the profile."""
    user_id = require_user(request)
    data = await parse_body(request, MePatch)
    return _json(await _svc(request).update_me(user_id, data))


async def delete_me(request: web.Request) -> web.Response:
    """Delete the account and everything about it, in every service."""
    user_id = require_user(request)
    auth = request.app[AUTH_SERVICE]
    await _svc(request).delete_account(user_id, auth.delete_user_tokens)
    return web.Response(status=204)


async def export_me(request: web.Request) -> web.Response:
    """Everything held about the user."""
    return _json(await _svc(request).export(require_user(request)))


async def stats(request: web.Request) -> web.Response:
    """Relationship numbers, and the scorecard of a period (``from``/``to`` or ``period``)."""
    user_id = require_user(request)
    query = parse_query(request, StatsQuery)
    return _json(await _svc(request).stats(user_id, query))


# --- contacts ---------------------------------------------------------------------------------


def _contact_response(doc: dict[str, Any], status: int = 200) -> web.Response:
    return _json(contact_out(doc), status, {"ETag": entity_etag(doc)})


async def list_contacts(request: web.Request) -> web.Response:
    """A page of contacts."""
    user_id = require_user(request)
    query = parse_query(request, ContactQuery)
    return _json(await _svc(request).list_contacts(user_id, query))


async def create_contact(request: web.Request) -> web.Response:
    """Add a contact (Idempotency-Key honoured)."""
    user_id = require_user(request)
    body = await read_json(request)
    data = parse_obj(body, ContactCreate)
    svc = _svc(request)

    async def produce() -> tuple[int, Any]:
        doc = await svc.create_contact(user_id, data)
        return 201, contact_out(doc).model_dump(mode="json")

    response = await _idempotent(
        request, idempotency_scope("contact", user_id), body, produce, "/v1/contacts"
    )
    created = json.loads(response.body) if isinstance(response.body, bytes) else {}
    if response.status == 201 and "id" in created:
        # The version a create makes; a replay answers as the first time did.
        response.headers["ETag"] = make_etag(created["id"], 1)
    return response


async def import_contacts(request: web.Request) -> web.Response:
    """Import contacts from a vCard or CSV file; ``dry_run`` previews each row's outcome."""
    user_id = require_user(request)
    query = parse_query(request, ImportQuery)
    svc = _svc(request)
    upload = await read_upload(request, svc.settings.import_max_bytes)
    # Parsing thousands of cards takes a while: off the event loop.
    parsed = await asyncio.to_thread(parse_file, upload, svc.settings.import_max_rows)
    if query.dry_run:
        return _json(await svc.import_contacts(user_id, parsed, dry_run=True))

    async def produce() -> tuple[int, Any]:
        result = await svc.import_contacts(user_id, parsed, dry_run=False)
        return 200, result.model_dump(mode="json")

    # The same file again with the same key replays the report; another file is a 422.
    body = {"sha256": hashlib.sha256(upload.raw).hexdigest(), "format": parsed.format}
    return await _idempotent(request, idempotency_scope("import", user_id), body, produce)


async def get_contact(request: web.Request) -> web.Response:
    """One contact (with its ETag)."""
    doc = await _svc(request).contact(require_user(request), _path(request, "contact_id"))
    if not_modified(request, entity_etag(doc)):
        return web.Response(status=304, headers={"ETag": entity_etag(doc)})
    return _contact_response(doc)


async def patch_contact(request: web.Request) -> web.Response:
    """Change a contact (If-Match honoured)."""
    user_id = require_user(request)
    data = await parse_body(request, ContactPatch)
    doc = await _svc(request).update_contact(
        user_id, _path(request, "contact_id"), data, if_match_tags(request)
    )
    return _contact_response(doc)


async def delete_contact(request: web.Request) -> web.Response:
    """Soft-delete a contact (If-Match honoured)."""
    user_id = require_user(request)
    await _svc(request).delete_contact(
        user_id, _path(request, "contact_id"), if_match_tags(request)
    )
    return web.Response(status=204)


async def restore_contact(request: web.Request) -> web.Response:
    """Undo a contact's deletion."""
    doc = await _svc(request).restore_contact(require_user(request), _path(request, "contact_id"))
    return _contact_response(doc)


async def stage_history(request: web.Request) -> web.Response:
    """A contact's stage changes (know, like, trust, referral partner), oldest first."""
    user_id = require_user(request)
    query = parse_query(request, PageQuery)
    page = await _svc(request).stage_history(
        user_id, _path(request, "contact_id"), query.cursor, query.limit
    )
    return _json(page)


def _first_version(response: web.Response) -> web.Response:
    """Add the ETag a create makes (version 1) to a 201; a replay answers as the first did."""
    created = json.loads(response.body) if isinstance(response.body, bytes) else {}
    if response.status == 201 and isinstance(created, dict) and "id" in created:
        response.headers["ETag"] = make_etag(created["id"], 1)
    return response


# --- interactions -----------------------------------------------------------------------------


async def list_interactions(request: web.Request) -> web.Response:
    """A contact's history."""
    user_id = require_user(request)
    query = parse_query(request, PageQuery)
    page = await _svc(request).list_interactions(
        user_id, _path(request, "contact_id"), query.cursor, query.limit
    )
    return _json(page)


async def _log_interaction(
    request: web.Request,
    user_id: str,
    model: type[InteractionCreate],
    trusted_time: bool = False,
    location: str | None = None,
) -> web.Response:
    contact_id = _path(request, "contact_id")
    body = await read_json(request)
    data = parse_obj(body, model)
    svc = _svc(request)

    async def produce() -> tuple[int, Any]:
        item = await svc.log_interaction(user_id, contact_id, data, trusted_time=trusted_time)
        return 201, item.model_dump(mode="json")

    response = await _idempotent(
        request, idempotency_scope("interaction", user_id, contact_id), body, produce, location
    )
    return _first_version(response)


async def create_interaction(request: web.Request) -> web.Response:
    """Log an interaction (Idempotency-Key honoured)."""
    return await _log_interaction(
        request, require_user(request), InteractionCreate, location="/v1/interactions"
    )


async def get_interaction(request: web.Request) -> web.Response:
    """One interaction (with its ETag)."""
    doc = await _svc(request).interaction_doc(
        require_user(request), _path(request, "interaction_id")
    )
    return _conditional_get(request, doc, interaction_out)


async def patch_interaction(request: web.Request) -> web.Response:
    """Correct an interaction (If-Match honoured); the contact's counters follow."""
    user_id = require_user(request)
    data = await parse_body(request, InteractionPatch)
    doc = await _svc(request).update_interaction(
        user_id, _path(request, "interaction_id"), data, if_match_tags(request)
    )
    return _json(interaction_out(doc), headers={"ETag": entity_etag(doc)})


async def delete_interaction(request: web.Request) -> web.Response:
    """Remove an interaction, restoring the contact's counters (If-Match honoured)."""
    await _svc(request).delete_interaction(
        require_user(request), _path(request, "interaction_id"), if_match_tags(request)
    )
    return web.Response(status=204)


# --- referrals --------------------------------------------------------------------------------


async def list_referrals(request: web.Request) -> web.Response:
    """A page of referrals."""
    user_id = require_user(request)
    query = parse_query(request, ReferralQuery)
    return _json(await _svc(request).list_referrals(user_id, query))


async def _create_referral(
    request: web.Request, user_id: str, location: str | None = None
) -> web.Response:
    body = await read_json(request)
    data = parse_obj(body, ReferralCreate)
    svc = _svc(request)

    async def produce() -> tuple[int, Any]:
        item = await svc.create_referral(user_id, data)
        return 201, item.model_dump(mode="json")

    response = await _idempotent(
        request, idempotency_scope("referral", user_id), body, produce, location
    )
    return _first_version(response)


async def create_referral(request: web.Request) -> web.Response:
    """Record a referral (Idempotency-Key honoured)."""
    return await _create_referral(request, require_user(request), "/v1/referrals")


async def get_referral(request: web.Request) -> web.Response:
    """One referral (with its ETag)."""
    doc = await _svc(request).referral_doc(require_user(request), _path(request, "referral_id"))
    return _conditional_get(request, doc, referral_out)


async def patch_referral(request: web.Request) -> web.Response:
    """Move a referral along its pipeline (If-Match honoured)."""
    user_id = require_user(request)
    data = await parse_body(request, ReferralPatch)
    doc = await _svc(request).update_referral(
        user_id, _path(request, "referral_id"), data, if_match_tags(request)
    )
    return _json(referral_out(doc), headers={"ETag": entity_etag(doc)})


async def delete_referral(request: web.Request) -> web.Response:
    """Remove a referral, restoring the contact's counters."""
    await _svc(request).delete_referral(require_user(request), _path(request, "referral_id"))
    return web.Response(status=204)


async def sync(request: web.Request) -> web.Response:
    """A page of the delta sync: changed documents and tombstones since a token."""
    user_id = require_user(request)
    return _json(await _svc(request).sync(user_id, parse_query(request, SyncQuery)))


# --- internal ---------------------------------------------------------------------------------


async def internal_user_by_phone(request: web.Request) -> web.Response:
    """Resolve a phone number to a user."""
    query = parse_query(request, ByPhoneQuery)
    return _json(await _svc(request).user_by_phone(query.phone))


async def internal_user(request: web.Request) -> web.Response:
    """A user's profile."""
    return _json(await _svc(request).me(_path(request, "user_id")))


async def internal_users(request: web.Request) -> web.Response:
    """All users, paged."""
    query = parse_query(request, ChangeQuery)
    items, nxt = await _svc(request).users_page(query.after, min(query.limit, 500))
    return _json(UserPage(items=items, next=nxt))


async def internal_contact(request: web.Request) -> web.Response:
    """One contact, soft-deleted ones included."""
    doc = await _svc(request).contact(_path(request, "user_id"), _path(request, "contact_id"))
    return _json(internal_contact_out(doc))


async def internal_match(request: web.Request) -> web.Response:
    """Contacts whose names match."""
    query = parse_query(request, MatchQuery)
    items = await _svc(request).match_contacts(_path(request, "user_id"), query.name, query.limit)
    return _json(Candidates(candidates=items))


async def internal_contacts(request: web.Request) -> web.Response:
    """A user's live contacts, paged."""
    query = parse_query(request, ChangeQuery)
    items, nxt = await _svc(request).live_contacts_page(
        _path(request, "user_id"), query.after, min(query.limit, 500)
    )
    return _json(InternalContactPage(items=items, next=nxt))


async def internal_create_interaction(request: web.Request) -> web.Response:
    """Log an interaction on the user's behalf."""
    return await _log_interaction(
        request, _path(request, "user_id"), InternalInteractionCreate, trusted_time=True
    )


async def internal_delete_interaction(request: web.Request) -> web.Response:
    """UNDO an interaction."""
    await _svc(request).delete_interaction(
        _path(request, "user_id"), _path(request, "interaction_id")
    )
    return web.Response(status=204)


async def internal_create_referral(request: web.Request) -> web.Response:
    """Record a referral on the user's behalf."""
    return await _create_referral(request, _path(request, "user_id"))


async def internal_delete_referral(request: web.Request) -> web.Response:
    """UNDO a referral."""
    await _svc(request).delete_referral(_path(request, "user_id"), _path(request, "referral_id"))
    return web.Response(status=204)


async def internal_changes(request: web.Request) -> web.Response:
    """The change feed."""
    query = parse_query(request, ChangeQuery)
    return _json(await _svc(request).changes(query.after, query.limit))
