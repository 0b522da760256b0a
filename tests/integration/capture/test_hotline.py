"""Hotline operators record addresses given on the phone through the contacts API or an import
with `consent_source: hotline` (DESIGN section 4: subscribed only with where and when)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.models import ConsentRecord
from tests.fixtures.api import Tenant
from tests.integration.api.test_imports_api import csv_rows, finished, upload


async def sources(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, str | None]]:
    async with sessions() as s:
        rows = (await s.execute(sa.select(ConsentRecord).order_by(ConsentRecord.address))).scalars()
        return [(r.action, r.source, r.address) for r in rows]


async def test_hotline_consent_through_the_api_and_an_import(
    client: httpx.AsyncClient,
    app: FastAPI,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "email": "goi.dien@example.com",
            "name": "Chị Mai",
            "consent_source": "hotline",
            "consent_at": "2026-11-20T08:30:00+07:00",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == {"address": "goi.dien@example.com", "status": "subscribed"}
    without = await client.post(
        "/v1/contacts", headers=tenant.headers, json={"email": "chua.dong.y@example.com"}
    )
    assert without.json()["email"]["status"] == "unconfirmed"

    report = await finished(
        client, app, tenant,
        await upload(client, tenant, csv_rows(
            "hotline.import@example.com,Anh Tuấn,vi,,,hotline,2026-11-19T15:00:00+07:00,Hà Nội"
        )),
    )  # fmt: skip
    assert report["status"] == "completed", report
    assert report["created"] == 1
    assert await sources(sessions) == [
        ("subscribe", "hotline", "goi.dien@example.com"),
        ("subscribe", "hotline", "hotline.import@example.com"),
    ]
