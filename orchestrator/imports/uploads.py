"""Receiving an import file and reading imports back.

`receive` is shell code like a job: the body streams into `contact_import_chunks` rows of about
1 MiB, each written in its own short transaction (on SQLite every transaction holds the write
lock, so one transaction per upload would block every other writer for as long as the upload
lasts). The body never sits in memory; its SHA-256 is computed on the way for Idempotency-Key.
The other functions are services: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import Clock
from orchestrator.db import transaction
from orchestrator.errors import NotFound
from orchestrator.ids import new_id
from orchestrator.imports.parsing import Format
from orchestrator.models import ContactImport, ContactImportChunk, ContactImportError, table_of

CHUNK_BYTES: Final = 1 << 20
STATUSES: Final = ("receiving", "pending", "processing", "completed", "failed")


class ImportNotFound(NotFound):
    slug = "import-not-found"
    title = "Import not found"


@dataclass(frozen=True)
class ImportView:
    id: str
    status: str
    format: str
    bytes_received: int
    lines: int
    created: int
    updated: int
    unchanged: int
    failed: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Received:
    import_id: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ErrorLine:
    line: int
    field: str
    message: str


def _imports() -> sa.Table:
    return table_of(ContactImport)


async def _store_chunk(
    sessions: async_sessionmaker[AsyncSession], import_id: str, seq: int, data: bytes, now: datetime
) -> None:
    t = _imports()
    async with transaction(sessions) as session:
        await session.execute(
            sa.insert(table_of(ContactImportChunk)).values(import_id=import_id, seq=seq, data=data)
        )
        await session.execute(
            sa.update(t)
            .where(t.c.id == import_id)
            .values(chunks=seq + 1, bytes_received=t.c.bytes_received + len(data), updated_at=now)
        )


async def receive(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    workspace_id: str,
    file_format: Format,
    body: AsyncIterator[bytes],
) -> Received:
    """Store the body as a new import in status `receiving`. If reading the body fails (client
    gone, body too large), the import ends as failed and its chunks are dropped."""
    import_id = new_id("im")
    now = clock.now()
    async with transaction(sessions) as session:
        session.add(
            ContactImport(
                id=import_id,
                workspace_id=workspace_id,
                format=file_format,
                status="receiving",
                created_at=now,
                updated_at=now,
            )
        )
    digest = hashlib.sha256()
    buffer = bytearray()
    seq = size = 0
    try:
        async for piece in body:
            digest.update(piece)
            size += len(piece)
            buffer += piece
            if len(buffer) >= CHUNK_BYTES:
                await _store_chunk(sessions, import_id, seq, bytes(buffer), clock.now())
                buffer.clear()
                seq += 1
        if buffer:
            await _store_chunk(sessions, import_id, seq, bytes(buffer), clock.now())
    except Exception:
        async with transaction(sessions) as session:
            await abandon(
                session, import_id=import_id, reason="The upload was interrupted", now=clock.now()
            )
        raise
    return Received(import_id, digest.hexdigest(), size)


async def abandon(session: AsyncSession, *, import_id: str, reason: str, now: datetime) -> None:
    t = _imports()
    await session.execute(
        sa.update(t)
        .where(t.c.id == import_id)
        .values(status="failed", error=reason, finished_at=now, updated_at=now)
    )
    chunks = table_of(ContactImportChunk)
    await session.execute(sa.delete(chunks).where(chunks.c.import_id == import_id))


async def mark_received(session: AsyncSession, *, import_id: str, now: datetime) -> None:
    t = _imports()
    await session.execute(
        sa.update(t)
        .where(t.c.id == import_id, t.c.status == "receiving")
        .values(status="pending", updated_at=now)
    )


async def discard(session: AsyncSession, *, import_id: str) -> None:
    """Forget an upload entirely (a replayed Idempotency-Key answers with the first import)."""
    for model in (ContactImportChunk, ContactImportError):
        table = table_of(model)
        await session.execute(sa.delete(table).where(table.c.import_id == import_id))
    t = _imports()
    await session.execute(sa.delete(t).where(t.c.id == import_id))


async def get_import(session: AsyncSession, *, workspace_id: str, import_id: str) -> ImportView:
    t = _imports()
    row = (
        await session.execute(
            sa.select(t).where(t.c.id == import_id, t.c.workspace_id == workspace_id)
        )
    ).first()
    if row is None:
        raise ImportNotFound(f"No import {import_id!r}")
    return ImportView(
        id=row.id,
        status=row.status,
        format=row.format,
        bytes_received=row.bytes_received,
        lines=row.lines,
        created=row.created,
        updated=row.updated,
        unchanged=row.unchanged,
        failed=row.failed,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


async def error_page(
    session: AsyncSession, *, import_id: str, after: tuple[int, str] | None, limit: int
) -> list[ErrorLine]:
    table = table_of(ContactImportError)
    query = (
        sa.select(table.c.line, table.c.field, table.c.message)
        .where(table.c.import_id == import_id)
        .order_by(table.c.line, table.c.field)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(table.c.line, table.c.field) > sa.tuple_(*after))
    rows = await session.execute(query)
    return [ErrorLine(line, field, message) for line, field, message in rows]


async def stream_errors(
    sessions: async_sessionmaker[AsyncSession], *, import_id: str, page_size: int = 1000
) -> AsyncIterator[ErrorLine]:
    """All errors in line order, read a page per short transaction (keyset on line and field)."""
    after: tuple[int, str] | None = None
    while True:
        async with transaction(sessions) as session:
            page = await error_page(session, import_id=import_id, after=after, limit=page_size)
        for item in page:
            yield item
        if len(page) < page_size:
            return
        after = (page[-1].line, page[-1].field)
