"""Sign-in by phone: one-time codes by SMS, access tokens, rotating refresh tokens."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import timezone as phone_timezone
from prometheus_client import CollectorRegistry, Counter

from services.contacts.models import OtpStarted, TokenPair, normalize_phone
from services.contacts.repository import AuthRepository, ChangeRepository, UserRepository
from services.contacts.service import role_for, user_out
from services.contacts.settings import ContactsSettings
from shared.auth import issue_access_token
from shared.clock import Clock
from shared.errors import TooManyRequests, Unauthorized, UpstreamError, ValidationFailed
from shared.http import ServiceClient
from shared.mongo import Document

log = logging.getLogger(__name__)

BAD_CODE = "the code is invalid or has expired"
BAD_REFRESH = "the refresh token is invalid, expired or revoked"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AuthMetrics:
    """Sign-in counters operators alert on (SMS pumping, stolen refresh tokens)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.otp_requests = Counter(
            "touchbase_contacts_otp_requests_total",
            "Sign-in code requests, by outcome (sent, rate_limited, upstream_error).",
            ["outcome"],
            registry=registry,
        )
        self.otp_verifications = Counter(
            "touchbase_contacts_otp_verifications_total",
            "Sign-in code checks, by outcome (ok, wrong, locked).",
            ["outcome"],
            registry=registry,
        )
        self.refresh_reuse = Counter(
            "touchbase_contacts_refresh_reuse_total",
            "Used refresh tokens presented again (the session was revoked).",
            registry=registry,
        )


