"""A burst of webhooks on a real engine (not the rolled-back test connection): every event is
acknowledged well within Meta's 5 seconds and none is lost, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from channels.messenger.webhooks import sign
from orchestrator import migrate
from orchestrator.apikeys import create_api_key
from orchestrator.app import create_app
from orchestrator.db import transaction
from orchestrator.resources import build_resources
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0
from tests.fixtures.database import create_pg_schema, drop_pg_schema, make_settings

APP_ID = "880000000000077"
SECRET = "burst-secret-123456"
PAGE_ID = "104000000000077"
EVENTS = 400


def body(i: int) -> bytes:
    ts = 1_763_629_200_000 + i
    event = {
        "sender": {"id": str(6_000_000 + i % 97)},
        "recipient": {"id": PAGE_ID},
        "timestamp": ts,
        "message": {"mid": f"m_burst_{i}", "text": f"Tin nhắn số {i}"},
    }
    return json.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": ts, "messaging": [event]}]}
    ).encode()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_burst_is_acknowledged_fast_and_completely(backend: str, tmp_path: Path) -> None:
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'burst.db'}"
    else:
        schema, url = create_pg_schema()
    settings = make_settings(url)
    resources = build_resources(settings)
    try:
        await migrate.upgrade(resources.engine)
        async with transaction(resources.sessions) as s:
            ws = await create_workspace(s, name="burst", now=T0)
            key = (await create_api_key(s, workspace_id=ws.id, now=T0)).key
        app = create_app(resources=resources, run_scheduler=False)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client,
        ):
            headers = {"Authorization": f"Bearer {key}"}
            await client.post(
                "/v1/messenger-apps",
                headers=headers,
                json={"app_id": APP_ID, "app_secret": SECRET, "verify_token": "verify-123"},
            )
            created = await client.post(
                "/v1/pages",
                headers=headers,
                json={
                    "page_id": PAGE_ID,
                    "app_id": APP_ID,
                    "username": "b",
                    "access_token": "EAAB-xxxxx",
                },
            )
            assert created.status_code == 201
            latencies: list[float] = []
            semaphore = asyncio.Semaphore(20)

            async def post(i: int) -> int:
                raw = body(i)
                async with semaphore:
                    started = time.perf_counter()
                    response = await client.post(
                        f"/webhooks/messenger/{APP_ID}",
                        content=raw,
                        headers={"X-Hub-Signature-256": sign(raw, SECRET)},
                    )
                    latencies.append(time.perf_counter() - started)
                    return response.status_code

            codes = await asyncio.gather(*(post(i) for i in range(EVENTS)))
            # Meta redelivers; the duplicates must be absorbed.
            codes += await asyncio.gather(*(post(i) for i in range(0, EVENTS, 10)))
        assert set(codes) == {200}
        assert max(latencies) < 5.0
        async with resources.sessions() as s:
            stored = (
                await s.execute(
                    sa.text("SELECT count(*), count(DISTINCT event_key) FROM webhook_inbox")
                )
            ).one()
        assert tuple(stored) == (EVENTS, EVENTS)
    finally:
        await resources.close()
        if schema:
            drop_pg_schema(schema)
