"""Contact import files: reading the upload, decoding it, and mapping vCards and CSV rows.

This module only turns a file into :class:`Candidate` rows (the fields of a contact as the
file states them, not yet validated). Validation against the contact models, the user's
phone region and de-duplication against the address book happen in
:meth:`services.contacts.service.ContactsService.import_contacts`.

Formats:

- vCard 2.1, 3.0 and 4.0 (iOS shares 3.0, Android exports 2.1 or 3.0, CardDAV servers 4.0),
  parsed with ``vobject`` one card at a time, so a broken card is reported and skipped
  instead of spoiling the file;
- CSV exported by Google Contacts (old and new headers: ``Given Name``/``First Name``,
  ``Phone 1 - Value``, values joined by ``:::``) and by Outlook (``First Name``,
  ``Mobile Phone``, ``E-mail Address``), told apart by their headers.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import vobject
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import TypeAdapter, ValidationError

from services.contacts.models import (
    MAX_EMAILS,
    MAX_PHONES,
    ContactCreate,
    Email,
    FieldWarning,
    ImportedContact,
    ImportReport,
    ImportRow,
    ImportSummary,
    Phone,
    Tag,
    normalize_phone,
    normalize_text,
)
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

ImportFormat = Literal["vcard", "google_csv", "outlook_csv"]

VCARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
# Browsers on Windows label .csv files application/vnd.ms-excel.
CSV_TYPES = frozenset(
    {"text/csv", "application/csv", "text/comma-separated-values", "application/vnd.ms-excel"}
)
MULTIPART = "multipart/form-data"
FILE_FIELD = "file"


@dataclass(frozen=True, slots=True)
class Upload:
    """The bytes of an uploaded file and what the client said about them."""

    raw: bytes
    media_type: str
    charset: str | None


@dataclass(slots=True)
class Candidate:
    """One card or CSV row, mapped onto contact fields as the file states them."""

    row: int
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A whole file: its detected format and its rows in file order."""

    format: ImportFormat
    rows: list[Candidate]


# --- reading the upload -----------------------------------------------------------------------


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the import file must be at most {max_bytes} bytes; split it")


async def _read_stream(read: Any, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk: bytes = await read()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)


async def read_upload(request: web.Request, max_bytes: int) -> Upload:
    """The import file: a raw text/vcard or text/csv body, or the ``file`` part of a form.

    The size is checked while reading, whatever Content-Length claims. Errors are 413 (too
    large), 415 (another media type) and 400 (a form without a ``file`` part, or one that
    does not parse).
    """
    if request.content_length is not None and request.content_length > max_bytes + 64 * 1024:
        raise _too_large(max_bytes)  # leaves room for a form's part headers
    media = request.content_type
    if media in VCARD_TYPES or media in CSV_TYPES:
        raw = await _read_stream(lambda: request.content.read(64 * 1024), max_bytes)
        return Upload(raw, media, request.charset)
    if media != MULTIPART:
        raise UnsupportedMediaType(
            "send the file as text/vcard, text/csv, or multipart/form-data with a 'file' part"
        )
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != FILE_FIELD:
                continue
            raw = await _read_stream(lambda p=part: p.read_chunk(64 * 1024), max_bytes)
            part_type = part.headers.get("Content-Type", "application/octet-stream")
            media_type, _, params = part_type.partition(";")
            charset = re.search(r"charset=\"?([\w.:-]+)", params, re.IGNORECASE)
            return Upload(raw, media_type.strip().lower(), charset.group(1) if charset else None)
    except (HttpProcessingError, ValueError, AssertionError, RuntimeError, LookupError) as exc:
        # aiohttp's multipart reader signals a malformed body with these.
        raise BadRequest(f"the form does not parse: {exc}") from None
    raise BadRequest(
        "the form has no 'file' part", errors=[{"field": FILE_FIELD, "message": "missing"}]
    )


def decode(upload: Upload) -> str:
    """The file as text: a byte-order mark wins, then the declared charset, then UTF-8."""
    raw = upload.raw
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            raw, charset = raw[len(bom) :], codec
            break
    else:
        charset = upload.charset or "utf-8"
    try:
        codec_name = codecs.lookup(charset).name
    except LookupError:
        raise UnsupportedMediaType(f"unknown charset {charset[:40]!r}") from None
    try:
        return raw.decode(codec_name)
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the file is not valid {codec_name} (byte {exc.start}); declare its charset, "
            "for example text/csv; charset=windows-1252",
            errors=[{"field": FILE_FIELD, "message": f"not {codec_name}"}],
        ) from None


