"""Keeping up with contacts: the change-feed consumer and the periodic reconciliation."""

from __future__ import annotations

import logging
from datetime import timedelta

from services.reminders.service import RemindersService

log = logging.getLogger(__name__)


class ChangeFeedConsumer:
    """Pulls ``GET /internal/v1/changes`` from the stored cursor and applies each change.

    At-least-once: the cursor moves only after a page is applied, and applying is idempotent, so
    a crash mid-page replays it harmlessly. Every replica may run it; a best-effort lease keeps
    them from doing the same pages twice, but correctness never depends on it.
    """

    def __init__(self, service: RemindersService, page_size: int) -> None:
        self.svc = service
        self.page_size = page_size

    async def run_once(self, max_pages: int = 50) -> int:
        """Apply pages until the feed is drained (or ``max_pages``); returns changes applied."""
        repo = self.svc.repo
        now = self.svc.now()
        if not await repo.take_lease("sync", self.svc.replica, now, now + timedelta(seconds=60)):
            return 0
        applied = 0
        policy = await self.svc.policy()
        cursor = await repo.get_cursor()
        for _ in range(max_pages):
            page = await self.svc.contacts.changes(cursor, self.page_size)
            for change in page.get("changes", []):
                try:
                    await self.svc.apply_change(change, policy)
                except (OverflowError, ValueError) as exc:
                    # A record this code cannot read (older data, a date at the edge of what
                    # datetime holds) is skipped, not retried forever: it would halt the feed
                    # for every user. Outages raise other errors and keep the cursor put.
                    log.warning(
                        "skipped change %s (%s %s): %s",
                        change.get("cursor"),
                        change.get("kind"),
                        change.get("entity_id"),
                        exc,
                    )
                    continue
                applied += 1
            next_cursor = page.get("next")
            if next_cursor and next_cursor != cursor:
                cursor = str(next_cursor)
                await repo.set_cursor(cursor, self.svc.now())
            if not page.get("has_more"):
                break
        return applied

    async def reconcile(self) -> dict[str, int]:
        """Recompute every user's touchpoints from contacts' current state (the safety net)."""
        stats = {"users": 0, "contacts": 0, "gone": 0}
        policy = await self.svc.policy()
        after: str | None = None
        while True:
            page = await self.svc.contacts.users_page(after)
            for user in page.get("items", []):
                stored = await self.svc.apply_user(user)
                stats["users"] += 1
                live: set[str] = set()
                contacts_after: str | None = None
                while True:
                    cpage = await self.svc.contacts.contacts_page(str(user["id"]), contacts_after)
                    for contact in cpage.get("items", []):
                        live.add(str(contact["id"]))
                        await self.svc.apply_contact(contact, policy=policy)
                        stats["contacts"] += 1
                    contacts_after = cpage.get("next")
                    if not contacts_after:
                        break
                for mirror in await self.svc.repo.user_contacts(stored["_id"]):
                    if mirror["contact_id"] not in live and not mirror.get("deleted"):
                        await self.svc.delete_contact(stored["_id"], mirror["contact_id"])
                        stats["gone"] += 1
            after = page.get("next")
            if not after:
                break
        return stats
