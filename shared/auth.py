"""Tokens: short-lived user access tokens and service-to-service tokens, both signed JWTs.

Token lifetimes follow the wall clock, never a service's controllable test clock: tokens travel
between processes whose test clocks may differ, and expiry is a security property, not domain time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from shared.errors import Unauthorized

ALGORITHM = "HS256"
USER_AUDIENCE = "touchbase-api"
USER_ISSUER = "touchbase-contacts"
SERVICE_ISSUER_PREFIX = "touchbase-service:"
KNOWN_SERVICES = frozenset({"contacts", "reminders", "notifier", "cli"})

Role = Literal["networker", "operator"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a signed-in user or another service."""

    kind: Literal["user", "service"]
    subject: str
    role: Role | None = None

    @property
    def is_operator(self) -> bool:
        """Whether this is a user holding the operator role."""
        return self.kind == "user" and self.role == "operator"


def _wall(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def issue_access_token(
    secret: str,
    user_id: str,
    role: Role,
    now: datetime | None = None,
    ttl: timedelta = timedelta(minutes=15),
) -> str:
    """Sign a user access token (``now`` defaults to the wall clock)."""
    now = _wall(now)
    claims = {
        "iss": USER_ISSUER,
        "aud": USER_AUDIENCE,
        "sub": user_id,
        "role": role,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str, now: datetime | None = None) -> Principal:
    """Check a user access token's signature, audience, issuer, type and expiry."""
    now = _wall(now)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=USER_AUDIENCE,
            issuer=USER_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    if claims.get("typ") != "access" or int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthorized("access token expired or of the wrong type")
    role = claims.get("role")
    if role not in ("networker", "operator"):
        raise Unauthorized("invalid access token")
    return Principal(kind="user", subject=str(claims["sub"]), role=role)


def issue_service_token(
    secret: str,
    caller: str,
    audience: str,
    now: datetime | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> str:
    """Sign a token that lets service ``caller`` call service ``audience``."""
    now = _wall(now)
    claims = {
        "iss": SERVICE_ISSUER_PREFIX + caller,
        "aud": SERVICE_ISSUER_PREFIX + audience,
        "sub": caller,
        "typ": "service",
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_service_token(
    secret: str, token: str, audience: str, now: datetime | None = None
) -> Principal:
    """Check a service token addressed to ``audience`` from a known service."""
    now = _wall(now)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=SERVICE_ISSUER_PREFIX + audience,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise Unauthorized("invalid service token") from None
    caller = str(claims["sub"])
    if (
        claims.get("typ") != "service"
        or caller not in KNOWN_SERVICES
        or claims.get("iss") != SERVICE_ISSUER_PREFIX + caller
    ):
        raise Unauthorized("invalid service token")
    # Service tokens are minted per call, so the tolerance for clock skew between hosts is what
    # matters; a minute either side of the issuing time is accepted.
    if int(claims["exp"]) + 60 <= int(now.timestamp()):
        raise Unauthorized("service token expired")
    return Principal(kind="service", subject=caller)
