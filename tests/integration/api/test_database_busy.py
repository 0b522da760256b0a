"""SQLite allows one writer: a request that cannot get the write lock within the busy timeout
gets a 503 problem with Retry-After (never a 500) and leaves nothing behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from orchestrator import migrate
from orchestrator.apikeys import create_api_key
from orchestrator.app import create_app
from orchestrator.db import transaction
from orchestrator.resources import build_resources
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0
from tests.fixtures.database import make_settings


async def test_a_locked_sqlite_database_answers_503_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=50)
    resources = build_resources(settings)
    await migrate.upgrade(resources.engine)
    async with transaction(resources.sessions) as session:
        workspace = await create_workspace(session, name="busy", now=T0)
        issued = await create_api_key(session, workspace_id=workspace.id, now=T0)
    app = create_app(settings, resources=resources)
    headers = {"Authorization": f"Bearer {issued.key}"}
    body = {"email": "lan@example.com"}
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            busy = await client.post("/v1/contacts", headers=headers, json=body)
            assert busy.status_code == 503, busy.text
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.headers["retry-after"] == "1"
            holder.execute("ROLLBACK")
            assert holder.execute("SELECT count(*) FROM contacts").fetchone() == (0,)
            retried = await client.post("/v1/contacts", headers=headers, json=body)
            assert retried.status_code == 201, retried.text
    finally:
        holder.close()
        await resources.close()
