"""A STUB of Twilio's Messages endpoint, only for the error paths Prism cannot produce.

Prism answers with the spec's examples, so it can check our requests but cannot produce a 429,
an opted-out recipient (21610), an invalid number (21211), a 5xx or a hang. This small aiohttp
app answers ``POST /2010-04-01/Accounts/{sid}/Messages.json`` from a script of canned answers,
in Twilio's error format, and records every request it got.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"


@dataclass
class Answer:
    """One canned answer: an HTTP status with a Twilio error code, or a delay (hang)."""

    status: int = 201
    code: int | None = None
    delay_s: float = 0.0


@dataclass
class TwilioStub:
    """The stub's script and what it received."""

    script: list[Answer] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        """The stub as an aiohttp app."""
        app = web.Application()
        app.router.add_post(MESSAGES_PATH, self._create)
        return app

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({k: str(v) for k, v in form.items()})
        answer = self.script.pop(0) if self.script else Answer()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.status >= 400:
            body: dict[str, Any] = {
                "code": answer.code,
                "message": f"stubbed error {answer.code}",
                "more_info": f"https://www.twilio.com/docs/errors/{answer.code}",
                "status": answer.status,
            }
            return web.json_response(body, status=answer.status)
        sid = "SM" + uuid.uuid4().hex
        return web.json_response(
            {
                "sid": sid,
                "status": "queued",
                "to": str(form.get("To")),
                "body": str(form.get("Body")),
                "account_sid": request.match_info["account_sid"],
            },
            status=201,
        )
