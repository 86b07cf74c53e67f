"""Wire models of the contacts API (input validated strictly, output documented) and helpers."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from services.contacts.currencies import iso_currency
from shared.clock import Instant

Tier = Literal["A", "B", "C"]
# The relationship ladder of referral networking: know → like → trust → referral partner.
Stage = Literal["know", "like", "trust", "referral_partner"]
InteractionKind = Literal[
    "one_to_one", "coffee", "call", "meeting", "event", "message", "email", "note"
]
InteractionSource = Literal["app", "sms", "api"]
ReferralStatus = Literal["open", "contacted", "meeting", "won", "lost"]
Direction = Literal["given", "received"]
# How warm a referral is, from 1 (a name only) to 5 (ready to buy); no strings or booleans.
Temperature = Annotated[int, Field(ge=1, le=5, strict=True)]
ContactSort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at",
                      "losing_touch"]  # fmt: skip

# Days between touches when a contact has no cadence of its own (reminders' default policy).
DEFAULT_CADENCE_DAYS: dict[str | None, int] = {"A": 14, "B": 30, "C": 90, None: 60}

# Forward-only referral pipeline; won and lost are final.
REFERRAL_NEXT: dict[str, frozenset[str]] = {
    "open": frozenset({"contacted", "meeting", "won", "lost"}),
    "contacted": frozenset({"meeting", "won", "lost"}),
    "meeting": frozenset({"won", "lost"}),
    "won": frozenset(),
    "lost": frozenset(),
}

_ZONES: frozenset[str] | None = None


def normalize_text(text: str) -> str:
    """Lower-case, accent-free, single-spaced words: the form name searches compare against."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.split(r"[^\w]+", stripped.casefold())
    return " ".join(word for word in words if word)


def _time_zone(value: str) -> str:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if value not in _ZONES:
        raise ValueError("not an IANA time zone (for example Europe/Paris)")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone (for example Europe/Paris)") from None
    return value


def _birthday(value: str) -> str:
    match = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", value)
    if not match:
        raise ValueError("use MM-DD or YYYY-MM-DD")
    year = int(match.group(1) or 2000)  # 2000 is a leap year, so 02-29 is allowed without one
    try:
        date(year, int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise ValueError("not a calendar date") from None
    if match.group(1) and not 1900 <= year <= 2100:
        raise ValueError("year out of range")
    return value


def _day(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar date") from None
    if not 1900 <= day.year <= 2100:
        raise ValueError("year out of range")
    return value


def _region(value: str) -> str:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("not a supported ISO 3166 region code")
    return value


def _no_controls(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("control characters are not allowed")
    return value


def normalize_phone(raw: str, region: str | None) -> str:
    """An E.164 number from what the user typed, read in ``region`` when it has no ``+``."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]
# A calendar day, kept as its ISO string (BSON has no date-only type).
Day = Annotated[str, StringConstraints(max_length=10), AfterValidator(_day)]
Birthday = Annotated[str, StringConstraints(max_length=10), AfterValidator(_birthday)]
Region = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_region)]
Text = Annotated[str, AfterValidator(_no_controls)]
Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=200)]
MediumText = Annotated[Text, StringConstraints(strip_whitespace=True, max_length=500)]
LongText = Annotated[Text, StringConstraints(max_length=5000)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[\w][\w -]{0,39}$")
]
PhoneInput = Annotated[str, StringConstraints(min_length=3, max_length=32)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
    ),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(iso_currency)]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
Label = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
MAX_PHONES = 10
MAX_EMAILS = 10


class Strict(BaseModel):
    """Base of every input model: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of every output model."""

    model_config = ConfigDict(extra="ignore")


# --- auth -------------------------------------------------------------------------------------


class OtpStart(Strict):
    """Ask for a sign-in code by SMS."""

    phone: PhoneInput


class OtpStarted(Out):
    """A code was sent; verify it with the challenge id before it expires."""

    challenge_id: str
    expires_at: datetime


class OtpVerify(Strict):
    """Prove the phone number with the code it received."""

    challenge_id: Id
    code: Annotated[str, StringConstraints(pattern=r"^\d{4,8}$")]


class RefreshRequest(Strict):
    """Trade a refresh token for a new pair (the old one is used up)."""

    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=200)]


class LogoutRequest(Strict):
    """Revoke one refresh token's family, or every session of the user with ``all``."""

    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = None
    all: bool = False


class BusinessProfile(Strict):
    """What the networker does and which referrals they want: the words of their ask."""

    what_i_do: LongText | None = Field(default=None, max_length=1000)
    referrals_wanted: LongText | None = Field(
        default=None, max_length=1000, description="who I want to be referred to"
    )
    ideal_partner_categories: list[Label] = Field(
        default_factory=list,
        max_length=20,
        description="professions of ideal referral partners, e.g. 'mortgage broker'",
    )


class User(Out):
    """A networker's profile."""

    id: str
    phone: str
    name: str | None
    time_zone: str
    region: str
    locale: str
    role: Literal["networker", "operator"]
    profile: BusinessProfile = Field(default_factory=BusinessProfile)
    created_at: datetime


class TokenPair(Out):
    """Credentials after sign-in or refresh."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime
    user: User


class MePatch(Strict):
    """Profile fields the user may change."""

    name: Name | None = None
    time_zone: TimeZoneName | None = None
    region: Region | None = None
    locale: Locale | None = None
    profile: BusinessProfile | None = Field(
        default=None, description="replaced whole; null clears it"
    )


# --- contacts ---------------------------------------------------------------------------------


class PhoneIn(Strict):
    """A phone number of a contact as typed, read in the user's region when it has no ``+``."""

    number: PhoneInput
    label: Label | None = None


def _phone_item(value: Any) -> Any:
    # A bare string is shorthand for an unlabelled number.
    return {"number": value} if isinstance(value, str) else value


_PHONE_ITEM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 3, "maxLength": 32},
        {
            "type": "object",
            "properties": {
                "number": {"type": "string", "minLength": 3, "maxLength": 32},
                "label": {
                    "anyOf": [{"type": "string", "minLength": 1, "maxLength": 40}, {"type": "null"}]
                },
            },
            "required": ["number"],
            "additionalProperties": False,
        },
    ],
    "description": "A phone number, or {number, label}; read in the user's region without +.",
}
PhoneItem = Annotated[
    PhoneIn, BeforeValidator(_phone_item), WithJsonSchema(_PHONE_ITEM_SCHEMA, mode="validation")
]


