"""Contact import: vCard 2.1/3.0/4.0 and Google/Outlook CSV files, dry run, de-duplication,
idempotent commit, per-row report, and the refusals (size, rows, media type, encoding)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.auth import issue_service_token
from shared.web.keys import DB
from tests.contacts.conftest import Client, bearer
from tests.support.settings import INTERNAL_SECRET

FILES = Path(__file__).parent / "import_files"
IMPORT = "/v1/contacts:import"


def fixture(name: str) -> bytes:
    return (FILES / name).read_bytes()


async def post_file(
    client: Client,
    user: dict[str, Any],
    data: bytes,
    content_type: str = "text/vcard",
    *,
    dry_run: bool = False,
    key: str | None = None,
) -> aiohttp.ClientResponse:
    headers = {**bearer(user), "Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    params = {"dry_run": "true"} if dry_run else {}
    return await client.post(IMPORT, data=data, headers=headers, params=params)


async def imported(
    client: Client, user: dict[str, Any], data: bytes, content_type: str = "text/vcard", **kw: Any
) -> dict[str, Any]:
    resp = await post_file(client, user, data, content_type, **kw)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    assert result["summary"]["rows"] == len(result["rows"])
    return result


async def contacts_of(client: Client, user: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get("/v1/contacts", params={"limit": "200"}, headers=bearer(user))
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def contact_changes(client: Client) -> list[str]:
    token = issue_service_token(INTERNAL_SECRET, "reminders", "contacts")
    found: list[str] = []
    after: dict[str, str] = {}
    while True:
        resp = await client.get(
            "/internal/v1/changes",
            params={"limit": "500", **after},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 200
        page = await resp.json()
        found += [c["entity_id"] for c in page["changes"] if c["kind"] == "contact"]
        if not page["changes"]:
            return found
        after = {"after": page["next"]}


def outcomes(report: dict[str, Any]) -> list[str]:
    return [row["outcome"] for row in report["rows"]]


async def assert_problem(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    return body


# --- formats ----------------------------------------------------------------------------------


async def test_ios_vcard_dry_run_previews_and_writes_nothing(
    client: Client, alice: dict[str, Any]
) -> None:
    report = await imported(client, alice, fixture("ios.vcf"), dry_run=True)
    assert report["dry_run"] is True
    assert report["format"] == "vcard"
    assert report["summary"] == {"rows": 3, "create": 3, "duplicate": 0, "skipped": 0}
    dana, acme, chidi = report["rows"]
    assert dana["row"] == 1
    assert dana["contact_id"] is None
    assert dana["contact"] == {
        "name": "Dana Lee",
        "company": "Lee Insurance",
        "title": "Broker",
        # Read in alice's region (US); the pref/voice types do not become labels.
        "phones": [
            {"number": "+14155550199", "label": "mobile"},
            {"number": "+14155550100", "label": "work"},
        ],
        "emails": ["Dana@Lee.example"],
        "birthday": "04-12",  # Apple's 1604 means "no year"
        "tags": [],
    }
    assert acme["contact"]["name"] == "Acme Plumbing"
    assert acme["contact"]["phones"] == [{"number": "+14155550142", "label": "main"}]
    assert chidi["contact"]["phones"] == [{"number": "+442079460958", "label": "mobile"}]
    assert chidi["contact"]["tags"] == ["bni", "doctors"]
    assert chidi["contact"]["birthday"] == "1975-11-03"
    assert await contacts_of(client, alice) == []
    assert await contact_changes(client) == []


async def test_commit_creates_like_post_contacts_and_a_reimport_creates_nothing(
    client: Client, alice: dict[str, Any]
) -> None:
    report = await imported(client, alice, fixture("ios.vcf"))
    assert report["dry_run"] is False
    assert outcomes(report) == ["create"] * 3
    ids = [row["contact_id"] for row in report["rows"]]
    assert all(ids)
    stored = {c["id"]: c for c in await contacts_of(client, alice)}
    assert set(stored) == set(ids)
    dana = stored[ids[0]]
    assert dana["notes"] == "Met at the BNI chapter, weekly on Tuesdays"
    assert dana["stage"] == "know"
    assert dana["due_at"] is not None
    # Each create is announced on the change feed, so reminders learns about it.
    assert sorted(await contact_changes(client)) == sorted(ids)
    # Each starts its stage history like a contact created one by one.
    resp = await client.get(f"/v1/contacts/{ids[0]}/stages", headers=bearer(alice))
    assert [(s["stage"], s["previous"]) for s in (await resp.json())["items"]] == [("know", None)]
    # The same contact reads back with an ETag like any other.
    resp = await client.get(f"/v1/contacts/{ids[0]}", headers=bearer(alice))
    assert resp.status == 200
    assert resp.headers["ETag"] == f'"{ids[0]}-1"'

    again = await imported(client, alice, fixture("ios.vcf"))
    assert again["summary"] == {"rows": 3, "create": 0, "duplicate": 3, "skipped": 0}
    assert [row["duplicate_of"] for row in again["rows"]] == ids
    assert [row["matched_by"] for row in again["rows"]] == ["phone", "phone", "phone"]
    assert len(await contacts_of(client, alice)) == 3


async def test_duplicates_of_existing_contacts_by_phone_email_and_name(
    client: Client, alice: dict[str, Any]
) -> None:
    by_phone = await client.post(
        "/v1/contacts",
        json={"name": "D. Lee", "phones": ["415-555-0199"]},
        headers=bearer(alice),
    )
    by_email = await client.post(
        "/v1/contacts", json={"name": "Chidi", "emails": ["CHIDI@okafor.example"]},
        headers=bearer(alice),
    )  # fmt: skip
    assert by_phone.status == by_email.status == 201
    phone_id = (await by_phone.json())["id"]
    email_id = (await by_email.json())["id"]
    report = await imported(client, alice, fixture("ios.vcf"), dry_run=True)
    dana, acme, chidi = report["rows"]
    assert (dana["outcome"], dana["duplicate_of"], dana["matched_by"]) == (
        "duplicate", phone_id, "phone",
    )  # fmt: skip
    assert dana["reason"] == f"same phone as contact {phone_id}"
    assert acme["outcome"] == "create"
    # chidi's phone is new, his e-mail address is not (case does not matter).
    assert (chidi["outcome"], chidi["duplicate_of"], chidi["matched_by"]) == (
        "duplicate", email_id, "email",
    )  # fmt: skip
    # A row with neither phone nor e-mail is matched by name and company.
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:d lee\r\nEND:VCARD\r\n"
    await client.post("/v1/contacts", json={"name": "D. Lee"}, headers=bearer(alice))
    named = await imported(client, alice, card, dry_run=True)
    assert named["rows"][0]["matched_by"] == "name"
    # A deleted contact is no longer a duplicate: importing brings the person back.
    resp = await client.delete(f"/v1/contacts/{phone_id}", headers=bearer(alice))
    assert resp.status == 204
    report = await imported(client, alice, fixture("ios.vcf"), dry_run=True)
    assert report["rows"][0]["outcome"] == "create"


async def test_android_vcard_21_quoted_printable_and_vcard_40(
    client: Client, alice: dict[str, Any]
) -> None:
    android = await imported(client, alice, fixture("android.vcf"))
    juergen, priya, ana = android["rows"]
    assert juergen["contact"]["name"] == "Jürgen Müller"
    assert juergen["contact"]["company"] == "Müller GmbH"
    assert juergen["contact"]["phones"] == [
        {"number": "+4915123456789", "label": "mobile"},
        {"number": "+4930901820", "label": "home"},
    ]
    # A service code is not a phone number: dropped with a warning, the contact is kept.
    assert priya["outcome"] == "create"
    assert priya["contact"]["phones"] == [{"number": "+16505550177", "label": "mobile"}]
    assert priya["warnings"] == [
        {"field": "phones.1", "message": "'*86': not a valid phone number"}
    ]
    assert ana["contact"]["birthday"] == "1988-07-14"
    v4 = await imported(client, alice, fixture("v4.vcf"))
    elodie, kenji = v4["rows"]
    assert elodie["contact"]["name"] == "Élodie Martin"
    assert elodie["contact"]["phones"] == [{"number": "+33612345679", "label": "mobile"}]
    assert elodie["contact"]["birthday"] == "02-29"
    assert kenji["contact"]["phones"] == [{"number": "+81312345678", "label": "work"}]
    # Searchable without accents like any contact.
    resp = await client.get("/v1/contacts", params={"q": "elodie"}, headers=bearer(alice))
    assert [c["name"] for c in (await resp.json())["items"]] == ["Élodie Martin"]


async def test_google_csv_and_duplicates_within_the_file(
    client: Client, alice: dict[str, Any]
) -> None:
    report = await imported(client, alice, fixture("google.csv"), "text/csv")
    assert report["format"] == "google_csv"
    dana, sam, nameless, sam_again = report["rows"]
    assert dana["contact"]["phones"] == [
        {"number": "+14155550199", "label": "mobile"},
        {"number": "+14155550100", "label": "mobile"},
    ]
    assert dana["contact"]["tags"] == ["bni"]  # Google's "* myContacts" is no label
    assert dana["contact"]["title"] == "Broker"
    assert sam["contact"]["emails"] == ["sam@rivera.example"]  # kept once whatever the case
    assert sam["contact"]["birthday"] == "07-04"
    assert sam["warnings"] == [
        {"field": "phones.0", "message": "'not a number': not a phone number"}
    ]
    assert nameless["outcome"] == "skipped"
    assert nameless["reason"] == "no name, company or e-mail address to name the contact by"
    assert nameless["contact"] is None
    assert sam_again["outcome"] == "duplicate"
    assert sam_again["duplicate_of_row"] == 2
    assert sam_again["duplicate_of"] == sam["contact_id"]
    assert len(await contacts_of(client, alice)) == 2

    legacy = await imported(client, alice, fixture("google_legacy.csv"), "text/csv")
    assert legacy["format"] == "google_csv"
    assert legacy["rows"][0]["contact"] == {
        "name": "Maria Rossi",
        "company": "Rossi & Co",
        "title": "CEO",
        "phones": [{"number": "+393123456789", "label": "mobile"}],
        "emails": ["maria@rossi.example"],
        "birthday": "1990-01-15",
        "tags": ["clients"],
    }


async def test_outlook_csv_in_windows_1252(client: Client, bob: dict[str, Any]) -> None:
    # bob's region is FR: a national UK number is not his, so it is dropped with a warning.
    data = fixture("outlook.csv").decode("utf-8").encode("cp1252")
    resp = await post_file(client, bob, data, "text/csv")
    problem = await assert_problem(resp, 400)
    assert "charset" in problem["detail"]
    report = await imported(client, bob, data, "text/csv; charset=windows-1252")
    assert report["format"] == "outlook_csv"
    tom, zoe = report["rows"]
    assert tom["contact"] == {
        "name": "Tom Baker",  # "Title" is Outlook's name prefix, not the job title
        "company": "Baker & Sons",
        "title": "Owner",
        "phones": [{"number": "+442079460018", "label": "work"}],
        "emails": ["tom@baker.example"],
        "birthday": "1980-04-12",
        "tags": ["bni", "trades"],
    }
    assert tom["warnings"] == [
        {"field": "phones.0", "message": "'07700 900123': not a valid phone number"}
    ]
    assert zoe["contact"]["name"] == "Zoë Adams"
    assert zoe["contact"]["birthday"] is None  # Outlook's 0/0/00
    # Without a "+" a number is read in the user's region: this US one is not French.
    assert zoe["contact"]["phones"] == []
    assert zoe["warnings"][0]["field"] == "phones.0"


async def test_multipart_upload_and_byte_order_marks(client: Client, alice: dict[str, Any]) -> None:
    form = aiohttp.FormData()
    form.add_field("note", "ignored")
    form.add_field(
        "file",
        fixture("google.csv"),
        filename="contacts.csv",
        content_type="application/octet-stream",
    )
    resp = await client.post(IMPORT, data=form, headers=bearer(alice), params={"dry_run": "1"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["format"] == "google_csv"
    utf16 = codecs.BOM_UTF16_LE + fixture("v4.vcf").decode().encode("utf-16-le")
    report = await imported(client, alice, utf16, dry_run=True)
    assert report["rows"][0]["contact"]["name"] == "Élodie Martin"
    utf8_bom = codecs.BOM_UTF8 + fixture("outlook.csv")
    report = await imported(client, alice, utf8_bom, "text/csv", dry_run=True)
    assert report["format"] == "outlook_csv"


async def test_broken_cards_are_skipped_row_by_row(client: Client, alice: dict[str, Any]) -> None:
    report = await imported(client, alice, fixture("broken.vcf"))
    good, broken, nameless, bad_fields = report["rows"]
    assert good["outcome"] == "create"
    assert broken["outcome"] == "skipped"
    assert broken["reason"].startswith("not a valid vCard:")
    assert nameless["outcome"] == "skipped"
    assert bad_fields["outcome"] == "create"
    assert bad_fields["contact"]["emails"] == ["fine@fields.example"]
    assert [w["field"] for w in bad_fields["warnings"]] == ["emails.0", "title", "birthday"]
    assert report["summary"] == {"rows": 4, "create": 2, "duplicate": 0, "skipped": 2}
    assert len(await contacts_of(client, alice)) == 2


# --- idempotency ------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_report(client: Client, alice: dict[str, Any]) -> None:
    first = await post_file(client, alice, fixture("ios.vcf"), key="import-1")
    assert first.status == 200
    report = await first.json()
    again = await post_file(client, alice, fixture("ios.vcf"), key="import-1")
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == report  # the first answer, not "3 duplicates"
    other = await post_file(client, alice, fixture("v4.vcf"), key="import-1")
    problem = await assert_problem(other, 422)
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert len(await contacts_of(client, alice)) == 3
    # A dry run ignores the key: it writes nothing, so there is nothing to replay.
    preview = await post_file(client, alice, fixture("v4.vcf"), dry_run=True, key="import-1")
    assert preview.status == 200
    assert "Idempotent-Replayed" not in preview.headers


async def test_imports_stay_in_their_owners_book(
    client: Client, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    await imported(client, alice, fixture("ios.vcf"))
    report = await imported(client, bob, fixture("ios.vcf"), dry_run=True)
    assert outcomes(report) == ["create"] * 3  # alice's contacts are not bob's duplicates
    assert await contacts_of(client, bob) == []


async def test_account_deletion_removes_import_idempotency_records(
    client: Client, alice: dict[str, Any]
) -> None:
    resp = await post_file(client, alice, fixture("ios.vcf"), key="k1")
    assert resp.status == 200
    db = client.app[DB]
    assert await db["idempotency"].count_documents({}) == 1
    resp = await client.delete("/v1/me", headers=bearer(alice))
    assert resp.status == 204
    assert await db["idempotency"].count_documents({}) == 0


# --- refusals ---------------------------------------------------------------------------------


async def test_needs_a_signed_in_user(client: Client) -> None:
    resp = await client.post(
        IMPORT, data=fixture("ios.vcf"), headers={"Content-Type": "text/vcard"}
    )
    await assert_problem(resp, 401)


@pytest.mark.parametrize(
    ("data", "content_type", "status", "detail"),
    [
        (b'{"name": "x"}', "application/json", 415, "text/vcard"),
        (b"", "text/vcard", 422, "no contacts"),
        (b"hello\r\n", "text/vcard", 422, "no vCard"),
        (b"a,b,c\r\n1,2,3\r\n", "text/csv", 422, "unrecognised file"),
        (b"First Name,Last Name,Mobile Phone\r\n", "text/csv", 422, "no contacts"),
        (b'"Given Name","Family Name"\r\n"unterminated\r\n', "text/csv", 422, "CSV does not parse"),
        (b"BEGIN:VCARD\r\nFN:\xff\xfe\xfa\r\nEND:VCARD\r\n", "text/vcard", 400, "not valid utf-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text/vcard", 400, "not valid utf-8"),
        (b"BEGIN:VCARD\x00\r\n", "text/vcard", 400, "NUL"),
        (b"x", "text/csv; charset=klingon", 415, "unknown charset"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 400, "form"),
        (b"--x--\r\n", "multipart/form-data; boundary=x", 400, "no 'file' part"),
    ],
)
async def test_unusable_files_are_4xx_problems_and_change_nothing(
    client: Client,
    alice: dict[str, Any],
    data: bytes,
    content_type: str,
    status: int,
    detail: str,
) -> None:
    resp = await post_file(client, alice, data, content_type)
    problem = await assert_problem(resp, status)
    assert detail.lower() in problem["detail"].lower()
    assert await contacts_of(client, alice) == []


async def test_a_bad_dry_run_flag_is_422(client: Client, alice: dict[str, Any]) -> None:
    resp = await client.post(
        IMPORT,
        data=fixture("ios.vcf"),
        params={"dry_run": "perhaps"},
        headers={**bearer(alice), "Content-Type": "text/vcard"},
    )
    problem = await assert_problem(resp, 422)
    assert problem["errors"][0]["field"] == "dry_run"


@pytest.mark.parametrize("settings_overrides", [{"import_max_bytes": 2048, "import_max_rows": 2}])
async def test_size_and_row_limits(client: Client, alice: dict[str, Any]) -> None:
    big = fixture("android.vcf") * 5
    assert len(big) > 2048
    problem = await assert_problem(await post_file(client, alice, big), 413)
    assert "2048 bytes" in problem["detail"]
    # Streamed without a Content-Length: the limit holds while reading.

    async def chunks() -> Any:
        for _ in range(5):
            yield fixture("android.vcf")

    resp = await client.post(
        IMPORT, data=chunks(), headers={**bearer(alice), "Content-Type": "text/vcard"}
    )
    await assert_problem(resp, 413)
    form = aiohttp.FormData()
    form.add_field("file", big, filename="big.vcf", content_type="text/vcard")
    resp = await client.post(IMPORT, data=form, headers=bearer(alice))
    await assert_problem(resp, 413)
    # Three cards where two are allowed.
    problem = await assert_problem(await post_file(client, alice, fixture("android.vcf")), 422)
    assert "at most 2 contacts" in problem["detail"]
    problem = await assert_problem(
        await post_file(client, alice, fixture("google.csv"), "text/csv"), 422
    )
    assert problem["errors"] == [{"field": "file", "message": "more than 2 contacts"}]
    assert await contacts_of(client, alice) == []


async def test_openapi_describes_the_upload(client: Client) -> None:
    resp = await client.get("/openapi.json")
    operation = (await resp.json())["paths"][IMPORT]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "text/vcard", "text/csv", "multipart/form-data",
    }  # fmt: skip
    assert {"200", "400", "409", "413", "415", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["dry_run", "Idempotency-Key"]


def many_cards(count: int) -> bytes:
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.5//EN\r\n"
        "N:Member{i};Chapter;;;\r\nFN:Chapter Member{i}\r\nORG:Firm {i};\r\n"
        "item1.EMAIL;type=INTERNET;type=pref:member{i}@chapter.example\r\n"
        "TEL;type=CELL;type=VOICE;type=pref:(415) 555-{i:04d}\r\n"
        "TEL;type=WORK:+1 212 555 {i:04d}\r\nBDAY:1980-04-12\r\nEND:VCARD\r\n"
    )
    return "".join(card.format(i=i) for i in range(count)).encode()


@pytest.mark.slow
async def test_a_thousand_cards_then_the_same_again(client: Client, alice: dict[str, Any]) -> None:
    data = many_cards(1000)
    assert len(data) > 256 * 1024  # well past the 64 KiB of JSON bodies
    preview = await imported(client, alice, data, dry_run=True)
    assert preview["summary"]["create"] == 1000
    form = aiohttp.FormData()
    form.add_field("file", data, filename="contacts.vcf", content_type="text/x-vcard")
    resp = await client.post(IMPORT, data=form, headers=bearer(alice), params={"dry_run": "true"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["summary"]["create"] == 1000
    report = await imported(client, alice, data)
    assert report["summary"] == {"rows": 1000, "create": 1000, "duplicate": 0, "skipped": 0}
    assert len(set(await contact_changes(client))) == 1000
    again = await imported(client, alice, data)
    assert again["summary"]["duplicate"] == 1000
