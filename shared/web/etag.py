"""Entity tags: a strong ETag per version, If-Match checks (412) and If-None-Match (304)."""

from __future__ import annotations

from aiohttp import web

from shared.errors import PreconditionFailed, PreconditionRequired


def make_etag(entity_id: str, version: int) -> str:
    """The strong ETag of one version of one entity."""
    return f'"{entity_id}-{version}"'


def _tags(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def check_if_match(request: web.Request, current: str, *, required: bool = False) -> None:
    """Refuse the write with 412 when the client's If-Match names another version.

    With ``required`` a missing header is refused with 428. ``*`` matches any version.
    Weak tags never match (RFC 9110 uses the strong comparison for If-Match).
    """
    header = request.headers.get("If-Match")
    if header is None:
        if required:
            raise PreconditionRequired("this write needs an If-Match header with the ETag")
        return
    tags = _tags(header)
    if "*" in tags or current in tags:
        return
    raise PreconditionFailed("the resource has changed since it was read; fetch it again")


def if_match_tags(request: web.Request) -> frozenset[str] | None:
    """The strong tags of If-Match, or None when any version will do (absent or ``*``).

    For services that compare inside their own read-modify-write; weak tags never match.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = _tags(header)
    if "*" in tags:
        return None
    return frozenset(tag for tag in tags if not tag.startswith("W/"))


def not_modified(request: web.Request, current: str) -> bool:
    """Whether If-None-Match names the current version (answer 304 then)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = [tag.removeprefix("W/") for tag in _tags(header)]
    return "*" in tags or current in tags


def with_etag(response: web.StreamResponse, etag: str) -> web.StreamResponse:
    """Attach the ETag header to a response."""
    response.headers["ETag"] = etag
    return response