class Met(Strict):
    """How, where and when the user met a contact (every part optional)."""

    how: ShortText | None = None
    where: ShortText | None = None
    on: Day | None = None


class ContactCreate(Strict):
    """A new contact."""

    name: Name
    company: ShortText | None = None
    title: ShortText | None = None
    profession: ShortText | None = None
    phones: list[PhoneItem] = Field(default_factory=list, max_length=MAX_PHONES)
    emails: list[Email] = Field(default_factory=list, max_length=MAX_EMAILS)
    met: Met | None = None
    tier: Tier | None = None
    cadence_days: int | None = Field(default=None, ge=1, le=730)
    stage: Stage = "know"
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    notes: LongText | None = None
    birthday: Birthday | None = None
    time_zone: TimeZoneName | None = None


class ContactPatch(Strict):
    """Changes to a contact; a field set to null is cleared (except ``name`` and ``stage``).

    ``phones``, ``emails``, ``tags`` and ``met`` are replaced as a whole; null empties them.
    """

    name: Name | None = None
    company: ShortText | None = None
    title: ShortText | None = None
    profession: ShortText | None = None
    phones: list[PhoneItem] | None = Field(default=None, max_length=MAX_PHONES)
    emails: list[Email] | None = Field(default=None, max_length=MAX_EMAILS)
    met: Met | None = None
    tier: Tier | None = None
    cadence_days: int | None = Field(default=None, ge=1, le=730)
    stage: Stage | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)
    notes: LongText | None = None
    birthday: Birthday | None = None
    time_zone: TimeZoneName | None = None


class ContactQuery(Strict):
    """Filters, sort and page of the contact list."""

    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    tag: Tag | None = None
    tier: Tier | None = None
    stage: Stage | None = None
    q: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    sort: ContactSort = "name"
    deleted: bool = False


class Phone(Out):
    """A contact's phone number in E.164, with an optional label (mobile, office...)."""

    number: str
    label: str | None


class MetOut(Out):
    """How, where and when the user met the contact."""

    how: str | None
    where: str | None
    on: date | None


class Contact(Out):
    """A contact as the app sees it."""

    id: str
    name: str
    company: str | None
    title: str | None
    profession: str | None
    phones: list[Phone]
    emails: list[str]
    met: MetOut | None
    tier: Tier | None
    cadence_days: int | None
    stage: Stage
    tags: list[str]
    notes: str | None
    birthday: str | None
    time_zone: str | None
    last_interaction_at: datetime | None
    interaction_count: int
    interactions_by_kind: dict[str, int]
    referrals_given: int
    referrals_received: int
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    deleted: bool
    deleted_at: datetime | None


