"""`/v1/workspace`, authentication and the error conventions, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.apikeys import revoke_api_key
from orchestrator.models import Workspace
from orchestrator.scheduler import WorkerIdentity, record_heartbeat
from tests.fixtures.api import T0, Tenant

PROBLEM = "application/problem+json"


async def test_reads_own_workspace(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/workspace", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == tenant.workspace_id
    assert body["name"] == "acme"
    assert body["timezone"] == "Asia/Ho_Chi_Minh"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_each_key_sees_only_its_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = (await client.get("/v1/workspace", headers=tenant.headers)).json()
    theirs = (await client.get("/v1/workspace", headers=other_tenant.headers)).json()
    assert mine["id"] == tenant.workspace_id
    assert theirs["id"] == other_tenant.workspace_id
    await client.patch("/v1/workspace", headers=tenant.headers, json={"from_name": "Acme VN"})
    theirs_after = (await client.get("/v1/workspace", headers=other_tenant.headers)).json()
    assert theirs_after["from_name"] is None


async def test_patch_updates_sender_identity_with_vietnamese_text(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.patch(
        "/v1/workspace",
        headers=tenant.headers,
        json={
            "from_name": "Cửa hàng Áo Dài Hồng",
            "from_address": "Shop@Example.COM",
            "postal_address": "12 Đường Lê Lợi, Quận 1, TP. Hồ Chí Minh",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["from_name"] == "Cửa hàng Áo Dài Hồng"
    assert response.json()["from_address"] == "Shop@example.com"
    async with sessions() as s:
        stored = await s.get(Workspace, tenant.workspace_id)
        assert stored is not None
        assert stored.postal_address == "12 Đường Lê Lợi, Quận 1, TP. Hồ Chí Minh"
        assert stored.updated_at == T0


async def test_missing_key_is_401_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/workspace")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


async def test_wrong_malformed_and_foreign_scheme_keys_are_401(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    forged = tenant.key[:-4] + ("AAAA" if not tenant.key.endswith("AAAA") else "BBBB")
    for header in (
        f"Bearer {forged}",
        "Bearer not-a-key",
        f"Basic {tenant.key}",
        "Bearer ",
    ):
        response = await client.get("/v1/workspace", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["content-type"] == PROBLEM


async def test_key_in_query_string_is_not_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1/workspace", params={"api_key": tenant.key})
    assert response.status_code == 401


async def test_revoked_key_is_401(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/v1/workspace", headers=tenant.headers)).status_code == 200
    async with sessions() as s, s.begin():
        await revoke_api_key(s, key_id=tenant.key_id, now=T0)
    response = await client.get("/v1/workspace", headers=tenant.headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_unknown_field_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.patch(
        "/v1/workspace", headers=tenant.headers, json={"from_name": "X", "colour": "red"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    errors = response.json()["errors"]
    assert {"field": "colour", "message": "unknown field", "code": "extra_forbidden"} in errors
    after = (await client.get("/v1/workspace", headers=tenant.headers)).json()
    assert after["from_name"] is None


async def test_wrong_types_name_each_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        "/v1/workspace",
        headers=tenant.headers,
        json={
            "transactional_to_unconfirmed": "perhaps",
            "timezone": "Mars/Olympus",
            "from_address": "not an address",
        },
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"transactional_to_unconfirmed", "timezone", "from_address"}


async def test_explicit_null_for_required_setting_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.patch("/v1/workspace", headers=tenant.headers, json={"timezone": None})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "timezone"


async def test_malformed_json_is_400_problem(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        "/v1/workspace",
        headers={**tenant.headers, "content-type": "application/json"},
        content=b'{"from_name": "Acme",',
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "body"


async def test_body_that_is_not_an_object_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch("/v1/workspace", headers=tenant.headers, json=["a", "b"])
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_oversized_declared_body_is_413_and_nothing_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    big = {"from_name": "A", "postal_address": "x" * 2_000_000}
    response = await client.patch("/v1/workspace", headers=tenant.headers, json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    after = (await client.get("/v1/workspace", headers=tenant.headers)).json()
    assert after["from_name"] is None


async def test_oversized_streamed_body_is_413_and_nothing_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"from_name": "B", "postal_address": "'
        for _ in range(40):
            yield b"y" * 65_536
        yield b'"}'

    response = await client.patch(
        "/v1/workspace",
        headers={**tenant.headers, "content-type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413
    after = (await client.get("/v1/workspace", headers=tenant.headers)).json()
    assert after["from_name"] is None


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_healthz_and_readyz(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    async with sessions() as s, s.begin():
        await record_heartbeat(
            s,
            worker=WorkerIdentity.of_this_process("worker"),
            now=T0,
            forget_after=timedelta(hours=1),
        )
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "current",
        "email": "ok",
        "worker": "ok",
    }


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/workspace" in spec["paths"]
    assert "/healthz" in spec["paths"]


async def test_http_client_loggers_stay_at_warning(client: httpx.AsyncClient) -> None:
    import logging

    assert (await client.get("/healthz")).status_code == 200
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
