"""`/v1/contacts/imports` and `/v1/contacts/export` on both databases."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.app import create_app
from orchestrator.imports import uploads
from orchestrator.models import ConsentRecord, ContactImport, ContactImportChunk, table_of
from orchestrator.resources import Resources
from tests.fixtures.api import Tenant

PROBLEM = "application/problem+json"
HEADER = "email,name,locale,timezone,tags,consent_source,consent_at,attr.city\n"
VIETNAMESE = ["Nguyễn Thị Lan", "Trần Văn Đức", "Lê Hoàng Yến", "Phạm Thị Ngọc Ánh"]


async def upload(
    client: httpx.AsyncClient,
    tenant: Tenant,
    content: bytes | AsyncIterator[bytes],
    content_type: str = "text/csv",
    **extra: str,
) -> httpx.Response:
    headers = {**tenant.headers, "content-type": content_type, **extra.pop("headers", {})}  # type: ignore[dict-item]
    return await client.post("/v1/contacts/imports", headers=headers, content=content, params=extra)


async def finished(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, response: httpx.Response
) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    await app.state.import_runner.drain()
    status = await client.get(response.headers["location"], headers=tenant.headers)
    assert status.status_code == 200
    body: dict[str, Any] = status.json()
    return body


async def errors_of(
    client: httpx.AsyncClient, tenant: Tenant, import_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/contacts/imports/{import_id}/errors", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


async def all_contacts(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    response = await client.get("/v1/contacts", headers=tenant.headers, params={"limit": 500})
    return {c["email"]["address"]: c for c in response.json()["data"] if c["email"]}


def csv_rows(*rows: str) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


async def test_csv_import_creates_contacts_and_reports_counts(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant
) -> None:
    data = csv_rows(
        f"lan@example.com,{VIETNAMESE[0]},vi,Asia/Ho_Chi_Minh,vip;áo dài,popup,2026-11-19T10:00:00+07:00,Huế",
        f"DUC@Example.com,{VIETNAMESE[1]},,,,,,Đà Nẵng",
    )
    response = await upload(client, tenant, data)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["id"].startswith("im_")
    assert accepted["status"] == "pending"
    assert accepted["bytes_received"] == len(data)
    assert response.headers["location"] == f"/v1/contacts/imports/{accepted['id']}"
    body = await finished(client, app, tenant, response)
    assert {
        k: body[k]
        for k in ("status", "format", "lines", "created", "updated", "unchanged", "failed")
    } == {
        "status": "completed",
        "format": "csv",
        "lines": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert body["finished_at"] is not None
    people = await all_contacts(client, tenant)
    lan = people["lan@example.com"]
    assert (lan["name"], lan["locale"], lan["timezone"]) == (
        VIETNAMESE[0],
        "vi",
        "Asia/Ho_Chi_Minh",
    )
    assert lan["tags"] == sorted(["vip", "áo dài"])
    assert lan["attributes"] == {"city": "Huế"}
    assert lan["email"]["status"] == "subscribed"
    assert people["duc@example.com"]["email"]["status"] == "unconfirmed"
    assert people["duc@example.com"]["name"] == VIETNAMESE[1]


@pytest.mark.parametrize(
    ("content_type", "params"),
    [
        ("application/x-ndjson", {}),
        ("application/jsonl", {}),
        ("application/octet-stream", {"format": "jsonl"}),
    ],
)
async def test_jsonl_import_with_attribute_objects_and_tag_lists(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    content_type: str,
    params: dict[str, str],
) -> None:
    lines = [
        {
            "email": "anh@example.com",
            "name": VIETNAMESE[3],
            "tags": ["vip", "khách quen"],
            "attributes": {"điểm": 12, "hạng": {"mức": "vàng"}},
        },
        {
            "email": "yen@example.com",
            "name": VIETNAMESE[2],
            "consent_source": "minigame",
            "consent_at": "2026-11-18T12:00:00Z",
            "attr.city": "Huế",
        },
    ]
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    body = await finished(
        client, app, tenant, await upload(client, tenant, data, content_type, **params)
    )
    assert (body["status"], body["format"], body["created"]) == ("completed", "jsonl", 2)
    people = await all_contacts(client, tenant)
    assert people["anh@example.com"]["attributes"] == {"điểm": 12, "hạng": {"mức": "vàng"}}
    assert people["anh@example.com"]["tags"] == sorted(["vip", "khách quen"])
    assert people["yen@example.com"]["attributes"] == {"city": "Huế"}
    assert people["yen@example.com"]["email"]["status"] == "subscribed"


async def test_invalid_rows_are_listed_with_line_and_field_and_never_stop_the_import(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant
) -> None:
    data = csv_rows(
        "ok1@example.com,Một,,,,,,",
        "not-an-email,Hai,,,,,,",
        'ok2@example.com,"Ba\nnhiều dòng",english!,Mars/Olympus,,,,',
        "ok3@example.com,Bốn,,,,hotline,,",
        "ok4@example.com,Năm,,,,,,",
    )
    body = await finished(client, app, tenant, await upload(client, tenant, data))
    assert (body["status"], body["lines"], body["created"], body["failed"]) == (
        "completed",
        5,
        2,
        3,
    )
    errors = await errors_of(client, tenant, body["id"])
    assert [(e["line"], e["field"]) for e in errors] == [
        (3, "email"),
        (4, "locale"),
        (4, "timezone"),
        (6, "consent_at"),
    ]
    assert errors[0]["message"] == "An email address must have an @-sign."
    assert set(await all_contacts(client, tenant)) == {"ok1@example.com", "ok4@example.com"}


async def test_reimporting_the_same_file_changes_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    data = csv_rows(
        f"lan@example.com,{VIETNAMESE[0]},vi,,vip;sale,popup,2026-11-19T10:00:00+07:00,Huế",
        f"duc@example.com,{VIETNAMESE[1]},,,,hotline,2026-11-01T00:00:00Z,",
    )
    await finished(client, app, tenant, await upload(client, tenant, data))
    before = await all_contacts(client, tenant)
    ledger = table_of(ConsentRecord)
    async with sessions() as s:
        ledger_before = (
            await s.execute(sa.select(sa.func.count()).select_from(ledger))
        ).scalar_one()
    again = await finished(client, app, tenant, await upload(client, tenant, data))
    assert {k: again[k] for k in ("lines", "created", "updated", "unchanged", "failed")} == {
        "lines": 2,
        "created": 0,
        "updated": 0,
        "unchanged": 2,
        "failed": 0,
    }
    assert await all_contacts(client, tenant) == before
    async with sessions() as s:
        assert (
            await s.execute(sa.select(sa.func.count()).select_from(ledger))
        ).scalar_one() == ledger_before


async def test_a_suppressed_address_stays_unsubscribed_whatever_is_imported(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "email": "gone@example.com",
            "consent_source": "popup",
            "consent_at": "2026-11-01T00:00:00Z",
        },
    )
    erased = await client.delete(f"/v1/contacts/{created.json()['id']}", headers=tenant.headers)
    assert erased.status_code == 204
    for consent_at in ("2026-11-19T00:00:00Z", "2026-11-20T08:00:00Z"):
        data = csv_rows(f"gone@example.com,Quay lại,,,,popup,{consent_at},")
        body = await finished(client, app, tenant, await upload(client, tenant, data))
        assert body["failed"] == 0
        gone = (await all_contacts(client, tenant))["gone@example.com"]
        assert gone["email"]["status"] == "unsubscribed"
        listed = await client.get(
            "/v1/contacts", headers=tenant.headers, params={"email_status": "subscribed"}
        )
        assert listed.json()["data"] == []


async def test_bom_and_quoted_fields_across_chunk_boundaries(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 20)
    names = [f'{name}\r\n(dòng hai, có "ngoặc")' for name in VIETNAMESE]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name", "tags"])
    for index, name in enumerate(names):
        writer.writerow([f"p{index}@example.com", name, "một;hai"])
    data = ("\ufeff" + buffer.getvalue()).encode()

    async def trickle() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7):
            yield data[start : start + 7]

    body = await finished(client, app, tenant, await upload(client, tenant, trickle()))
    assert (body["status"], body["created"], body["failed"], body["bytes_received"]) == (
        "completed",
        4,
        0,
        len(data),
    )
    people = await all_contacts(client, tenant)
    assert [people[f"p{i}@example.com"]["name"] for i in range(4)] == names
    assert people["p0@example.com"]["tags"] == ["hai", "một"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "text/csv; charset=latin-1", ""]
)
async def test_other_media_types_are_415(
    client: httpx.AsyncClient, tenant: Tenant, content_type: str
) -> None:
    response = await upload(client, tenant, b"email\na@example.com\n", content_type)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:outreach:problem:unsupported-media-type"


async def test_unknown_format_parameter_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await upload(client, tenant, b"email\n", "text/csv", format="xlsx")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.format"


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "text/csv", "cannot be read"),
        (b"name,phone\nAn,0900\n", "text/csv", "Unknown column 'phone'"),
        (b"name,tags\nAn,x\n", "text/csv", "no email column"),
        (b"\x00\x01\x02\x03binary", "application/x-ndjson", "not JSON Lines"),
        (b"", "text/csv", "The file is empty"),
    ],
)
async def test_unreadable_files_fail_with_a_clear_error(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    data: bytes,
    content_type: str,
    message: str,
) -> None:
    body = await finished(client, app, tenant, await upload(client, tenant, data, content_type))
    assert body["status"] == "failed"
    assert message in body["error"]
    assert body["lines"] == 0


async def test_imports_may_exceed_the_normal_body_limit_but_other_bodies_may_not(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant
) -> None:
    big_note = "x" * 100_000
    data = csv_rows(*(f"p{i}@example.com,Người {i},,,,,,{big_note}" for i in range(11)))
    assert len(data) > 1_048_576
    body = await finished(client, app, tenant, await upload(client, tenant, data))
    assert (body["status"], body["created"], body["bytes_received"]) == ("completed", 11, len(data))
    refused = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={"email": "a@example.com", "attributes": {"n": big_note * 11}},
    )
    assert refused.status_code == 413
    assert refused.headers["content-type"] == PROBLEM


async def test_imports_have_their_own_limit(
    resources: Resources, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = resources.settings.model_copy(update={"import_max_bytes": 4096})
    small = create_app(settings, resources=resources, run_scheduler=False)
    transport = httpx.ASGITransport(app=small)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        declared = await upload(client, tenant, b"email\n" + b"a@example.com\n" * 400)
        assert declared.status_code == 413

        async def streamed() -> AsyncIterator[bytes]:
            yield b"email\n"
            for _ in range(400):
                yield b"a@example.com\n"

        chunked = await upload(client, tenant, streamed())
        assert chunked.status_code == 413
        assert chunked.headers["content-type"] == PROBLEM
    imports, chunks = table_of(ContactImport), table_of(ContactImportChunk)
    async with sessions() as s:
        rows = (await s.execute(sa.select(imports.c.status, imports.c.error))).all()
        assert [tuple(r) for r in rows] == [("failed", "The upload was interrupted")]
        assert (await s.execute(sa.select(sa.func.count()).select_from(chunks))).scalar_one() == 0


async def test_idempotency_key_replays_the_first_import_and_refuses_another_body(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    data = csv_rows("lan@example.com,Lan,,,,,,")
    key = {"headers": {"Idempotency-Key": "import-2026-11-20"}}
    first = await upload(client, tenant, data, **key)  # type: ignore[arg-type]
    assert first.status_code == 202
    await app.state.import_runner.drain()
    again = await upload(client, tenant, data, **key)  # type: ignore[arg-type]
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other = await upload(client, tenant, csv_rows("duc@example.com,Đức,,,,,,"), **key)  # type: ignore[arg-type]
    assert other.status_code == 422
    assert other.json()["type"] == "urn:outreach:problem:idempotency-key-reused"
    await app.state.import_runner.drain()
    async with sessions() as s:
        count = (
            await s.execute(sa.select(sa.func.count()).select_from(table_of(ContactImport)))
        ).scalar_one()
    assert count == 1
    assert set(await all_contacts(client, tenant)) == {"lan@example.com"}


async def test_another_workspace_sees_neither_the_import_nor_its_contacts(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, other_tenant: Tenant
) -> None:
    data = csv_rows("lan@example.com,Lan,,,,,,", "bad,Sai,,,,,,")
    body = await finished(client, app, tenant, await upload(client, tenant, data))
    for path in (f"/v1/contacts/imports/{body['id']}", f"/v1/contacts/imports/{body['id']}/errors"):
        response = await client.get(path, headers=other_tenant.headers)
        assert response.status_code == 404
        assert response.json()["type"] == "urn:outreach:problem:import-not-found"
    assert len(await errors_of(client, tenant, body["id"])) == 1
    for file_format in ("csv", "jsonl"):
        theirs = await client.get(
            "/v1/contacts/export", headers=other_tenant.headers, params={"format": file_format}
        )
        assert theirs.status_code == 200
        assert "lan@example.com" not in theirs.text
    mine = await client.get("/v1/contacts/export", headers=tenant.headers)
    assert "lan@example.com" in mine.text


async def test_upload_without_a_key_is_401_before_reading(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/contacts/imports", headers={"content-type": "text/csv"}, content=b"email\n"
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


# -- export ------------------------------------------------------------------------------------


async def seed_for_export(client: httpx.AsyncClient, tenant: Tenant) -> None:
    bodies: list[dict[str, Any]] = [
        {
            "email": "lan@example.com",
            "name": VIETNAMESE[0],
            "locale": "vi",
            "timezone": "Asia/Ho_Chi_Minh",
            "tags": ["vip", "áo dài"],
            "attributes": {"city": "Huế", "điểm": 12},
            "consent_source": "popup",
            "consent_at": "2026-11-19T10:00:00+07:00",
        },
        {
            "email": "-dash@example.com",
            "name": '=HYPERLINK("http://evil")',
            "tags": ["+1", "@mention"],
            "attributes": {"note": "-5"},
        },
        {"email": "plain@example.com", "name": "'Connor", "tags": ["vip"]},
        {
            "email": "duc@example.com",
            "name": VIETNAMESE[1],
            "consent_source": "hotline",
            "consent_at": "2026-11-01T00:00:00Z",
        },
    ]
    for body in bodies:
        response = await client.post("/v1/contacts", headers=tenant.headers, json=body)
        assert response.status_code == 201, response.text
    duc = (await all_contacts(client, tenant))["duc@example.com"]
    await client.delete(f"/v1/contacts/{duc['id']}", headers=tenant.headers)


async def test_csv_export_has_the_import_header_and_defuses_formulas(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await seed_for_export(client, tenant)
    response = await client.get(
        "/v1/contacts/export", headers=tenant.headers, params={"format": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="contacts.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "email", "name", "locale", "timezone", "tags", "consent_source", "consent_at",
        "attr.city", "attr.note", "attr.điểm",
    ]  # fmt: skip
    by_email = {row[0]: row for row in rows[1:]}
    assert set(by_email) == {"lan@example.com", "'-dash@example.com", "plain@example.com"}
    assert by_email["lan@example.com"] == [
        "lan@example.com", VIETNAMESE[0], "vi", "Asia/Ho_Chi_Minh", "vip;áo dài", "popup",
        "2026-11-19T03:00:00+00:00", "Huế", "", "12",
    ]  # fmt: skip
    dash = by_email["'-dash@example.com"]
    assert dash[1] == '\'=HYPERLINK("http://evil")'
    assert dash[4] == "'+1;@mention"
    assert dash[8] == "'-5"
    assert by_email["plain@example.com"][1] == "''Connor"
    filtered = await client.get(
        "/v1/contacts/export",
        headers=tenant.headers,
        params={"tags_all": "vip", "email_status": "subscribed"},
    )
    assert [row[0] for row in csv.reader(io.StringIO(filtered.text))][1:] == ["lan@example.com"]


async def test_jsonl_export_is_not_altered(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await seed_for_export(client, tenant)
    response = await client.get(
        "/v1/contacts/export", headers=tenant.headers, params={"format": "jsonl"}
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    by_email = {line["email"]: line for line in lines}
    assert by_email["-dash@example.com"]["name"] == '=HYPERLINK("http://evil")'
    assert by_email["lan@example.com"] == {
        "email": "lan@example.com",
        "name": VIETNAMESE[0],
        "locale": "vi",
        "timezone": "Asia/Ho_Chi_Minh",
        "tags": ["vip", "áo dài"],
        "consent_source": "popup",
        "consent_at": "2026-11-19T03:00:00+00:00",
        "attributes": {"city": "Huế", "điểm": 12},
    }
    assert by_email["plain@example.com"]["consent_source"] is None


def comparable(people: dict[str, dict[str, Any]]) -> dict[str, tuple[object, ...]]:
    return {
        address: (
            p["name"],
            p["locale"],
            p["timezone"],
            p["tags"],
            p["attributes"],
            p["email"]["status"],
        )
        for address, p in people.items()
    }


@pytest.mark.parametrize(
    ("file_format", "content_type"), [("csv", "text/csv"), ("jsonl", "application/x-ndjson")]
)
async def test_export_then_import_into_another_workspace_reproduces_the_contacts(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    other_tenant: Tenant,
    file_format: str,
    content_type: str,
) -> None:
    await seed_for_export(client, tenant)
    exported = await client.get(
        "/v1/contacts/export", headers=tenant.headers, params={"format": file_format}
    )
    body = await finished(
        client,
        app,
        other_tenant,
        await upload(client, other_tenant, exported.content, content_type),
    )
    assert (body["status"], body["created"], body["failed"]) == ("completed", 3, 0)
    mine, theirs = (
        comparable(await all_contacts(client, tenant)),
        comparable(await all_contacts(client, other_tenant)),
    )
    if file_format == "csv":
        # CSV carries attribute values as text (documented); JSON Lines keeps their types.
        mine["lan@example.com"] = (
            *mine["lan@example.com"][:4],
            {"city": "Huế", "điểm": "12"},
            "subscribed",
        )
    assert theirs == mine
    again = await client.get(
        "/v1/contacts/export", headers=other_tenant.headers, params={"format": file_format}
    )
    # Ids (the export order) differ between workspaces; the lines (and CSV header) do not.
    assert again.text.splitlines()[0].startswith("email,") == (file_format == "csv")
    assert sorted(again.text.splitlines()) == sorted(exported.text.splitlines())