def parse_file(upload: Upload, max_rows: int) -> ParsedFile:
    """Decode and parse an upload; a file of more than ``max_rows`` entries is a 422.

    CPU-bound (a few milliseconds per hundred cards): callers run it in a worker thread.
    """
    text = decode(upload)
    if "\x00" in text:
        raise BadRequest(
            "the file holds NUL characters: it is binary, or its charset was not declared",
            errors=[{"field": FILE_FIELD, "message": "NUL character"}],
        )
    is_vcard = upload.media_type in VCARD_TYPES or (
        upload.media_type not in CSV_TYPES and re.match(r"\s*BEGIN:VCARD", text, re.IGNORECASE)
    )
    if is_vcard:
        parsed = ParsedFile("vcard", _vcard_rows(text, max_rows))
    else:
        parsed = _csv_rows(text, max_rows)
    if not parsed.rows:
        raise ValidationFailed(
            "the file holds no contacts", [{"field": FILE_FIELD, "message": "no contacts"}]
        )
    return parsed


def _too_many(max_rows: int) -> ValidationFailed:
    return ValidationFailed(
        f"an import holds at most {max_rows} contacts; split the file",
        [{"field": FILE_FIELD, "message": f"more than {max_rows} contacts"}],
    )


# --- shared mapping helpers -------------------------------------------------------------------


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _join(*parts: str | None) -> str | None:
    return _clean(" ".join(p.strip() for p in parts if p and p.strip()))


PHONE_LABELS = {
    "cell": "mobile",
    "mobile": "mobile",
    "iphone": "mobile",
    "work": "work",
    "business": "work",
    "home": "home",
    "main": "main",
    "fax": "fax",
    "pager": "pager",
    "other": "other",
}


def _phone_label(types: list[str]) -> str | None:
    lowered = [t.strip().lower() for t in types]
    if "fax" in lowered:
        return "fax"
    for kind in lowered:
        if kind in PHONE_LABELS:
            return PHONE_LABELS[kind]
    return None


def _birthday(value: str | None) -> str | None:
    """``YYYY-MM-DD`` or ``MM-DD`` from the shapes exporters write; anything else as given.

    The contact model then accepts or refuses it (an unknown shape becomes a row warning).
    """
    if not value:
        return None
    text = value.strip()
    if match := re.fullmatch(r"(\d{4}|--)-?(\d{2})-?(\d{2})(?:T.*)?", text):
        year, month, day = match.groups()
        # Apple writes 1604 for a birthday without a year (X-APPLE-OMIT-YEAR).
        if year in {"--", "1604"}:
            return f"{month}-{day}"
        return f"{year}-{month}-{day}"
    if match := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", text):  # Outlook, M/D/YYYY
        month, day, year = match.groups()
        if int(month) == 0 or int(day) == 0:
            return None  # Outlook writes 0/0/00 for no birthday
        if len(year) == 2:
            return None  # a two-digit year is ambiguous: keep nothing rather than guess
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return text


def _tags(values: list[str]) -> list[str]:
    tags: list[str] = []
    for value in values:
        tag = value.strip()
        # Google's system groups ("* myContacts", "* starred") are not the user's labels.
        if tag and not tag.startswith("*") and tag.lower() not in {"mycontacts", "starred"}:
            tags.append(tag)
    return tags


# --- vCard ------------------------------------------------------------------------------------

_CARD = re.compile(r"^BEGIN:VCARD[ \t]*\r?\n.*?^END:VCARD[ \t]*\r?$", re.IGNORECASE | re.M | re.S)


def _vcard_rows(text: str, max_rows: int) -> list[Candidate]:
    rows: list[Candidate] = []
    for index, match in enumerate(_CARD.finditer(text), start=1):
        if index > max_rows:
            raise _too_many(max_rows)
        try:
            card = vobject.readOne(match.group(0))
            fields = _vcard_fields(card)
        # Untrusted input: whatever the parser trips on skips this card, never the request.
        except Exception as exc:
            message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            rows.append(Candidate(index, error=f"not a valid vCard: {message}"))
            continue
        rows.append(Candidate(index, fields))
    if not rows and text.strip():
        raise ValidationFailed(
            "the file holds no vCard (BEGIN:VCARD ... END:VCARD)",
            [{"field": FILE_FIELD, "message": "no vCard"}],
        )
    return rows


def _values(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, []))


def _first_text(card: Any, name: str) -> str | None:
    for line in _values(card, name):
        value = line.value
        if isinstance(value, list):  # ORG is a list of units
            value = value[0] if value else None
        if text := _clean(value):
            return text
    return None


