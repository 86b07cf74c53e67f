"""The route table of the contacts service: mounted on the app and described in /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from services.contacts import handlers as h
from services.contacts import models as m

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ID_PATTERN = "[0-9a-f]{32}"


@dataclass(frozen=True)
class Route:
    """One endpoint: where, what it takes, what it answers."""

    method: str
    path: str
    handler: Handler
    response: type[BaseModel] | None = None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    tag: str = "contacts"
    headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = field(default=())
    # Media types of a file taken as the raw body or the "file" part of a form (imports).
    uploads: tuple[str, ...] = ()

    @property
    def public(self) -> bool:
        """Whether the handler needs no credentials."""
        return bool(getattr(self.handler, "__public__", False))

    @property
    def internal(self) -> bool:
        """Whether this is a service-to-service endpoint."""
        return self.path.startswith("/internal/")


IDEM = ("Idempotency-Key",)
MATCH = ("If-Match",)

ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/auth/otp/start", h.otp_start, m.OtpStarted, 202, m.OtpStart, tag="auth",
          errors=(429, 502)),
    Route("POST", "/v1/auth/otp/verify", h.otp_verify, m.TokenPair, 200, m.OtpVerify, tag="auth",
          errors=(429,)),
    Route("POST", "/v1/auth/refresh", h.refresh, m.TokenPair, 200, m.RefreshRequest, tag="auth"),
    Route("POST", "/v1/auth/logout", h.logout, None, 204, m.LogoutRequest, tag="auth"),
    Route("GET", "/v1/me", h.get_me, m.User, tag="me"),
    Route("PATCH", "/v1/me", h.patch_me, m.User, 200, m.MePatch, tag="me"),
    Route("DELETE", "/v1/me", h.delete_me, None, 204, tag="me", errors=(502,)),
    Route("GET", "/v1/me/export", h.export_me, m.Export, tag="me", errors=(502,)),
    Route("GET", "/v1/stats", h.stats, m.Stats, query=m.StatsQuery, tag="me"),
    Route("GET", "/v1/contacts", h.list_contacts, m.ContactPage, query=m.ContactQuery),
    Route("POST", "/v1/contacts", h.create_contact, m.Contact, 201, m.ContactCreate,
          headers=IDEM, errors=(409,)),
    Route("POST", "/v1/contacts:import", h.import_contacts, m.ImportReport, 200,
          query=m.ImportQuery, headers=IDEM, errors=(409, 413, 415),
          uploads=("text/vcard", "text/csv")),
    Route("GET", "/v1/contacts/{contact_id}", h.get_contact, m.Contact),
    Route("PATCH", "/v1/contacts/{contact_id}", h.patch_contact, m.Contact, 200, m.ContactPatch,
          headers=MATCH, errors=(412,)),
    Route("DELETE", "/v1/contacts/{contact_id}", h.delete_contact, None, 204, headers=MATCH,
          errors=(412,)),
    Route("POST", "/v1/contacts/{contact_id}/restore", h.restore_contact, m.Contact),
    Route("GET", "/v1/contacts/{contact_id}/stages", h.stage_history, m.StageChangePage,
          query=m.PageQuery),
    Route("GET", "/v1/contacts/{contact_id}/interactions", h.list_interactions,
          m.InteractionPage, query=m.PageQuery, tag="interactions"),
    Route("POST", "/v1/contacts/{contact_id}/interactions", h.create_interaction, m.Interaction,
          201, m.InteractionCreate, tag="interactions", headers=IDEM, errors=(409,)),
    Route("GET", "/v1/interactions/{interaction_id}", h.get_interaction, m.Interaction,
          tag="interactions"),
    Route("PATCH", "/v1/interactions/{interaction_id}", h.patch_interaction, m.Interaction, 200,
          m.InteractionPatch, tag="interactions", headers=MATCH, errors=(412,)),
    Route("DELETE", "/v1/interactions/{interaction_id}", h.delete_interaction, None, 204,
          tag="interactions", headers=MATCH, errors=(412,)),
    Route("GET", "/v1/referrals", h.list_referrals, m.ReferralPage, query=m.ReferralQuery,
          tag="referrals"),
    Route("POST", "/v1/referrals", h.create_referral, m.Referral, 201, m.ReferralCreate,
          tag="referrals", headers=IDEM, errors=(409,)),
    Route("GET", "/v1/referrals/{referral_id}", h.get_referral, m.Referral, tag="referrals"),
    Route("PATCH", "/v1/referrals/{referral_id}", h.patch_referral, m.Referral, 200,
          m.ReferralPatch, tag="referrals", headers=MATCH, errors=(409, 412)),
    Route("DELETE", "/v1/referrals/{referral_id}", h.delete_referral, None, 204,
          tag="referrals"),
    Route("GET", "/v1/sync", h.sync, m.SyncPage, query=m.SyncQuery, tag="sync",
          errors=(410,)),
    # Service-to-service API (docs/internal-api.md).
    Route("GET", "/internal/v1/users/by-phone", h.internal_user_by_phone, m.User,
          query=m.ByPhoneQuery, tag="internal"),
    Route("GET", "/internal/v1/users", h.internal_users, m.UserPage, query=m.ChangeQuery,
          tag="internal"),
    Route("GET", "/internal/v1/users/{user_id}", h.internal_user, m.User, tag="internal"),
    Route("GET", "/internal/v1/users/{user_id}/contacts/match", h.internal_match,
          m.Candidates, query=m.MatchQuery, tag="internal"),
    Route("GET", "/internal/v1/users/{user_id}/contacts", h.internal_contacts,
          m.InternalContactPage, query=m.ChangeQuery, tag="internal"),
    Route("GET", "/internal/v1/users/{user_id}/contacts/{contact_id}", h.internal_contact,
          m.InternalContact, tag="internal"),
    Route("POST", "/internal/v1/users/{user_id}/contacts/{contact_id}/interactions",
          h.internal_create_interaction, m.Interaction, 201, m.InternalInteractionCreate,
          tag="internal", headers=IDEM, errors=(409,)),
    Route("DELETE", "/internal/v1/users/{user_id}/interactions/{interaction_id}",
          h.internal_delete_interaction, None, 204, tag="internal"),
    Route("POST", "/internal/v1/users/{user_id}/referrals", h.internal_create_referral,
          m.Referral, 201, m.ReferralCreate, tag="internal", headers=IDEM, errors=(409,)),
    Route("DELETE", "/internal/v1/users/{user_id}/referrals/{referral_id}",
          h.internal_delete_referral, None, 204, tag="internal"),
    Route("GET", "/internal/v1/changes", h.internal_changes, m.ChangePage, query=m.ChangeQuery,
          tag="internal"),
)  # fmt: skip


def router_path(path: str) -> str:
    """The aiohttp form of ``path``: every ``{x_id}`` only matches a 32-hex-digit id."""
    return re.sub(r"\{(\w+_id)\}", lambda mt: "{" + mt.group(1) + ":" + ID_PATTERN + "}", path)


def setup_routes(app: web.Application) -> None:
    """Mount every route of the table."""
    for route in ROUTES:
        app.router.add_route(route.method, router_path(route.path), route.handler)
