"""Carrier compliance keywords: STOP and its synonyms, START, HELP; whole-message, any case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

Action = Literal["opt_out", "opt_in", "help"]


@dataclass(frozen=True, slots=True)
class Keyword:
    """A compliance keyword found in an inbound text."""

    action: Action
    word: str


def normalize(text: str) -> str:
    """Upper-case the text and drop surrounding whitespace and trailing punctuation."""
    return text.strip().strip(".!?\"' \t\r\n").strip().upper()


def match_keyword(text: str) -> Keyword | None:
    """The compliance keyword ``text`` consists of, or None (keywords must be the whole text)."""
    word = normalize(text)
    if word in OPT_OUT_KEYWORDS:
        return Keyword("opt_out", word)
    if word in OPT_IN_KEYWORDS:
        return Keyword("opt_in", word)
    if word in HELP_KEYWORDS:
        return Keyword("help", word)
    return None


def opt_out_reply(program: str) -> str:
    """Confirmation of an opt-out; the last message the number gets until it opts back in."""
    return (
        f"{program}: You are unsubscribed and will receive no more messages. "
        "Reply START to resubscribe."
    )


def opt_in_reply(program: str) -> str:
    """Confirmation of an opt-in."""
    return (
        f"{program}: You are resubscribed and will receive reminders again. Reply STOP to opt out."
    )


def help_reply(program: str, contact: str) -> str:
    """What the program is, how to get help, how to stop."""
    return (
        f"{program}: reminders to keep in touch with your network. "
        f"Msg frequency varies. Msg&data rates may apply. Help: {contact}. Reply STOP to opt out."
    )


def unknown_number_reply(program: str) -> str:
    """The one polite line an unknown number gets."""
    return f"{program}: Sorry, we don't recognise this number. Sign up in the app to get reminders."
