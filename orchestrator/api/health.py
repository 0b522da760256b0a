"""Liveness and readiness probes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import channel_pauses
from orchestrator.api.deps import ResourcesDep
from orchestrator.migrate import head_revision
from orchestrator.models import WorkerHeartbeat, table_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


def worker_check(last_seen: datetime | None, *, now: datetime, max_age: timedelta) -> str:
    """ "ok" when some scheduler process (a worker, or `serve` with the embedded scheduler)
    heartbeated within `max_age`; otherwise what a person reading the probe needs to know."""
    if last_seen is not None and now - last_seen <= max_age:
        return "ok"
    return f"none seen in {int(max_age.total_seconds())}s"


async def last_heartbeat(session: AsyncSession) -> datetime | None:
    table = table_of(WorkerHeartbeat)
    seen: datetime | None = (
        await session.execute(sa.select(sa.func.max(table.c.seen_at)))
    ).scalar_one_or_none()
    return seen


@router.get("/readyz")
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """Ready when the database answers, its schema is at the version this code expects, and a
    scheduler process heartbeated recently (without one nothing is sent or applied)."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with resources.sessions() as session:
            revision = (
                await session.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
        checks["database"] = "ok"
        checks["migrations"] = "current" if revision == head_revision() else f"at {revision}"
        ready = revision == head_revision()
        if ready:
            async with resources.sessions() as session:
                paused = await channel_pauses.paused_reason(session, channel=channel_pauses.EMAIL)
                seen = await last_heartbeat(session)
            # A paused relay is reported, not "not ready": the API and Messenger still work.
            checks["email"] = "ok" if paused is None else f"paused: {paused}"
            checks["worker"] = worker_check(
                seen,
                now=resources.clock.now(),
                max_age=timedelta(seconds=resources.settings.readyz_worker_max_age_seconds),
            )
            ready = checks["worker"] == "ok"
    except Exception as exc:  # a probe reports, it does not raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