def _types(line: Any) -> list[str]:
    types = [str(t) for t in line.params.get("TYPE", [])]
    types += [str(t) for t in getattr(line, "singletonparams", [])]  # vCard 2.1: TEL;CELL:
    return [part for t in types for part in t.split(",")]


def _vcard_fields(card: Any) -> dict[str, Any]:
    name = _first_text(card, "fn")
    if name is None:
        for line in _values(card, "n"):
            n = line.value
            if hasattr(n, "given"):
                name = _join(
                    *(
                        " ".join(v) if isinstance(v, list) else str(v)
                        for v in (n.prefix, n.given, n.additional, n.family, n.suffix)
                    )
                )
            if name:
                break
    phones: list[dict[str, Any]] = []
    for line in _values(card, "tel"):
        number = _clean(line.value)
        if number:
            number = re.sub(r"^tel:", "", number, flags=re.IGNORECASE).split(";")[0]
            phones.append({"number": number, "label": _phone_label(_types(line))})
    emails = [e for line in _values(card, "email") if (e := _clean(line.value))]
    categories: list[str] = []
    for line in _values(card, "categories"):
        value = line.value
        categories += value if isinstance(value, list) else str(value).split(",")
    bday = _values(card, "bday")
    return {
        "name": name,
        "company": _first_text(card, "org"),
        "title": _first_text(card, "title"),
        "phones": phones,
        "emails": emails,
        "birthday": _birthday(_clean(bday[0].value)) if bday else None,
        "notes": _first_text(card, "note"),
        "tags": _tags(categories),
    }


# --- CSV --------------------------------------------------------------------------------------

_GOOGLE_MULTI = re.compile(r"^(Phone|E-mail) (\d+) - Value$")
# Outlook's phone columns and the label each gets.
OUTLOOK_PHONES = {
    "Mobile Phone": "mobile",
    "Primary Phone": "main",
    "Business Phone": "work",
    "Business Phone 2": "work",
    "Company Main Phone": "work",
    "Home Phone": "home",
    "Home Phone 2": "home",
    "Other Phone": "other",
    "Car Phone": "car",
    "Pager": "pager",
    "Business Fax": "fax",
    "Home Fax": "fax",
    "Other Fax": "fax",
}
OUTLOOK_EMAILS = ("E-mail Address", "E-mail 2 Address", "E-mail 3 Address")


def _flavour(headers: list[str]) -> ImportFormat | None:
    if any(_GOOGLE_MULTI.match(h) for h in headers) or {"Given Name", "Family Name"} <= set(
        headers
    ):
        return "google_csv"
    if "E-mail Address" in headers or {"First Name", "Last Name", "Mobile Phone"} <= set(headers):
        return "outlook_csv"
    return None


def _csv_rows(text: str, max_rows: int) -> ParsedFile:
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        headers = [h.strip() for h in next(reader, [])]
        flavour = _flavour(headers)
        if flavour is None:
            raise ValidationFailed(
                "unrecognised file: expected a vCard, or a CSV export of Google Contacts "
                "(Given Name / First Name, Phone 1 - Value) or Outlook (First Name, "
                "Mobile Phone, E-mail Address)",
                [{"field": FILE_FIELD, "message": "unknown format"}],
            )
        rows: list[Candidate] = []
        for index, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue  # a blank line
            if len(rows) >= max_rows:
                raise _too_many(max_rows)
            record = {h: v for h, v in zip(headers, values, strict=False) if h}
            mapped = _google(record) if flavour == "google_csv" else _outlook(record)
            rows.append(Candidate(index, mapped))
    except csv.Error as exc:
        raise ValidationFailed(
            f"the CSV does not parse: {exc}", [{"field": FILE_FIELD, "message": "bad CSV"}]
        ) from None
    return ParsedFile(flavour, rows)


def _split_multi(value: str | None) -> list[str]:
    # Google joins several values of one field with " ::: ".
    return [part.strip() for part in (value or "").split(":::") if part.strip()]


