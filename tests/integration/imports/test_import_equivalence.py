"""An import leaves the database exactly as `contacts.upsert_contact` row by row would.

Two workspaces start from the same state (subscribed, unconfirmed, erased-and-suppressed and
opted-out contacts). One imports a mixed file in small batches over small chunks; the other gets
the same rows through `upsert_contact` with source "import". Contacts, identities, statuses,
tags, attributes and ledger rows must then match, address by address, and so must the counts.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import contacts
from orchestrator.clock import FrozenClock
from orchestrator.contacts import Consent, ContactData
from orchestrator.db import transaction
from orchestrator.imports import uploads
from orchestrator.imports.parsing import FIXED_COLUMNS, Format
from orchestrator.imports.processing import process_import
from orchestrator.imports.validation import ImportRow, validate
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.imports.support import import_row, state_by_address, store_file

DAY = timedelta(days=1)
EARLIER = T0 - 30 * DAY


def at(delta: timedelta) -> str:
    return (T0 + delta).isoformat()


# (email, name, locale, timezone, tags, consent_source, consent_at, attributes)
ROWS: list[dict[str, Any]] = [
    {
        "email": "moi@example.com",
        "name": "Nguyễn Văn Mới",
        "locale": "vi",
        "timezone": "Asia/Ho_Chi_Minh",
        "tags": ["x", "y"],
        "consent_source": "popup",
        "consent_at": at(-DAY),
    },
    {
        "email": "old@example.com",
        "name": "Cũ Mới",
        "tags": ["a", "b"],
        "consent_source": "popup",
        "consent_at": EARLIER.isoformat(),
    },
    {"email": "plain@example.com", "consent_source": "hotline", "consent_at": at(-2 * DAY)},
    {
        "email": "gone@example.com",
        "name": "Đã xoá",
        "consent_source": "popup",
        "consent_at": at(-DAY),
    },
    {"email": "not an address", "name": "Sai"},
    {
        "email": "MOI@example.com",
        "name": "Nguyễn Văn Mới Hơn",
        "tags": ["z"],
        "attributes": {"city": "Huế"},
    },
    {"email": "dup@example.com", "name": "Anh"},
    {"email": "dup@example.com", "name": "Anh"},
    {
        "email": "optout@example.com",
        "consent_source": "popup",
        "consent_at": at(-timedelta(hours=1)),
    },
    {"email": "old@example.com"},
    {"email": "Dup@Example.com", "tags": ["khách quen"], "attributes": {"n": "1"}},
    {
        "email": "future@example.com",
        "consent_source": "api",
        "consent_at": at(timedelta(minutes=6)),
    },
    {"email": "skew@example.com", "consent_source": "api", "consent_at": at(timedelta(minutes=3))},
    {"email": "gone@example.com", "consent_source": "popup", "consent_at": at(-3 * DAY)},
    {
        "email": "old@example.com",
        "consent_source": "comment",
        "consent_at": at(-5 * DAY),
        "attributes": {"x": "2"},
    },
    {"email": "dup@example.com", "locale": "english!"},
    {"email": "moi@example.com", "consent_source": "minigame", "consent_at": at(-DAY)},
]


def csv_file(rows: list[dict[str, Any]]) -> bytes:
    names = sorted({k for row in rows for k in row.get("attributes", {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*FIXED_COLUMNS, *(f"attr.{n}" for n in names)])
    for row in rows:
        writer.writerow(
            [";".join(row.get(k, [])) if k == "tags" else row.get(k, "") for k in FIXED_COLUMNS]
            + [row.get("attributes", {}).get(n, "") for n in names]
        )
    return ("\ufeff" + buffer.getvalue()).encode()


def jsonl_file(rows: list[dict[str, Any]]) -> bytes:
    # JSON Lines can also remove an attribute with null.
    extra = [{"email": "old@example.com", "attributes": {"x": None, "y": 3}}]
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows + extra).encode()


async def seed(
    sessions: async_sessionmaker[AsyncSession], resources: Resources, tenant: Tenant
) -> None:
    ring, ws = resources.keyring, tenant.workspace_id
    async with transaction(sessions) as s:
        for data in (
            ContactData(
                email="old@example.com",
                name="Cũ",
                tags=["a"],
                attributes={"x": "1"},
                consent=Consent("popup", EARLIER),
            ),
            ContactData(email="plain@example.com"),
            ContactData(email="gone@example.com", name="Sẽ xoá"),
            ContactData(email="optout@example.com", consent=Consent("popup", EARLIER)),
        ):
            await contacts.upsert_contact(s, ring, workspace_id=ws, data=data, now=EARLIER)
    async with transaction(sessions) as s:
        gone, _ = await contacts.upsert_contact(
            s, ring, workspace_id=ws, data=ContactData(email="gone@example.com"), now=EARLIER
        )
        await contacts.erase_contact(
            s, ring, workspace_id=ws, contact_id=gone.id, now=EARLIER + DAY
        )
        optout, _ = await contacts.upsert_contact(
            s, ring, workspace_id=ws, data=ContactData(email="optout@example.com"), now=EARLIER
        )
        identity = await contacts._email_of(s, optout.id)
        assert identity is not None
        await contacts.record_consent(
            s,
            identity=identity,
            action="unsubscribe",
            consent=Consent("unsubscribe_link", EARLIER + DAY),
            now=EARLIER + DAY,
        )


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
async def test_import_matches_upsert_contact_row_by_row(
    file_format: Format,
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(sessions, resources, tenant)
    await seed(sessions, resources, other_tenant)
    data = csv_file(ROWS) if file_format == "csv" else jsonl_file(ROWS)
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 97)  # rows cross chunk boundaries
    import_id = await store_file(
        sessions,
        clock,
        workspace_id=tenant.workspace_id,
        data=data,
        file_format=file_format,
        piece=13,
    )
    outcome = await process_import(
        sessions, resources.keyring, clock, import_id=import_id, batch_rows=4
    )
    assert outcome == "completed"

    # The reference: the same rows through the single-contact service, one transaction each.
    expected = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    records = [json.loads(line) for line in jsonl_file(ROWS).decode().splitlines()]
    if file_format == "csv":
        records = records[: len(ROWS)]
    for line, values in enumerate(records, start=2 if file_format == "csv" else 1):
        row = validate(values, line=line, now=T0)
        if not isinstance(row, ImportRow):
            expected["failed"] += 1
            continue
        async with transaction(sessions) as s:
            _, result = await contacts.upsert_contact(
                s,
                resources.keyring,
                workspace_id=other_tenant.workspace_id,
                data=ContactData(
                    email=row.address,
                    name=row.name,
                    locale=row.locale,
                    timezone=row.timezone,
                    tags=row.tags,
                    attributes=row.attributes,
                    consent=row.consent,
                    source="import",
                ),
                now=T0,
            )
        expected[result] += 1

    done = await import_row(sessions, import_id)
    assert (done.status, done.lines) == ("completed", len(records))
    assert {k: getattr(done, k) for k in expected} == expected
    assert expected["failed"] == 3 and expected["created"] >= 4 and expected["unchanged"] >= 2

    imported = await state_by_address(sessions, tenant.workspace_id)
    reference = await state_by_address(sessions, other_tenant.workspace_id)
    assert imported == reference
    people = imported["people"]
    assert people["gone@example.com"]["status"] == "unsubscribed"
    assert people["optout@example.com"]["status"] == "unsubscribed"
    assert people["plain@example.com"]["status"] == "subscribed"
    assert people["moi@example.com"]["name"] == "Nguyễn Văn Mới Hơn"
    assert people["dup@example.com"]["tags"] == ["khách quen"]
