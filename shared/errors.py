"""Domain exceptions shared by every service; one middleware maps them to problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: an error with an HTTP status and a stable problem type."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(DomainError):
    """The request is malformed (unparseable body, wrong content type)."""


class Unauthorized(DomainError):
    """No valid credentials were presented."""

    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Bearer realm="touchbase"'


class Forbidden(DomainError):
    """Credentials are valid but do not allow this action."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    """The resource does not exist, or is not the caller's to see."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    """The request conflicts with the current state (duplicate, wrong state transition)."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Gone(DomainError):
    """The resource existed but has expired or been used up."""

    status = 410
    slug = "gone"
    title = "Gone"


class PreconditionFailed(DomainError):
    """An If-Match precondition did not hold: the client's copy is stale."""

    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class PreconditionRequired(DomainError):
    """The write needs an If-Match header."""

    status = 428
    slug = "precondition-required"
    title = "Precondition required"


class PayloadTooLarge(DomainError):
    """The body exceeds the size limit."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    """The body is not JSON (or form data where a webhook expects it)."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(DomainError):
    """The body or query parsed but broke the rules; ``errors`` names each field."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"

    def __init__(
        self, detail: str | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail or "the request has invalid fields", errors=errors or [])


class TooManyRequests(DomainError):
    """A rate limit was hit; ``Retry-After`` says when to come back."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after: int = 60) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers["Retry-After"] = str(max(int(retry_after), 1))


class UpstreamError(DomainError):
    """Another service failed or could not be reached."""

    status = 502
    slug = "upstream-error"
    title = "Upstream service error"

    def __init__(
        self, detail: str | None = None, *, upstream_status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.upstream_status = upstream_status


class ServiceUnavailable(DomainError):
    """A dependency (usually the database) is unavailable right now."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"
