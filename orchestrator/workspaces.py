"""Workspaces: tenants with their sender identity (DESIGN section 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator.errors import WorkspaceExists, WorkspaceNotFound
from orchestrator.ids import new_id
from orchestrator.models import Workspace

DEFAULT_WORKSPACE = "default"


async def create_workspace(session: AsyncSession, *, name: str, now: datetime) -> Workspace:
    workspace = Workspace(id=new_id("ws"), name=name, created_at=now, updated_at=now)
    try:
        async with session.begin_nested():
            session.add(workspace)
    except IntegrityError as exc:
        raise WorkspaceExists(f"A workspace named {name!r} already exists") from exc
    return workspace


async def get_workspace(session: AsyncSession, *, workspace_id: str) -> Workspace:
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise WorkspaceNotFound(f"No workspace {workspace_id!r}")
    return workspace


async def find_workspace(session: AsyncSession, *, name_or_id: str) -> Workspace:
    result = await session.execute(
        sa.select(Workspace).where(
            sa.or_(col(Workspace.id) == name_or_id, col(Workspace.name) == name_or_id)
        )
    )
    workspace = result.scalars().first()
    if workspace is None:
        raise WorkspaceNotFound(f"No workspace named or with id {name_or_id!r}")
    return workspace


async def count_workspaces(session: AsyncSession) -> int:
    return int(
        (await session.execute(sa.select(sa.func.count()).select_from(Workspace))).scalar_one()
    )


async def update_workspace(
    session: AsyncSession, *, workspace_id: str, changes: dict[str, Any], now: datetime
) -> Workspace:
    workspace = await get_workspace(session, workspace_id=workspace_id)
    for field, value in changes.items():
        setattr(workspace, field, value)
    workspace.updated_at = now
    await session.flush()
    return workspace


async def list_workspaces(session: AsyncSession) -> list[tuple[str, str]]:
    rows = await session.execute(
        sa.select(col(Workspace.id), col(Workspace.name)).order_by(col(Workspace.name))
    )
    return [(row.id, row.name) for row in rows]
