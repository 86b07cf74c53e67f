"""JSON logging configured once, with request ids and phone numbers masked."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import phonenumbers

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Phone numbers are found two ways, and a run either finds is masked:
# - phonenumbers' matcher finds every number written in international form (+ and a country
#   code), whatever its length: E.164 runs from 7 digits (Niue, +683 4002) to 15;
# - a run of 9 or more digits, possibly split by spaces, dots, dashes or parentheses, catches
#   national forms and anything the matcher thinks impossible (over-masking a long id is the
#   safe mistake; 9 keeps dates such as 2026-11-26 readable).
_PHONE_RE = re.compile(
    # Not a date or date-time (2026-11-26, 2026-11-26 05:01): those are kept.
    r"(?<![\w.-])(?!\d{4}-\d{2}-\d{2})\+?\(?\d(?:[\s().-]{0,2}\d){8,}"
)
# The matcher is slow next to a regex: it runs only where a + is followed by a digit.
_INTERNATIONAL_HINT = re.compile(r"\+\s?\(?\d")

_STANDARD_ATTRS = frozenset(
    vars(logging.makeLogRecord({})).keys() | {"message", "asctime", "taskName"}
)


def mask_phone(text: str) -> str:
    """Replace every phone number (and phone-like digit run) in ``text``, keeping 2 digits."""
    if _INTERNATIONAL_HINT.search(text):
        matcher = phonenumbers.PhoneNumberMatcher(
            text, None, leniency=phonenumbers.Leniency.POSSIBLE
        )
        for span in reversed([(match.start, match.end) for match in matcher]):
            text = text[: span[0]] + _masked(text[span[0] : span[1]]) + text[span[1] :]
    return _PHONE_RE.sub(lambda match: _masked(match.group(0)), text)


def _masked(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return "+" + "*" * max(len(digits) - 2, 0) + digits[-2:]


# Credentials: bearer tokens, JWT-shaped strings, and whole Authorization header values.
_SECRET_RES = (
    re.compile(r"(?i)(authorization\s*[:=]\s*)[^\r\n'\"\\]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"()eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
)


def redact(text: str) -> str:
    """Mask credentials and phone numbers in ``text``."""
    for pattern in _SECRET_RES:
        text = pattern.sub(r"\1[redacted]", text)
    return mask_phone(text)


def _is_malformed_http(exc: BaseException | None) -> bool:
    # Imported here: logging is configured before anything else, aiohttp included.
    from aiohttp.http_exceptions import HttpProcessingError

    return isinstance(exc, HttpProcessingError)


class RedactingFilter(logging.Filter):
    """Masks credentials and phone numbers everywhere in a record; adds the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        exc = record.exc_info[1] if record.exc_info else None
        if _is_malformed_http(exc):
            # aiohttp logs a request it cannot parse with the raw bytes (headers, body); a
            # malformed request is the client's problem: one line, no bytes, not an error.
            record.msg = f"refused a malformed HTTP request ({type(exc).__name__})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Serialize the record."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload and value is not None:
                payload[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Configure the root logger for a service process (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the metrics middleware records; keep it at warnings.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("twilio").setLevel(logging.WARNING)
