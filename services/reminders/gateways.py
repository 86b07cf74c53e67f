"""Typed calls to the contacts and notifier internal APIs (see docs/internal-api.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from shared.errors import NotFound, UpstreamError, ValidationFailed
from shared.http import ServiceClient

Json = dict[str, Any]


def _q(value: str) -> str:
    return quote(value, safe="")


class ContactsGateway:
    """What reminders asks of the contacts service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Json | None:
        resp = await self.client.request("GET", path, params=params)
        if resp.status == 404:
            return None
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise UpstreamError(f"contacts answered {resp.status} to GET {path.split('?')[0]}")
        return resp.body

    async def changes(self, after: str | None, limit: int) -> Json:
        """One page of the change feed."""
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        page = await self._get("/internal/v1/changes", params)
        if page is None:
            raise UpstreamError("contacts has no change feed")
        return page

    async def user(self, user_id: str) -> Json | None:
        """A user's profile, or None."""
        return await self._get(f"/internal/v1/users/{_q(user_id)}")

    async def contact(self, user_id: str, contact_id: str) -> Json | None:
        """One contact (also soft-deleted ones), or None."""
        return await self._get(f"/internal/v1/users/{_q(user_id)}/contacts/{_q(contact_id)}")

    async def match(self, user_id: str, name: str) -> list[Json]:
        """Contacts whose name matches ``name`` (case/accent-insensitive, word prefixes).

        A name contacts refuses to look up (400/422: no letter or digit, too long) matches no
        contact: that is an answer for the user ("I couldn't find ..."), not an outage.
        """
        path = f"/internal/v1/users/{_q(user_id)}/contacts/match"
        resp = await self.client.request("GET", path, params={"name": name})
        if resp.status in (400, 404, 422):
            return []
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise UpstreamError(f"contacts answered {resp.status} to GET {path}")
        candidates = resp.body.get("candidates", [])
        return [c for c in candidates if isinstance(c, dict) and not c.get("deleted")]

    async def users_page(self, after: str | None, limit: int = 200) -> Json:
        """One page of all users."""
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        return await self._get("/internal/v1/users", params) or {"items": [], "next": None}

    async def contacts_page(self, user_id: str, after: str | None, limit: int = 200) -> Json:
        """One page of a user's live contacts."""
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        path = f"/internal/v1/users/{_q(user_id)}/contacts"
        return await self._get(path, params) or {"items": [], "next": None}

    async def _post(self, path: str, body: Json, key: str) -> Json:
        resp = await self.client.request("POST", path, json_body=body, idempotency_key=key)
        if resp.status == 404:
            raise NotFound("contact not found")
        if resp.status == 422:
            raise ValidationFailed("contacts refused the entry")
        if resp.status not in (200, 201) or not isinstance(resp.body, dict):
            raise UpstreamError(f"contacts answered {resp.status}")
        return resp.body

    async def log_interaction(self, user_id: str, contact_id: str, body: Json, key: str) -> Json:
        """Log an interaction on the user's behalf."""
        path = f"/internal/v1/users/{_q(user_id)}/contacts/{_q(contact_id)}/interactions"
        return await self._post(path, body, key)

    async def add_referral(self, user_id: str, body: Json, key: str) -> Json:
        """Record a referral given or received."""
        return await self._post(f"/internal/v1/users/{_q(user_id)}/referrals", body, key)

    async def _delete(self, path: str) -> None:
        resp = await self.client.request("DELETE", path)
        if resp.status not in (204, 200, 404):
            raise UpstreamError(f"contacts answered {resp.status} to a delete")

    async def delete_interaction(self, user_id: str, interaction_id: str) -> None:
        """Revert a logged interaction (404 counts as already reverted)."""
        await self._delete(f"/internal/v1/users/{_q(user_id)}/interactions/{_q(interaction_id)}")

    async def delete_referral(self, user_id: str, referral_id: str) -> None:
        """Revert a recorded referral."""
        await self._delete(f"/internal/v1/users/{_q(user_id)}/referrals/{_q(referral_id)}")


class PermanentDispatchError(Exception):
    """The notifier refused the message for good (4xx other than 429)."""


class NotifierGateway:
    """What reminders asks of the notifier service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def send(self, body: Json, key: str) -> Json:
        """Queue an SMS; a repeat with the same key returns the stored message, never a second."""
        resp = await self.client.request(
            "POST", "/internal/v1/messages", json_body=body, idempotency_key=key
        )
        if resp.status in (200, 201) and isinstance(resp.body, dict):
            return resp.body
        if 400 <= resp.status < 500:
            raise PermanentDispatchError(f"notifier refused the message ({resp.status})")
        raise UpstreamError(f"notifier answered {resp.status}")

    async def send_many(
        self, items: Sequence[tuple[Json, str]]
    ) -> list[Json | PermanentDispatchError]:
        """Queue many SMS ``(body, idempotency key)`` in one call; one answer per item, in order.

        Each answer is the stored message or the refusal of that item. The call is safe to
        repeat (every item carries its key), so the client retries it like any idempotent
        write; when the notifier stays away, :class:`UpstreamError` is raised for the batch. A
        notifier without the batch endpoint (404/405, a rolling upgrade), or one that refuses
        the batch as a whole (a 4xx such as one malformed item), gets the items one by one, so
        a bad item never holds back the others.
        """
        if not items:
            return []
        payload = {"items": [{**body, "idempotency_key": key} for body, key in items]}
        resp = await self.client.request(
            "POST", "/internal/v1/messages:batch", json_body=payload, retry=True
        )
        if resp.status == 200 and isinstance(resp.body, dict):
            results = resp.body.get("items")
            if isinstance(results, list) and len(results) == len(items):
                return [_batch_answer(result) for result in results]
            raise UpstreamError("notifier answered a batch with the wrong number of items")
        if 400 <= resp.status < 500:
            return [await self._send_or_refusal(body, key) for body, key in items]
        raise UpstreamError(f"notifier answered {resp.status} to a batch")

    async def _send_or_refusal(self, body: Json, key: str) -> Json | PermanentDispatchError:
        try:
            return await self.send(body, key)
        except PermanentDispatchError as exc:
            return exc

    async def message(self, message_id: str) -> Json | None:
        """A message's delivery state."""
        resp = await self.client.request("GET", f"/internal/v1/messages/{_q(message_id)}")
        if resp.status == 404:
            return None
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise UpstreamError(f"notifier answered {resp.status}")
        return resp.body


def _batch_answer(result: Any) -> Json | PermanentDispatchError:
    """One item of the notifier's batch answer: the stored message, or why it was refused."""
    if isinstance(result, dict):
        status = result.get("status")
        message = result.get("message")
        if status in (200, 201) and isinstance(message, dict):
            return message
        return PermanentDispatchError(f"notifier refused the message ({status})")
    return PermanentDispatchError("notifier answered a batch item it could not describe")