def _google(record: dict[str, str]) -> dict[str, Any]:
    def get(*names: str) -> str | None:
        for name in names:
            if text := _clean(record.get(name)):
                return text
        return None

    name = get("Name") or _join(
        get("Name Prefix"),
        get("Given Name", "First Name"),
        get("Additional Name", "Middle Name"),
        get("Family Name", "Last Name"),
        get("Name Suffix"),
    )
    phones: list[dict[str, Any]] = []
    emails: list[str] = []
    for header in record:
        match = _GOOGLE_MULTI.match(header)
        if not match:
            continue
        kind, number = match.groups()
        label = get(f"{kind} {number} - Type", f"{kind} {number} - Label")
        for value in _split_multi(record[header]):
            if kind == "Phone":
                label_key = (label or "").lstrip("* ").lower()
                phones.append({"number": value, "label": PHONE_LABELS.get(label_key)})
            else:
                emails.append(value)
    return {
        "name": name or get("Nickname", "File As"),
        "company": get("Organization 1 - Name", "Organization Name"),
        "title": get("Organization 1 - Title", "Organization Title"),
        "phones": phones,
        "emails": emails,
        "birthday": _birthday(get("Birthday")),
        "notes": get("Notes"),
        "tags": _tags(_split_multi(get("Labels", "Group Membership"))),
    }


def _outlook(record: dict[str, str]) -> dict[str, Any]:
    def get(name: str) -> str | None:
        return _clean(record.get(name))

    name = _join(get("First Name"), get("Middle Name"), get("Last Name"), get("Suffix"))
    phones = [
        {"number": number, "label": label}
        for column, label in OUTLOOK_PHONES.items()
        if (number := get(column))
    ]
    categories = (get("Categories") or "").split(";")
    return {
        "name": name or get("Company"),
        "company": get("Company"),
        "title": get("Job Title"),
        "phones": phones,
        "emails": [email for column in OUTLOOK_EMAILS if (email := get(column))],
        "birthday": _birthday(get("Birthday")),
        "notes": get("Notes"),
        "tags": _tags(categories),
    }


# --- validation and de-duplication ------------------------------------------------------------

_EMAIL = TypeAdapter(Email)
_TAG = TypeAdapter(Tag)
MAX_TAGS = 20


@dataclass(slots=True)
class PlannedRow:
    """A row's outcome: the contact to create, or why it is a duplicate or skipped."""

    row: int
    outcome: Literal["create", "duplicate", "skipped"]
    data: ContactCreate | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    duplicate_of_row: int | None = None
    matched_by: Literal["phone", "email", "name"] | None = None
    warnings: list[FieldWarning] = field(default_factory=list)
    contact_id: str | None = None

    def out(self) -> ImportRow:
        """The wire form of the row."""
        contact = None
        if self.data is not None:
            contact = ImportedContact(
                name=self.data.name,
                company=self.data.company,
                title=self.data.title,
                phones=[Phone(number=p.number, label=p.label) for p in self.data.phones],
                emails=self.data.emails,
                birthday=self.data.birthday,
                tags=self.data.tags,
            )
        return ImportRow(
            row=self.row,
            outcome=self.outcome,
            reason=self.reason,
            contact_id=self.contact_id,
            duplicate_of=self.duplicate_of,
            duplicate_of_row=self.duplicate_of_row,
            matched_by=self.matched_by,
            contact=contact,
            warnings=self.warnings,
        )


def _shown(value: Any) -> str:
    return repr(str(value)[:60])


def _valid_row(candidate: Candidate, region: str) -> PlannedRow:
    """Validate a row with the contact models; a bad optional value is dropped with a warning."""
    row = PlannedRow(candidate.row, "skipped", reason=candidate.error)
    if candidate.error is not None:
        return row
    warn = row.warnings
    fields = candidate.fields
    phones: list[dict[str, Any]] = []
    for index, phone in enumerate(fields.get("phones") or []):
        try:
            number = normalize_phone(str(phone["number"])[:64], region)
        except ValueError as exc:
            warn.append(
                FieldWarning(field=f"phones.{index}", message=f"{_shown(phone['number'])}: {exc}")
            )
            continue
        if number not in {p["number"] for p in phones}:
            phones.append({"number": number, "label": phone.get("label")})
    emails: list[str] = []
    for index, email in enumerate(fields.get("emails") or []):
        try:
            valid = _EMAIL.validate_python(email)
        except ValidationError:
            warn.append(
                FieldWarning(
                    field=f"emails.{index}", message=f"{_shown(email)}: not an e-mail address"
                )
            )
            continue
        if valid.casefold() not in {e.casefold() for e in emails}:
            emails.append(valid)
    tags: list[str] = []
    for index, tag in enumerate(fields.get("tags") or []):
        try:
            valid = _TAG.validate_python(tag)
        except ValidationError:
            warn.append(FieldWarning(field=f"tags.{index}", message=f"{_shown(tag)}: not a tag"))
            continue
        if valid not in tags:
            tags.append(valid)
    for name, values, limit in (
        ("phones", phones, MAX_PHONES),
        ("emails", emails, MAX_EMAILS),
        ("tags", tags, MAX_TAGS),
    ):
        if len(values) > limit:
            warn.append(FieldWarning(field=name, message=f"only the first {limit} are kept"))
            del values[limit:]
    data: dict[str, Any] = {
        key: fields.get(key) for key in ("name", "company", "title", "birthday", "notes")
    }
    data = {key: value for key, value in data.items() if value is not None}
    data.update(phones=phones, emails=emails, tags=tags)
    if "name" not in data:
        stand_in = data.get("company") or (emails[0] if emails else None)
        if stand_in is None:
            row.reason = "no name, company or e-mail address to name the contact by"
            return row
        data["name"] = stand_in
        warn.append(
            FieldWarning(
                field="name",
                message="none in the file; named after "
                + ("the company" if data.get("company") else "the e-mail address"),
            )
        )
    while True:
        try:
            row.data = ContactCreate.model_validate(data)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            key = str(error["loc"][0])
            if key == "name" or key not in data:
                row.reason = f"{key}: {error['msg']}"
                return row
            warn.append(FieldWarning(field=key, message=f"{_shown(data.pop(key))}: {error['msg']}"))
            continue
        row.outcome = "create"
        return row


