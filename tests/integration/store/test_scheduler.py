"""The embedded scheduler runs its jobs inside the server process; heartbeats are upserted."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import migrate
from orchestrator.app import create_app
from orchestrator.models import WorkerHeartbeat
from orchestrator.resources import build_resources
from orchestrator.scheduler import WorkerIdentity, record_heartbeat
from tests.fixtures.api import T0
from tests.fixtures.database import make_settings


async def test_heartbeat_upserts_and_forgets_silent_workers(session: AsyncSession) -> None:
    me = WorkerIdentity.of_this_process("worker")
    gone = WorkerIdentity.of_this_process("worker")
    await record_heartbeat(session, worker=gone, now=T0, forget_after=timedelta(minutes=5))
    await record_heartbeat(session, worker=me, now=T0, forget_after=timedelta(minutes=5))
    later = T0 + timedelta(minutes=10)
    await record_heartbeat(session, worker=me, now=later, forget_after=timedelta(minutes=5))
    await session.flush()
    rows = (await session.execute(sa.select(WorkerHeartbeat))).scalars().all()
    assert [(r.id, r.started_at, r.seen_at) for r in rows] == [(me.id, T0, later)]


async def test_serve_runs_the_scheduler_in_process(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'sched.db'}")
    resources = build_resources(settings)
    await migrate.upgrade(resources.engine)
    app = create_app(resources=resources, run_scheduler=True)
    try:
        async with LifespanManager(app):
            for _ in range(100):
                async with resources.sessions() as s:
                    rows = (await s.execute(sa.select(WorkerHeartbeat))).scalars().all()
                if rows:
                    break
                await asyncio.sleep(0.05)
        assert len(rows) == 1
        assert rows[0].kind == "serve"
    finally:
        await resources.close()
