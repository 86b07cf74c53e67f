"""Administration of the contacts service from a shell: ``python -m services.contacts.manage``.

The operator role is granted here (or by OPERATOR_PHONES), never through the API:
``python -m services.contacts.manage grant-operator +14155550100 [--revoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pymongo.errors import PyMongoError

from services.contacts.models import normalize_phone
from services.contacts.repository import (
    ChangeRepository,
    ContactRepository,
    IdempotencyRepository,
    InteractionRepository,
    ReferralRepository,
    StageRepository,
    UserRepository,
)
from services.contacts.service import ContactsService
from services.contacts.settings import ContactsSettings
from shared.clock import SystemClock
from shared.config import ConfigurationError, load_settings
from shared.errors import DomainError, ServiceUnavailable
from shared.mongo import create_client


async def set_operator_role(settings: ContactsSettings, phone: str, operator: bool) -> str:
    """Grant (``operator=True``) or revoke the stored operator role of the user with ``phone``.

    Returns the user's id. ``phone`` is E.164, or national in ``DEFAULT_REGION``. Raises
    ``NotFound`` when no user has that number, ``ValidationFailed`` when it is not a phone
    number and ``ServiceUnavailable`` when the database cannot be reached (all ``DomainError``).
    The write is recorded in the change feed, so other services see the new role; reminders
    reads it from contacts on each operator request, so it counts from the user's next one.
    """
    client = create_client(settings.mongodb_uri, "contacts-manage", settings.mongo_timeout_ms)
    try:
        db = client[settings.db_name]
        service = ContactsService(
            settings=settings,
            clock=SystemClock(),
            users=UserRepository(db),
            contacts=ContactRepository(db),
            interactions=InteractionRepository(db),
            referrals=ReferralRepository(db),
            stages=StageRepository(db),
            changes=ChangeRepository(db),
            idempotency=IdempotencyRepository(db),
        )
        return await service.set_operator(phone, operator)
    except PyMongoError as exc:
        # The driver's message may name hosts; the error class says enough.
        raise ServiceUnavailable(
            f"cannot reach the contacts database ({type(exc).__name__})"
        ) from None
    finally:
        await client.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.contacts.manage",
        description="Administer the contacts service (settings come from the environment).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    grant = commands.add_parser(
        "grant-operator", help="give a signed-up user the operator role (or take it back)"
    )
    grant.add_argument("phone", help="the user's phone number, E.164 (+14155550100)")
    grant.add_argument("--revoke", action="store_true", help="take the role back instead")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one administration command; the exit status (0 done, 1 refused, 2 bad usage)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(ContactsSettings)
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    operator = not args.revoke
    try:
        user_id = asyncio.run(set_operator_role(settings, args.phone, operator))
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(user_id)
    if not operator and normalize_phone(args.phone, settings.default_region) in (
        settings.operator_phone_set
    ):
        print(
            "note: the number is listed in OPERATOR_PHONES, so the user stays an operator",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
