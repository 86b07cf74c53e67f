"""Granting the operator role: a direct write to the contacts database, never an API call."""

from __future__ import annotations

import os

from cli.api import CliError
from cli.config import dev_secrets, dev_stack
from services.contacts.manage import set_operator_role as _set_role
from services.contacts.settings import ContactsSettings
from shared.config import ConfigurationError, load_settings
from shared.errors import DomainError


async def set_operator_role(phone: str, *, operator: bool) -> str:
    """Grant or revoke the role for the user with ``phone``; returns the user id."""
    # The contacts service's own settings say where its database is; on a developer machine
    # the values `make run` recorded fill in what the environment lacks.
    env = {**dev_secrets(), **dev_stack_env(), **os.environ}
    try:
        settings = load_settings(ContactsSettings, env)
    except ConfigurationError as exc:
        raise CliError(f"cannot reach the contacts database: {exc}") from None
    try:
        return await _set_role(settings, phone, operator)
    except DomainError as exc:
        raise CliError(exc.detail) from None


def dev_stack_env() -> dict[str, str]:
    """MONGODB_URI of a running dev stack, when there is one."""
    uri = dev_stack().get("mongodb_uri")
    return {"MONGODB_URI": uri} if uri else {}
