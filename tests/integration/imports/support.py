"""Helpers for import tests: store a file, and read a workspace's contact state by address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import Clock
from orchestrator.db import transaction
from orchestrator.imports import uploads
from orchestrator.imports.parsing import Format
from orchestrator.models import (
    ConsentRecord,
    Contact,
    ContactImport,
    ContactTag,
    EmailIdentity,
    table_of,
)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def store_file(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    workspace_id: str,
    data: bytes,
    file_format: Format = "csv",
    piece: int = 1 << 16,
) -> str:
    """What `POST /v1/contacts/imports` stores, without starting the processing."""
    received = await uploads.receive(
        sessions,
        clock,
        workspace_id=workspace_id,
        file_format=file_format,
        body=pieces(data, piece),
    )
    async with transaction(sessions) as session:
        await uploads.mark_received(session, import_id=received.import_id, now=clock.now())
    return received.import_id


async def import_row(sessions: async_sessionmaker[AsyncSession], import_id: str) -> Any:
    t = table_of(ContactImport)
    async with sessions() as session:
        return (await session.execute(sa.select(t).where(t.c.id == import_id))).one()


async def state_by_address(
    sessions: async_sessionmaker[AsyncSession], workspace_id: str
) -> dict[str, Any]:
    """Everything an import may touch, keyed by address instead of by (random) ids."""
    contacts, emails = table_of(Contact), table_of(EmailIdentity)
    tags, ledger = table_of(ContactTag), table_of(ConsentRecord)
    async with sessions() as session:
        people = (
            await session.execute(
                sa.select(
                    emails.c.address,
                    emails.c.status,
                    emails.c.status_changed_at,
                    emails.c.created_at.label("identity_created_at"),
                    contacts.c.id,
                    contacts.c.name,
                    contacts.c.locale,
                    contacts.c.timezone,
                    contacts.c.attributes,
                    contacts.c.merged_into,
                    contacts.c.created_at,
                    contacts.c.updated_at,
                )
                .join(contacts, contacts.c.id == emails.c.contact_id)
                .where(emails.c.workspace_id == workspace_id)
            )
        ).all()
        address_of = {row.id: row.address for row in people}
        tag_rows = (
            await session.execute(
                sa.select(tags.c.contact_id, tags.c.tag).where(tags.c.workspace_id == workspace_id)
            )
        ).all()
        ledger_rows = (
            await session.execute(
                sa.select(
                    ledger.c.contact_id,
                    ledger.c.address,
                    ledger.c.channel,
                    ledger.c.action,
                    ledger.c.source,
                    ledger.c.occurred_at,
                    ledger.c.created_at,
                    ledger.c.redacted,
                    ledger.c.topic,
                    ledger.c.ip,
                ).where(ledger.c.workspace_id == workspace_id)
            )
        ).all()
        contact_count = (
            await session.execute(
                sa.select(sa.func.count()).where(contacts.c.workspace_id == workspace_id)
            )
        ).scalar_one()
    return {
        "contacts": contact_count,
        "people": {
            row.address: {
                "status": row.status,
                "status_changed_at": row.status_changed_at,
                "identity_created_at": row.identity_created_at,
                "name": row.name,
                "locale": row.locale,
                "timezone": row.timezone,
                "attributes": row.attributes,
                "merged_into": row.merged_into,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "tags": sorted(tag for cid, tag in tag_rows if cid == row.id),
            }
            for row in people
        },
        "tags": len(tag_rows),
        "ledger": sorted(
            (
                (
                    address_of.get(row.contact_id, "(gone)"),
                    row.address or "",
                    row.channel,
                    row.action,
                    row.source,
                    row.occurred_at.isoformat(),
                    row.created_at.isoformat(),
                    row.redacted,
                    row.topic or "",
                    row.ip or "",
                )
                for row in ledger_rows
            ),
        ),
    }
