"""One way to read request input: JSON and form bodies and query strings, as pydantic models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_DEPTH = 8


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Flatten pydantic errors into ``[{field, message}]`` for a 422 problem."""
    out = []
    for item in exc.errors(include_url=False, include_input=False):
        message = str(item["msg"])
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        out.append({"field": _field(tuple(item["loc"])), "message": message})
    return out


def check_keys(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse operator-like keys (``$x``, ``a.b``) and excessive nesting anywhere in a body."""
    if depth > MAX_DEPTH:
        raise ValidationFailed(
            "the body is nested too deeply", [{"field": path or "(body)", "message": "too deep"}]
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            key = str(key)
            where = f"{path}.{key}" if path else key
            if key.startswith("$") or "." in key or "\x00" in key:
                raise ValidationFailed(
                    "field names may not start with '$' or contain '.'",
                    [{"field": where, "message": "forbidden field name"}],
                )
            check_keys(item, where, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_keys(item, f"{path}.{index}" if path else str(index), depth + 1)


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, or PayloadTooLarge once it passes ``max_bytes`` (whatever the headers say)."""
    # ``read(n)`` answers with what has arrived so far: gather chunks up to one byte past the limit.
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        raise PayloadTooLarge(f"the body must be at most {max_bytes} bytes")
    return b"".join(chunks)


async def read_json(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """Read a JSON body with size, media type, UTF-8 and nesting checks.

    ``max_bytes`` raises the limit for the few endpoints that take batches.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the body must be at most {max_bytes} bytes")
    if request.content_type != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    raw = await _read_limited(request, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    check_keys(data)
    return data


async def read_form(request: web.Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, str]:
    """Read an ``application/x-www-form-urlencoded`` UTF-8 body into a dict, strictly.

    Errors are 413 (too large), 415 (another media type or charset: multipart included, which a
    sender that signs its parameters, like Twilio, never posts) and 400 (bytes or percent-escapes
    that are not UTF-8). A repeated key keeps its last value. Nothing else is checked: the
    caller validates the fields, after checking a signature over them if there is one.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the body must be at most {max_bytes} bytes")
    if request.content_type != FORM_CONTENT_TYPE:
        raise UnsupportedMediaType(f"the body must be {FORM_CONTENT_TYPE}")
    charset = (request.charset or "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType("the form must be encoded in UTF-8")
    raw = await _read_limited(request, max_bytes)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8") from None
    except ValueError:
        raise BadRequest("the form cannot be parsed") from None
    return dict(pairs)


async def parse_body(
    request: web.Request, model: type[ModelT], *, max_bytes: int = MAX_BODY_BYTES
) -> ModelT:
    """Parse and validate the JSON body as ``model``; errors become 400/413/415/422 problems."""
    data = await read_json(request, max_bytes)
    return parse_obj(data, model)


def parse_obj(data: Any, model: type[ModelT]) -> ModelT:
    """Validate already-decoded data as ``model`` (422 listing each field on failure)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(errors=validation_errors(exc)) from None


def parse_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """Validate the query string as ``model``; repeated keys become lists."""
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    check_keys(data)
    return parse_obj(data, model)
