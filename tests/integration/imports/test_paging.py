"""Exports and error lists are read in keyset pages (bounded memory) without losing a row."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import contacts
from orchestrator.audience import AudienceFilter
from orchestrator.clock import FrozenClock
from orchestrator.contacts import ContactData
from orchestrator.db import transaction
from orchestrator.exports import attribute_names, export_text, exported_contacts
from orchestrator.imports import uploads
from orchestrator.imports.processing import process_import
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.imports.support import store_file


async def test_export_pages_cover_every_match_in_id_order(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    async with transaction(sessions) as s:
        for i in range(7):
            for ws in (tenant.workspace_id, other_tenant.workspace_id):
                await contacts.upsert_contact(
                    s,
                    resources.keyring,
                    workspace_id=ws,
                    data=ContactData(
                        email=f"p{i}@example.com",
                        tags=["chẵn" if i % 2 == 0 else "lẻ"],
                        attributes={f"k{i % 3}": i},
                    ),
                    now=T0,
                )
    pages = [
        page
        async for page in exported_contacts(
            sessions, workspace_id=tenant.workspace_id, audience=AudienceFilter(), page_size=2
        )
    ]
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    ids = [c.id for page in pages for c in page]
    assert ids == sorted(ids)
    assert sorted(c.email or "" for page in pages for c in page) == [
        f"p{i}@example.com" for i in range(7)
    ]
    even = AudienceFilter(tags_any=["chẵn"])
    assert await attribute_names(sessions, workspace_id=tenant.workspace_id, audience=even) == [
        "k0",
        "k1",
        "k2",
    ]
    text = "".join(
        [
            piece
            async for piece in export_text(
                sessions,
                workspace_id=tenant.workspace_id,
                audience=even,
                file_format="csv",
                page_size=3,
            )
        ]
    )
    lines = text.splitlines()
    assert (
        lines[0]
        == "email,name,locale,timezone,tags,consent_source,consent_at,attr.k0,attr.k1,attr.k2"
    )
    assert len(lines) == 1 + 4


async def test_errors_stream_in_line_order_across_pages(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    data = "email,locale\n" + "".join(f"bad{i},x!\n" for i in range(5))
    import_id = await store_file(
        sessions, clock, workspace_id=tenant.workspace_id, data=data.encode()
    )
    assert (
        await process_import(sessions, resources.keyring, clock, import_id=import_id) == "completed"
    )
    errors = [e async for e in uploads.stream_errors(sessions, import_id=import_id, page_size=3)]
    assert [(e.line, e.field) for e in errors] == [
        (line, field) for line in range(2, 7) for field in ("email", "locale")
    ]
