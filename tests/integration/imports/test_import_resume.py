"""Imports survive crashes: a resumed import ends exactly like an uninterrupted one, counts are
never doubled, and a lease keeps two workers off one import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import FrozenClock
from orchestrator.db import transaction
from orchestrator.imports import applying, processing, uploads
from orchestrator.imports.parsing import Position
from orchestrator.models import ContactImport, ContactImportChunk, table_of
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.imports.support import import_row, state_by_address, store_file

HEADER = "email,name,tags,consent_source,consent_at,attr.note\n"


def sample_file() -> bytes:
    lines = [HEADER]
    for i in range(23):
        note = f'"dòng một\ndòng {i}"' if i % 5 == 0 else f"n{i}"
        email = f"p{i % 17}@example.com" if i != 11 else "broken"
        lines.append(
            f"{email},Người {i},t{i % 3};chung,popup,2026-11-{10 + i % 9}T08:00:00+07:00,{note}\n"
        )
    return "".join(lines).encode()


def progress(row: Any) -> tuple[object, ...]:
    return (row.status, row.lines, row.created, row.updated, row.unchanged, row.failed)


async def expire_lease(sessions: async_sessionmaker[AsyncSession], import_id: str) -> None:
    """What time does to a crashed worker's lease, without moving the clock of the rows."""
    t = table_of(ContactImport)
    async with transaction(sessions) as session:
        await session.execute(
            sa.update(t)
            .where(t.c.id == import_id)
            .values(lease_expires_at=T0 - timedelta(seconds=1))
        )


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 150)


async def run_uninterrupted(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
) -> str:
    import_id = await store_file(
        sessions, clock, workspace_id=tenant.workspace_id, data=sample_file(), piece=31
    )
    assert (
        await processing.process_import(
            sessions, resources.keyring, clock, import_id=import_id, batch_rows=4
        )
        == "completed"
    )
    return import_id


async def test_stopping_after_a_batch_then_resuming_elsewhere_gives_the_same_state(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    reference = await run_uninterrupted(sessions, resources, clock, tenant)
    import_id = await store_file(
        sessions, clock, workspace_id=other_tenant.workspace_id, data=sample_file(), piece=31
    )
    first = await processing.process_import(
        sessions,
        resources.keyring,
        clock,
        import_id=import_id,
        batch_rows=4,
        max_batches=2,
        owner="worker-a",
    )
    assert first == "stopped"
    halfway = await import_row(sessions, import_id)
    assert (halfway.status, halfway.lease_owner) == ("processing", "worker-a")
    assert 0 < halfway.lines < 23
    # Line 1 is the header and the quoted notes span two lines.
    assert halfway.next_line > halfway.lines + 1
    # The crashed worker's lease is live: nobody else may take the import yet.
    assert (
        await processing.process_import(sessions, resources.keyring, clock, import_id=import_id)
        is None
    )
    await expire_lease(sessions, import_id)
    resumed = await processing.process_import(
        sessions, resources.keyring, clock, import_id=import_id, batch_rows=4, owner="worker-b"
    )
    assert resumed == "completed"
    done, expected = await import_row(sessions, import_id), await import_row(sessions, reference)
    assert progress(done) == progress(expected)
    assert done.lines == 23 and done.failed == 1
    assert await state_by_address(sessions, other_tenant.workspace_id) == await state_by_address(
        sessions, tenant.workspace_id
    )


async def test_a_crash_inside_a_batch_writes_nothing_of_it(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = await run_uninterrupted(sessions, resources, clock, tenant)
    import_id = await store_file(
        sessions, clock, workspace_id=other_tenant.workspace_id, data=sample_file(), piece=31
    )
    real_apply = applying.apply_rows
    calls = 0

    async def crash_on_third_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real_apply(*args, **kwargs)
        if calls == 3:
            raise RuntimeError("power cut after the writes, before the commit")
        return result

    monkeypatch.setattr(processing, "apply_rows", crash_on_third_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        await processing.process_import(
            sessions, resources.keyring, clock, import_id=import_id, batch_rows=4
        )
    assert 0 < (await import_row(sessions, import_id)).lines < 23  # two batches committed
    monkeypatch.setattr(processing, "apply_rows", real_apply)
    await expire_lease(sessions, import_id)
    assert (
        await processing.process_import(
            sessions, resources.keyring, clock, import_id=import_id, batch_rows=4
        )
        == "completed"
    )
    assert progress(await import_row(sessions, import_id)) == progress(
        await import_row(sessions, reference)
    )
    assert await state_by_address(sessions, other_tenant.workspace_id) == await state_by_address(
        sessions, tenant.workspace_id
    )


async def test_the_lease_keeps_a_second_worker_out_until_it_expires(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, tenant: Tenant
) -> None:
    import_id = await store_file(
        sessions, clock, workspace_id=tenant.workspace_id, data=sample_file()
    )
    async with transaction(sessions) as s:
        job = await processing.claim(s, import_id=import_id, owner="a", now=T0)
        assert job is not None
        assert job.position == Position(0, 0, 1)
        assert (
            await processing.claim(
                s, import_id=import_id, owner="b", now=T0 + timedelta(seconds=59)
            )
            is None
        )
        assert await processing.claimable(s, now=T0 + timedelta(seconds=59)) == []
        later = T0 + processing.LEASE + timedelta(seconds=1)
        assert await processing.claimable(s, now=later) == [import_id]
        assert await processing.claim(s, import_id=import_id, owner="b", now=later) is not None
        # The first worker's next batch finds the lease gone and stops.
        with pytest.raises(processing.LeaseLost):
            await processing._hold(s, job, "a", job.position, later)
        await processing._hold(s, job, "b", job.position, later)


async def test_the_scheduler_job_processes_waiting_imports_and_fails_abandoned_uploads(
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    waiting = await store_file(
        sessions, clock, workspace_id=tenant.workspace_id, data=sample_file()
    )
    stuck = await uploads.receive(
        sessions,
        clock,
        workspace_id=tenant.workspace_id,
        file_format="csv",
        body=_one_piece(sample_file()),
    )
    clock.advance(processing.ABANDONED_AFTER + timedelta(minutes=1))
    assert await processing.process_pending(sessions, resources.keyring, clock) == 1
    assert (await import_row(sessions, waiting)).status == "completed"
    abandoned = await import_row(sessions, stuck.import_id)
    assert (abandoned.status, abandoned.error) == ("failed", "The upload did not finish")
    chunks = table_of(ContactImportChunk)
    async with sessions() as s:
        left = (await s.execute(sa.select(sa.func.count()).select_from(chunks))).scalar_one()
    assert left == 0  # finished and failed imports drop their file
    assert await processing.process_pending(sessions, resources.keyring, clock) == 0


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data
