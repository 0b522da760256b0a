"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from orchestrator import channel_pauses
from orchestrator.api.deps import ResourcesDep
from orchestrator.migrate import head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """The database answers and its schema is at the version this code expects."""
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
            # A paused relay is reported, not "not ready": the API and Messenger still work.
            checks["email"] = "ok" if paused is None else f"paused: {paused}"
    except Exception as exc:  # a probe reports, it does not raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
