"""Request ids: accepted from ``X-Request-ID`` when well-formed, else generated; echoed back."""

from __future__ import annotations

import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from shared.logs import request_id_var

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id to the logging context and the response."""
    incoming = request.headers.get(HEADER, "")
    rid = incoming if _VALID.match(incoming) else uuid.uuid4().hex
    token = request_id_var.set(rid)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[HEADER] = rid
            raise
        response.headers[HEADER] = rid
        return response
    finally:
        request_id_var.reset(token)