class _Seen:
    """Who a phone number, e-mail address or name belongs to: a contact or an earlier row."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], tuple[str | None, int | None]] = {}

    def add(self, doc: dict[str, Any], owner: tuple[str | None, int | None]) -> None:
        for phone in doc.get("phones") or []:
            number = phone["number"] if isinstance(phone, dict) else phone
            self.keys.setdefault(("phone", number), owner)
        for email in doc.get("emails") or []:
            self.keys.setdefault(("email", email.casefold()), owner)
        name = (normalize_text(doc.get("name") or ""), normalize_text(doc.get("company") or ""))
        self.keys.setdefault(("name", "\x1f".join(name)), owner)

    def match(
        self, data: ContactCreate
    ) -> tuple[Literal["phone", "email", "name"], tuple[str | None, int | None]] | None:
        for phone in data.phones:
            if owner := self.keys.get(("phone", phone.number)):
                return "phone", owner
        for email in data.emails:
            if owner := self.keys.get(("email", email.casefold())):
                return "email", owner
        if not data.phones and not data.emails:
            # Nothing else to go by: the same name at the same company is the same person.
            name = (normalize_text(data.name), normalize_text(data.company or ""))
            if owner := self.keys.get(("name", "\x1f".join(name))):
                return "name", owner
        return None


def plan_import(
    parsed: ParsedFile, region: str, existing: list[dict[str, Any]]
) -> list[PlannedRow]:
    """Each row's outcome against the user's live contacts ``existing`` and the earlier rows.

    A row is a duplicate when one of its phone numbers (E.164, read in ``region``) or e-mail
    addresses (case-insensitive) belongs to a contact or an earlier row; a row with neither
    is one when a contact or an earlier row has its name and company (normalised).
    """
    seen = _Seen()
    for doc in existing:
        seen.add(
            {**doc, "name": doc.get("name"), "company": doc.get("company")}, (doc["_id"], None)
        )
    planned: list[PlannedRow] = []
    for candidate in parsed.rows:
        row = _valid_row(candidate, region)
        if row.data is not None:
            found = seen.match(row.data)
            if found is not None:
                row.matched_by, (row.duplicate_of, row.duplicate_of_row) = found
                row.outcome = "duplicate"
                row.reason = f"same {row.matched_by} as " + (
                    f"contact {row.duplicate_of}"
                    if row.duplicate_of_row is None
                    else f"row {row.duplicate_of_row}"
                )
            else:
                seen.add(row.data.model_dump(), (None, row.row))
        planned.append(row)
    return planned


def report(parsed: ParsedFile, planned: list[PlannedRow], *, dry_run: bool) -> ImportReport:
    """The per-row report; duplicates of a row created in this import name its contact."""
    created = {row.row: row.contact_id for row in planned if row.contact_id is not None}
    for row in planned:
        if row.duplicate_of_row is not None:
            row.duplicate_of = created.get(row.duplicate_of_row)
    counts = Counter(row.outcome for row in planned)
    return ImportReport(
        dry_run=dry_run,
        format=parsed.format,
        summary=ImportSummary(
            rows=len(planned),
            create=counts["create"],
            duplicate=counts["duplicate"],
            skipped=counts["skipped"],
        ),
        rows=[row.out() for row in planned],
    )
