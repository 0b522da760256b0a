"""First start on an empty database: a `default` workspace and its first API key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.apikeys import IssuedKey, create_api_key
from orchestrator.workspaces import DEFAULT_WORKSPACE, count_workspaces, create_workspace


async def ensure_default_workspace(session: AsyncSession, *, now: datetime) -> IssuedKey | None:
    """Create the default workspace and key when there is no workspace at all.

    Returns the key exactly once, on the start that created it; the caller prints it to the
    terminal and nowhere else (never to logs).
    """
    if await count_workspaces(session) > 0:
        return None
    workspace = await create_workspace(session, name=DEFAULT_WORKSPACE, now=now)
    return await create_api_key(session, workspace_id=workspace.id, now=now, name="first key")