class ContactPage(Out):
    """One page of contacts; pass ``next`` as ``cursor`` for the following one."""

    items: list[Contact]
    next: str | None


class ImportQuery(Strict):
    """Options of a contact import."""

    dry_run: bool = Field(default=False, description="preview the outcome of each row only")


class FieldWarning(Out):
    """A value of a row that was left out (the rest of the row was kept)."""

    field: str
    message: str


class ImportedContact(Out):
    """A row's contact as it would be (or was) created: normalised, E.164 phones."""

    name: str
    company: str | None
    title: str | None
    phones: list[Phone]
    emails: list[str]
    birthday: str | None
    tags: list[str]


class ImportRow(Out):
    """What happened (or, in a dry run, would happen) to one card or CSV row."""

    row: int = Field(description="1-based position of the card or data row in the file")
    outcome: Literal["create", "duplicate", "skipped"]
    reason: str | None = Field(description="why a row is a duplicate or was skipped")
    contact_id: str | None = Field(description="the contact created (committed imports)")
    duplicate_of: str | None = Field(description="the existing contact it duplicates")
    duplicate_of_row: int | None = Field(description="the earlier row of the file it repeats")
    matched_by: Literal["phone", "email", "name"] | None
    contact: ImportedContact | None
    warnings: list[FieldWarning]


class ImportSummary(Out):
    """How many rows had each outcome."""

    rows: int
    create: int
    duplicate: int
    skipped: int


class ImportReport(Out):
    """The per-row report of a contact import (or its preview, ``dry_run``)."""

    dry_run: bool
    format: Literal["vcard", "google_csv", "outlook_csv"]
    summary: ImportSummary
    rows: list[ImportRow]


class InternalContact(Out):
    """A contact as other services see it (never the private notes)."""

    id: str
    user_id: str
    name: str
    company: str | None
    tier: Tier | None
    cadence_days: int | None
    stage: Stage
    birthday: str | None
    last_interaction_at: datetime | None
    created_at: datetime
    deleted: bool


# --- interactions -----------------------------------------------------------------------------


class InteractionCreate(Strict):
    """A touch with a contact: a 1-2-1, a call, a note..."""

    kind: InteractionKind
    occurred_at: Instant | None = None
    notes: LongText | None = None
    next_action: MediumText | None = None
    # The app's own entries, or "api" for other clients of the public API; "sms" is reserved
    # for the internal API, which logs what a user texted.
    source: Literal["app", "api"] = "app"


class InternalInteractionCreate(InteractionCreate):
    """An interaction logged on the user's behalf by another service (from an SMS reply)."""

    source: InteractionSource = "sms"  # type: ignore[assignment]


class Interaction(Out):
    """A logged interaction."""

    id: str
    contact_id: str
    user_id: str
    kind: InteractionKind
    occurred_at: datetime
    notes: str | None
    next_action: str | None
    # False when no next action was agreed (a 1-2-1 without one is recorded as such).
    next_action_agreed: bool
    source: InteractionSource
    created_at: datetime
    # When it was last edited (its creation time until then).
    updated_at: datetime


class InteractionPatch(Strict):
    """Corrections to a logged interaction; null clears ``notes`` or ``next_action``."""

    kind: InteractionKind | None = None
    occurred_at: Instant | None = None
    notes: LongText | None = None
    next_action: MediumText | None = None


class PageQuery(Strict):
    """A page of a simple list."""

    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None


class InteractionPage(Out):
    """One page of interactions, newest first."""

    items: list[Interaction]
    next: str | None


# --- referrals --------------------------------------------------------------------------------


class ReferralCreate(Strict):
    """A referral given to or received from a contact."""

    direction: Direction
    contact_id: Id
    for_name: ShortText | None = None
    for_contact_id: Id | None = None
    description: LongText | None = None
    temperature: Temperature | None = None


class ReferralPatch(Strict):
    """Move a referral along its pipeline or correct its details."""

    status: ReferralStatus | None = None
    value: float | None = Field(default=None, ge=0, le=1e12)
    currency: Currency | None = None
    description: LongText | None = None
    temperature: Temperature | None = None
    for_name: ShortText | None = None


class ReferralQuery(Strict):
    """Filters and page of the referral list."""

    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None
    direction: Direction | None = None
    status: ReferralStatus | None = None
    contact_id: Id | None = None


class Referral(Out):
    """A referral and where it stands."""

    id: str
    user_id: str
    direction: Direction
    contact_id: str
    for_name: str | None
    for_contact_id: str | None
    description: str | None
    temperature: Temperature | None
    status: ReferralStatus
    status_times: dict[str, datetime]
    value: float | None
    currency: str | None
    created_at: datetime
    updated_at: datetime