class AuthService:
    """OTP challenges, users' first sign-in, and the token lifecycle."""

    def __init__(
        self,
        *,
        settings: ContactsSettings,
        clock: Clock,
        users: UserRepository,
        auth: AuthRepository,
        changes: ChangeRepository,
        notifier: ServiceClient,
        metrics: AuthMetrics | None = None,
    ) -> None:
        self._metrics = metrics or AuthMetrics(CollectorRegistry())
        self._settings = settings
        self._clock = clock
        self._users = users
        self._auth = auth
        self._changes = changes
        self._notifier = notifier
        self._secret = settings.auth_jwt_secret.get_secret_value()

    def _code_hash(self, challenge_id: str, code: str) -> str:
        # Keyed so that a database dump does not let anyone brute-force the 10^6 codes offline.
        message = f"{challenge_id}:{code}".encode()
        return hmac.new(self._secret.encode(), message, hashlib.sha256).hexdigest()

    async def _rate_check(self, limits: list[tuple[str, int]], now: datetime) -> None:
        """Count this request under each key, then refuse if any key is over its limit.

        Counting first and reading after makes the limit hold under concurrency (inserts are
        atomic everywhere; a read-then-insert would let a burst through): each request sees at
        least as many events as came before it, so at most ``limit`` of them pass.
        """
        window = timedelta(seconds=self._settings.otp_rate_window_s)
        events_ids = {key: uuid.uuid4().hex for key, _ in limits}
        for key, _ in limits:
            await self._auth.add_rate_event(key, events_ids[key], now)
        for key, limit in limits:
            events = await self._auth.rate_events(key, now - window)
            if len(events) > limit:
                for event_id in events_ids.values():
                    await self._auth.drop_rate_event(event_id)
                self._metrics.otp_requests.labels("rate_limited").inc()
                retry = (events[len(events) - limit - 1] + window - now).total_seconds()
                raise TooManyRequests("too many sign-in codes requested; try later", int(retry) + 1)

    async def start(self, raw_phone: str, client_ip: str) -> OtpStarted:
        """Send a sign-in code to ``raw_phone`` (rate-limited per phone and per client address)."""
        try:
            phone = normalize_phone(raw_phone, self._settings.default_region)
        except ValueError as exc:
            raise ValidationFailed(errors=[{"field": "phone", "message": str(exc)}]) from None
        now = self._clock.now()
        await self._rate_check(
            [
                (f"otp:phone:{_sha256(phone)[:32]}", self._settings.otp_max_per_phone),
                (f"otp:ip:{client_ip}", self._settings.otp_max_per_ip),
            ],
            now,
        )
        challenge_id = uuid.uuid4().hex
        code = f"{secrets.randbelow(10**6):06d}"
        expires_at = now + timedelta(seconds=self._settings.otp_ttl_s)
        await self._auth.add_challenge(
            {
                "_id": challenge_id,
                "phone": phone,
                "code_hash": self._code_hash(challenge_id, code),
                "created_at": now,
                "expires_at": expires_at,
            }
        )
        user = await self._users.by_phone(phone)
        message: dict[str, Any] = {
            "to": phone,
            "body": f"Your touchbase code is {code}. It expires in "
            f"{max(self._settings.otp_ttl_s // 60, 1)} min. Never share it.",
            "purpose": "otp",
            "expires_at": expires_at.isoformat(),
        }
        if user is not None:
            message["user_id"] = user["_id"]
        try:
            answer = await self._notifier.request(
                "POST",
                "/internal/v1/messages",
                json_body=message,
                idempotency_key=f"otp:{challenge_id}",
            )
        except UpstreamError:
            self._metrics.otp_requests.labels("upstream_error").inc()
            await self._auth.drop_challenge(challenge_id)
            raise
        if answer.status not in (200, 201):
            await self._auth.drop_challenge(challenge_id)
            self._metrics.otp_requests.labels("upstream_error").inc()
            log.warning("notifier refused the sign-in SMS with status %d", answer.status)
            raise UpstreamError("the sign-in code could not be sent", upstream_status=answer.status)
        self._metrics.otp_requests.labels("sent").inc()
        log.info("sign-in code sent", extra={"challenge_id": challenge_id})
        return OtpStarted(challenge_id=challenge_id, expires_at=expires_at)

    async def verify(self, challenge_id: str, code: str) -> TokenPair:
        """Check the code; on success sign the user in (creating them on first sign-in)."""
        now = self._clock.now()
        challenge = await self._auth.challenge(challenge_id)
        if challenge is None:
            raise Unauthorized(BAD_CODE)
        if challenge["expires_at"] <= now:
            await self._auth.drop_challenge(challenge_id)
            raise Unauthorized(BAD_CODE)
        # Each guess is recorded (an atomic insert) before the guesses are counted, and only a
        # guess that finds itself within the limit is compared: a burst of parallel guesses
        # gets at most OTP_MAX_ATTEMPTS comparisons (an $inc after a read would not ensure it).
        attempt_key = f"otp:attempt:{challenge_id}"
        await self._auth.add_rate_event(attempt_key, uuid.uuid4().hex, now)
        attempts = len(await self._auth.rate_events(attempt_key, challenge["created_at"]))
        if attempts > self._settings.otp_max_attempts:
            await self._auth.drop_challenge(challenge_id)
            self._metrics.otp_verifications.labels("locked").inc()
            raise TooManyRequests("too many wrong codes; ask for a new one", 1)
        expected = challenge["code_hash"]
        if not hmac.compare_digest(expected, self._code_hash(challenge_id, code)):
            left = self._settings.otp_max_attempts - attempts
            if left <= 0:
                await self._auth.drop_challenge(challenge_id)
            self._metrics.otp_verifications.labels("wrong").inc()
            raise Unauthorized(BAD_CODE, attempts_left=max(left, 0))
        # A unique insert makes the code single-use even under concurrent verifications.
        if not await self._auth.claim(f"otp:{challenge_id}", now):
            raise Unauthorized(BAD_CODE)
        await self._auth.drop_challenge(challenge_id)
        self._metrics.otp_verifications.labels("ok").inc()
        user = await self._user_for(challenge["phone"], now)
        return await self._issue(user, uuid.uuid4().hex, now)

    async def _user_for(self, phone: str, now: datetime) -> Document:
        existing = await self._users.by_phone(phone)
        if existing is not None:
            return existing
        number = phonenumbers.parse(phone, None)
        region = phonenumbers.region_code_for_number(number) or self._settings.default_region
        zones = [z for z in phone_timezone.time_zones_for_number(number) if "/" in z]
        user_id = uuid.uuid4().hex
        doc: Document = {
            "_id": user_id,
            "phone": phone,
            "name": None,
            "time_zone": zones[0] if len(zones) == 1 else "UTC",
            "region": region,
            "locale": "en",
            "created_at": now,
            "updated_at": now,
        }
        await self._changes.record(uuid.uuid4().hex, "user", "upsert", user_id, user_id)
        if await self._users.insert(doc):
            log.info("new user signed up", extra={"user_id": user_id})
            return doc
        # Two first sign-ins raced; the unique phone index kept one.
        existing = await self._users.by_phone(phone)
        assert existing is not None
        return existing

    async def _issue(self, user: Document, family_id: str, now: datetime) -> TokenPair:
        role = role_for(user, self._settings)
        access_ttl = timedelta(seconds=self._settings.access_token_ttl_s)
        # Access tokens follow the wall clock (see shared.auth); refresh tokens never leave this
        # service, so their expiry follows the service clock like the rest of its domain time.
        access = issue_access_token(self._secret, user["_id"], role, ttl=access_ttl)
        refresh = secrets.token_urlsafe(32)
        expires_at = now + timedelta(seconds=self._settings.refresh_token_ttl_s)
        await self._auth.add_refresh(
            {
                "_id": _sha256(refresh),
                "family_id": family_id,
                "user_id": user["_id"],
                "created_at": now,
                "expires_at": expires_at,
                "revoked_at": None,
            }
        )
        return TokenPair(
            access_token=access,
            expires_in=self._settings.access_token_ttl_s,
            refresh_token=refresh,
            refresh_expires_at=expires_at,
            user=user_out(user, self._settings),
        )

    async def refresh(self, token: str) -> TokenPair:
        """Rotate: the presented token is used up; presenting it again revokes its family."""
        now = self._clock.now()
        token_hash = _sha256(token)
        doc = await self._auth.refresh(token_hash)
        if doc is None or doc.get("revoked_at") is not None or doc["expires_at"] <= now:
            raise Unauthorized(BAD_REFRESH)
        if not await self._auth.claim(f"refresh:{token_hash}", now):
            # A used token came back: it was stolen or replayed. End the whole sign-in.
            await self._auth.revoke_family(doc["family_id"], doc["user_id"], now)
            self._metrics.refresh_reuse.inc()
            log.warning(
                "refresh token reuse detected; session revoked", extra={"user_id": doc["user_id"]}
            )
            raise Unauthorized(BAD_REFRESH)
        # Checked after the claim: a family revoked by a racing request (its reuse detection
        # or a sign-out) refuses every later use of its tokens, including one issued by a
        # refresh that won the race but stored its new token after the revocation.
        if await self._auth.family_revoked(doc["family_id"]):
            raise Unauthorized(BAD_REFRESH)
        user = await self._users.get(doc["user_id"])
        if user is None:
            raise Unauthorized(BAD_REFRESH)
        return await self._issue(user, doc["family_id"], now)

    async def logout(self, user_id: str, token: str | None, everywhere: bool) -> None:
        """Revoke the session of ``token``, or every session of the user."""
        now = self._clock.now()
        if everywhere:
            await self._auth.revoke_user(user_id, now)
            return
        if token is None:
            raise ValidationFailed(
                errors=[{"field": "refresh_token", "message": "required unless all is true"}]
            )
        doc = await self._auth.refresh(_sha256(token))
        if doc is not None and doc["user_id"] == user_id:
            await self._auth.revoke_family(doc["family_id"], user_id, now)

    async def delete_user_tokens(self, user_id: str) -> None:
        """Forget every refresh token of a deleted account."""
        await self._auth.delete_user(user_id)

    async def purge(self) -> int:
        """Delete expired challenges and tokens and old rate-limit events."""
        window = timedelta(seconds=self._settings.otp_rate_window_s)
        return await self._auth.purge(self._clock.now(), window)
