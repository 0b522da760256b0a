"""Every `/v1` route refuses a missing, wrong or revoked key with 401, before doing anything."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.apikeys import revoke_api_key
from tests.fixtures.api import T0, Tenant


def v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every documented `/v1` operation (the OpenAPI document lists them all)."""
    routes = []
    for template, operations in app.openapi()["paths"].items():
        if template.startswith("/v1"):
            path = re.sub(r"\{[^}]+\}", "x1", template)
            routes.extend((method.upper(), path) for method in operations)
    return routes


async def test_every_v1_route_needs_a_valid_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    routes = v1_routes(app)
    assert len(routes) >= 15
    forged = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    async with sessions() as s, s.begin():
        await revoke_api_key(s, key_id=tenant.key_id, now=T0)
    for headers in ({}, {"Authorization": f"Bearer {forged}"}, tenant.headers):
        for method, path in routes:
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