class ReferralPage(Out):
    """One page of referrals, newest first."""

    items: list[Referral]
    next: str | None


# --- internal ---------------------------------------------------------------------------------


class ByPhoneQuery(Strict):
    """Look a user up by phone."""

    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]


class MatchQuery(Strict):
    """Find contacts by the words of their name."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    limit: int = Field(default=10, ge=1, le=50)


class Candidates(Out):
    """Contacts whose names match."""

    candidates: list[InternalContact]


class InternalContactPage(Out):
    """A page of a user's live contacts."""

    items: list[InternalContact]
    next: str | None


class UserPage(Out):
    """A page of users."""

    items: list[User]
    next: str | None


class ChangeQuery(Strict):
    """Where to read the change feed from."""

    after: Annotated[str, StringConstraints(max_length=500)] | None = None
    limit: int = Field(default=500, ge=1, le=1000)


class Change(Out):
    """One recorded change, with the entity's state at serve time."""

    cursor: str
    kind: Literal["contact", "interaction", "referral", "user"]
    op: Literal["upsert", "delete"]
    user_id: str
    entity_id: str
    at: datetime
    entity: dict[str, Any] | None


class ChangePage(Out):
    """A page of the change feed."""

    changes: list[Change]
    next: str | None
    has_more: bool


# --- delta sync -------------------------------------------------------------------------------


SyncKind = Literal["contact", "interaction", "referral"]


class SyncQuery(Strict):
    """Where a phone's sync resumes: the ``next`` of its last page; none for a full sync."""

    since: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="the next token of the last page; omit for a full sync"
    )
    limit: int = Field(default=200, ge=1, le=1000, description="most records read for the page")


class Tombstone(Out):
    """An entity the phone must drop: deleted (a contact soft-deleted, or the rest removed)."""

    kind: SyncKind
    id: str
    deleted_at: datetime


class SyncPage(Out):
    """One page of a delta sync: current documents, tombstones and the token to resume from.

    Store ``next`` only after applying the page; while ``has_more``, ask again at once.
    """

    contacts: list[Contact]
    interactions: list[Interaction]
    referrals: list[Referral]
    tombstones: list[Tombstone]
    next: str
    has_more: bool


# --- stats and export -------------------------------------------------------------------------


Period = Literal["week", "month", "quarter"]


class StatsQuery(Strict):
    """The scorecard's period: ``from`` and ``to``, or a ``period`` of the user's calendar.

    ``period`` is the current week (from Monday), month or quarter in the user's time zone;
    ``offset`` steps back (-1 is the previous one). Without either, the current month.
    """

    from_: Instant | None = Field(default=None, alias="from", description="start (included)")
    to: Instant | None = Field(default=None, description="end (excluded)")
    period: Period | None = None
    offset: int = Field(default=0, ge=-600, le=0, description="0 is the current period")


class Money(Out):
    """Closed business per ISO 4217 currency, each a sum of won referrals' values."""

    given: dict[str, float]
    received: dict[str, float]


class LedgerEntry(Out):
    """What went each way between the user and one contact during the period."""

    contact_id: str
    name: str
    deleted: bool
    one_to_ones: int
    referrals_given: int
    referrals_received: int
    closed_business: Money


class Scorecard(Out):
    """The networker's numbers over one period (a BNI-style scorecard)."""

    # ``from`` is a Python keyword: the field is ``from_`` inside, ``from`` on the wire.
    model_config = ConfigDict(extra="ignore", serialize_by_alias=True)

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    period: Period | None
    time_zone: str
    one_to_ones: int
    interactions_by_kind: dict[str, int]
    referrals_given: int
    referrals_received: int
    # TYFCB: "thank you for closed business", by the referrals won during the period.
    closed_business: Money
    ledger: list[LedgerEntry]


class Stats(Out):
    """The user's relationship numbers at a glance, and the scorecard of one period."""

    contacts: dict[str, Any]
    interactions: dict[str, Any]
    referrals: dict[str, Any]
    scorecard: Scorecard


class StageChange(Out):
    """A contact moved on the relationship ladder (or was created on it: ``previous`` null)."""

    id: str
    contact_id: str
    stage: Stage
    previous: Stage | None
    at: datetime


class StageChangePage(Out):
    """A contact's stage history, oldest first."""

    items: list[StageChange]
    next: str | None


class Export(Out):
    """Everything the service holds about the user."""

    exported_at: datetime
    user: User
    contacts: list[Contact]
    interactions: list[Interaction]
    referrals: list[Referral]
    stage_changes: list[StageChange]
    reminders: Any
