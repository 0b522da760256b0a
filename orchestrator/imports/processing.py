"""Processing a stored import in batches that survive crashes (the shell around `applying`).

Each batch is one transaction that checks the lease and the position it started from, writes the
rows, their errors and the import's new position and counts together: a crash loses at most the
batch in flight, and whoever resumes starts at the last committed position, counting nothing
twice. The lease (`lease_owner`, `lease_expires_at`) is taken with a conditional UPDATE, so two
workers never process the same import; a worker that lost its lease stops at its next batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import Clock
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts, transaction
from orchestrator.ids import new_id
from orchestrator.imports.applying import BatchResult, apply_rows
from orchestrator.imports.parsing import (
    START,
    CsvReader,
    FileUnreadable,
    Format,
    Position,
    Record,
    RecordReader,
    reader_for,
)
from orchestrator.imports.validation import ImportRow, RowError, unreadable, validate
from orchestrator.models import ContactImport, ContactImportChunk, ContactImportError, table_of

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=60)
BATCH_ROWS: Final = 2000
# A batch stops early after reading this many chunks, so rows of huge lines stay bounded in memory.
_CHUNKS_PER_BATCH: Final = 2
_ATTEMPTS: Final = 3
ABANDONED_AFTER: Final = timedelta(hours=1)
Outcome = Literal["completed", "failed", "lease-lost", "stopped"]


class LeaseLost(Exception):
    """Another worker holds the import now (or it moved on); this one stops."""


@dataclass(frozen=True)
class ClaimedImport:
    id: str
    workspace_id: str
    format: Format
    chunks: int
    position: Position


def _imports() -> sa.Table:
    return table_of(ContactImport)


async def claim(
    session: AsyncSession, *, import_id: str, owner: str, now: datetime
) -> ClaimedImport | None:
    """Take the lease if the import waits for processing and nobody holds a live lease on it."""
    t = _imports()
    row = (
        await session.execute(
            sa.update(t)
            .where(
                t.c.id == import_id,
                t.c.status.in_(("pending", "processing")),
                sa.or_(t.c.lease_owner.is_(None), t.c.lease_expires_at < now),
            )
            .values(
                status="processing", lease_owner=owner, lease_expires_at=now + LEASE, updated_at=now
            )
            .returning(
                t.c.workspace_id,
                t.c.format,
                t.c.chunks,
                t.c.next_chunk,
                t.c.next_offset,
                t.c.next_line,
            )
        )
    ).first()
    if row is None:
        return None
    return ClaimedImport(
        id=import_id,
        workspace_id=row.workspace_id,
        format=row.format,
        chunks=row.chunks,
        position=Position(row.next_chunk, row.next_offset, row.next_line),
    )


async def claimable(session: AsyncSession, *, now: datetime, limit: int = 20) -> list[str]:
    t = _imports()
    rows = await session.execute(
        sa.select(t.c.id)
        .where(
            t.c.status.in_(("pending", "processing")),
            sa.or_(t.c.lease_owner.is_(None), t.c.lease_expires_at < now),
        )
        .order_by(t.c.created_at, t.c.id)
        .limit(limit)
    )
    return list(rows.scalars())


async def _hold(
    session: AsyncSession, job: ClaimedImport, owner: str, at: Position, now: datetime
) -> None:
    """Renew the lease, in the batch's transaction, only if we still hold it at this position.

    On PostgreSQL this also locks the import row until the batch commits, so a competing claim
    waits and then sees the renewed lease."""
    t = _imports()
    held = await session.execute(
        sa.update(t)
        .where(
            t.c.id == job.id,
            t.c.status == "processing",
            t.c.lease_owner == owner,
            t.c.next_chunk == at.chunk,
            t.c.next_offset == at.offset,
            t.c.next_line == at.line,
        )
        .values(lease_expires_at=now + LEASE)
        .returning(t.c.id)
    )
    if held.first() is None:
        raise LeaseLost(job.id)


async def _advance(
    session: AsyncSession,
    job: ClaimedImport,
    *,
    to: Position,
    lines: int,
    failed: int,
    result: BatchResult,
    finished: bool,
    now: datetime,
) -> None:
    t = _imports()
    values: dict[str, object] = {
        "next_chunk": to.chunk,
        "next_offset": to.offset,
        "next_line": to.line,
        "lines": t.c.lines + lines,
        "created": t.c.created + result.created,
        "updated": t.c.updated + result.updated,
        "unchanged": t.c.unchanged + result.unchanged,
        "failed": t.c.failed + failed,
        "updated_at": now,
    }
    if finished:
        values.update(status="completed", finished_at=now, lease_owner=None, lease_expires_at=None)
    await session.execute(sa.update(t).where(t.c.id == job.id).values(**values))
    if finished:
        await _drop_chunks(session, job.id)


async def _drop_chunks(session: AsyncSession, import_id: str) -> None:
    chunks = table_of(ContactImportChunk)
    await session.execute(sa.delete(chunks).where(chunks.c.import_id == import_id))


async def _record_errors(session: AsyncSession, import_id: str, errors: list[RowError]) -> None:
    if errors:
        await session.execute(
            insert_ignoring_conflicts(
                session, table_of(ContactImportError), ["import_id", "line", "field"]
            ),
            [
                {"import_id": import_id, "line": e.line, "field": e.field, "message": e.message}
                for e in errors
            ],
        )


async def _fail(
    sessions: async_sessionmaker[AsyncSession],
    job: ClaimedImport,
    owner: str,
    message: str,
    now: datetime,
) -> None:
    t = _imports()
    async with transaction(sessions) as session:
        await session.execute(
            sa.update(t)
            .where(t.c.id == job.id, t.c.lease_owner == owner)
            .values(
                status="failed",
                error=message,
                finished_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        await _drop_chunks(session, job.id)


async def _chunk(sessions: async_sessionmaker[AsyncSession], import_id: str, seq: int) -> bytes:
    chunks = table_of(ContactImportChunk)
    async with transaction(sessions) as session:
        data = (
            await session.execute(
                sa.select(chunks.c.data).where(chunks.c.import_id == import_id, chunks.c.seq == seq)
            )
        ).scalar_one()
    return bytes(data)


class _Processor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        clock: Clock,
        job: ClaimedImport,
        owner: str,
        batch_rows: int,
    ) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.clock = clock
        self.job = job
        self.owner = owner
        self.batch_rows = batch_rows
        self.position = job.position
        self.fetch = job.position.chunk
        self.fetch_offset = job.position.offset
        self.reader: RecordReader = reader_for(job.format, job.position)

    async def open(self) -> None:
        """A CSV read resumed mid-file needs the header: read it from the first chunk."""
        if self.job.format != "csv" or self.position == START:
            return
        header = CsvReader()
        seq = 0
        while not header.read_header():
            if seq >= self.job.chunks:
                header.close()
                continue
            header.feed(await _chunk(self.sessions, self.job.id, seq), chunk=seq)
            seq += 1
        self.reader = reader_for("csv", self.position, header.columns)

    async def collect(self) -> tuple[list[Record], bool]:
        records: list[Record] = []
        fed = 0
        while len(records) < self.batch_rows:
            record = self.reader.next_record()
            if record is not None:
                records.append(record)
                continue
            if self.reader.finished:
                return records, True
            if records and fed >= _CHUNKS_PER_BATCH:
                break
            if self.fetch >= self.job.chunks:
                self.reader.close()
                continue
            data = await _chunk(self.sessions, self.job.id, self.fetch)
            self.reader.feed(data[self.fetch_offset :], chunk=self.fetch, offset=self.fetch_offset)
            self.fetch += 1
            self.fetch_offset = 0
            fed += 1
        return records, False

    async def batch(self, records: list[Record], finished: bool) -> None:
        now = self.clock.now()
        rows: list[ImportRow] = []
        errors: list[RowError] = []
        for record in records:
            if record.values is None:
                errors.append(unreadable(record.line, record.problem or "unreadable"))
                continue
            checked = validate(record.values, line=record.line, now=now)
            if isinstance(checked, ImportRow):
                rows.append(checked)
            else:
                errors.extend(checked)
        end = records[-1].end if records else self.position
        for attempt in range(_ATTEMPTS):
            try:
                async with transaction(self.sessions) as session:
                    await _hold(session, self.job, self.owner, self.position, now)
                    result = await apply_rows(
                        session,
                        self.keyring,
                        workspace_id=self.job.workspace_id,
                        rows=rows,
                        now=now,
                    )
                    all_errors = errors + result.errors
                    await _record_errors(session, self.job.id, all_errors)
                    await _advance(
                        session,
                        self.job,
                        to=end,
                        lines=len(records),
                        failed=len({e.line for e in all_errors}),
                        result=result,
                        finished=finished,
                        now=now,
                    )
                break
            except IntegrityError:
                # Another writer created one of the batch's addresses meanwhile: load and retry.
                if attempt == _ATTEMPTS - 1:
                    raise
        self.position = end


async def process_import(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    clock: Clock,
    *,
    import_id: str,
    owner: str | None = None,
    batch_rows: int = BATCH_ROWS,
    max_batches: int | None = None,
) -> Outcome | None:
    """Process the import to its end, or resume it where the last committed batch left it.

    None when the import is not claimable (done, or leased to a live worker). `max_batches`
    stops early and keeps the lease, as a crash would (tests and benchmarks use it)."""
    owner = owner or new_id("lease")
    async with transaction(sessions) as session:
        job = await claim(session, import_id=import_id, owner=owner, now=clock.now())
    if job is None:
        return None
    processor = _Processor(sessions, keyring, clock, job, owner, batch_rows)
    batches = 0
    try:
        await processor.open()
        while True:
            if max_batches is not None and batches >= max_batches:
                return "stopped"
            records, finished = await processor.collect()
            await processor.batch(records, finished)
            batches += 1
            if finished:
                return "completed"
    except FileUnreadable as exc:
        await _fail(sessions, job, owner, str(exc), clock.now())
        return "failed"
    except DataError as exc:
        # The database refused a value validation let through: stop rather than retry forever.
        log.exception("import batch refused by the database", extra={"import_id": job.id})
        await _fail(
            sessions,
            job,
            owner,
            f"The database refused the rows after line {processor.position.line - 1}: "
            f"{type(exc.orig).__name__}",
            clock.now(),
        )
        return "failed"
    except LeaseLost:
        return "lease-lost"


async def fail_abandoned_uploads(session: AsyncSession, *, now: datetime) -> int:
    """Uploads that stopped arriving long ago (the client went away mid-file) end as failed."""
    t = _imports()
    stale = list(
        (
            await session.execute(
                sa.select(t.c.id).where(
                    t.c.status == "receiving", t.c.updated_at < now - ABANDONED_AFTER
                )
            )
        ).scalars()
    )
    for import_id in stale:
        await session.execute(
            sa.update(t)
            .where(t.c.id == import_id, t.c.status == "receiving")
            .values(
                status="failed",
                error="The upload did not finish",
                finished_at=now,
                updated_at=now,
            )
        )
        await _drop_chunks(session, import_id)
    return len(stale)


async def process_pending(
    sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, clock: Clock
) -> int:
    """The `imports.process` job: fail abandoned uploads, then process every import that waits
    or whose worker's lease ran out. Returns how many imports it finished."""
    async with transaction(sessions) as session:
        await fail_abandoned_uploads(session, now=clock.now())
        waiting = await claimable(session, now=clock.now())
    finished = 0
    for import_id in waiting:
        outcome = await process_import(sessions, keyring, clock, import_id=import_id)
        finished += outcome in ("completed", "failed")
    return finished
