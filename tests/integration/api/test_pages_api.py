"""`/v1/messenger-apps` and `/v1/pages` against the Graph API emulator, on both databases."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator.models import MessengerApp, Page, table_of
from tests.fixtures.api import Tenant

APP_ID = "880000000000001"
APP_SECRET = "app-secret-XyZ-9f8e7d6c5b4a"
VERIFY = "verify-token-0a1b2c3d"
PAGE_ID = "104000000000123"
TOKEN = "EAAB-page-token-SECRET-5e6f7a8b9c0d"


def register_in_emulator(emulator: GraphEmulator, *, token: str = TOKEN) -> None:
    emulator.register_page(
        PAGE_ID,
        username="aodaihong",
        access_token=token,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        subscribed_fields=None,
    )


async def make_app(client: httpx.AsyncClient, tenant: Tenant) -> httpx.Response:
    return await client.post(
        "/v1/messenger-apps",
        headers=tenant.headers,
        json={"app_id": APP_ID, "app_secret": APP_SECRET, "verify_token": VERIFY},
    )


async def make_page(client: httpx.AsyncClient, tenant: Tenant, **extra: object) -> httpx.Response:
    body = {"page_id": PAGE_ID, "app_id": APP_ID, "username": "aodaihong", "access_token": TOKEN}
    body.update(extra)
    return await client.post("/v1/pages", headers=tenant.headers, json=body)


async def test_app_registration_hides_secrets(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await make_app(client, tenant)
    assert created.status_code == 201, created.text
    assert created.json()["webhook_url"] == f"https://outreach.test/webhooks/messenger/{APP_ID}"
    listed = await client.get("/v1/messenger-apps", headers=tenant.headers)
    one = await client.get(f"/v1/messenger-apps/{APP_ID}", headers=tenant.headers)
    rotated = await client.patch(
        f"/v1/messenger-apps/{APP_ID}",
        headers=tenant.headers,
        json={"verify_token": "new-verify-1"},
    )
    assert rotated.status_code == 200
    for response in (created, listed, one, rotated):
        assert APP_SECRET not in response.text
        assert VERIFY not in response.text
        assert "secret" not in response.text.lower()
    duplicate = await make_app(client, tenant)
    assert duplicate.status_code == 409


async def test_secrets_are_encrypted_at_rest(
    client: httpx.AsyncClient,
    tenant: Tenant,
    emulator: GraphEmulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    register_in_emulator(emulator)
    await make_app(client, tenant)
    await make_page(client, tenant)
    values: list[str] = []
    async with sessions() as s:
        for model in (MessengerApp, Page):
            for row in (await s.execute(sa.select(table_of(model)))).all():
                values.extend(str(value) for value in row)
    dump = " ".join(values)
    assert APP_ID in dump
    for secret in (APP_SECRET, VERIFY, TOKEN):
        assert secret not in dump


async def test_page_registration_runs_both_checks(
    client: httpx.AsyncClient, tenant: Tenant, emulator: GraphEmulator
) -> None:
    register_in_emulator(emulator)
    assert (await make_app(client, tenant)).status_code == 201
    created = await make_page(client, tenant, human_agent_enabled=True, region="vn")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["policy_profile"] == "meta-2026-04"
    assert body["graph_api_version"] == "v25.0"
    assert body["region"] == "VN"
    assert body["m_me_url"] == "https://m.me/aodaihong"
    assert TOKEN not in created.text

    page = (await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers)).json()
    assert page["checks"]["get_started"]["status"] == "ok"
    assert page["checks"]["subscribed_apps"]["status"] == "ok"
    state = emulator.page(PAGE_ID)
    assert state.get_started_payload == "GET_STARTED"
    assert "messaging_referrals" in state.subscribed_fields
    calls = [r for r in emulator.requests if r.endpoint in ("messenger_profile", "subscribed_apps")]
    assert calls
    assert all(r.token_locations == ("header",) for r in calls)


async def test_a_bad_token_is_reported_as_a_failed_check(
    client: httpx.AsyncClient, tenant: Tenant, emulator: GraphEmulator
) -> None:
    register_in_emulator(emulator, token="EAAB-the-real-token-0000")
    await make_app(client, tenant)
    created = await make_page(client, tenant)
    assert created.status_code == 201
    page = (await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers)).json()
    assert page["checks"]["get_started"]["status"] == "failed"
    assert "190" in page["checks"]["get_started"]["detail"]
    assert page["checks"]["subscribed_apps"]["status"] == "failed"
    fixed = await client.patch(
        f"/v1/pages/{PAGE_ID}",
        headers=tenant.headers,
        json={"access_token": "EAAB-the-real-token-0000"},
    )
    assert fixed.status_code == 200
    page = (await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers)).json()
    assert page["checks"]["get_started"]["status"] == "ok"
    assert page["checks"]["subscribed_apps"]["status"] == "ok"


async def test_page_validation_and_ownership(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, emulator: GraphEmulator
) -> None:
    register_in_emulator(emulator)
    await make_app(client, tenant)
    no_username = await client.post(
        "/v1/pages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "app_id": APP_ID, "access_token": TOKEN},
    )
    assert no_username.status_code == 422
    assert no_username.json()["errors"][0]["field"] == "username"
    bad_profile = await make_page(client, tenant, policy_profile="meta-2019")
    assert bad_profile.status_code == 422
    assert bad_profile.json()["errors"][0]["field"] == "policy_profile"
    unknown_app = await make_page(client, tenant, app_id="123")
    assert unknown_app.status_code == 404
    assert (await make_page(client, tenant)).status_code == 201
    again = await make_page(client, tenant)
    assert again.status_code == 409

    other_app = await client.post(
        "/v1/messenger-apps",
        headers=other_tenant.headers,
        json={
            "app_id": "880000000000002",
            "app_secret": "other-secret-1",
            "verify_token": "other-v-1",
        },
    )
    assert other_app.status_code == 201
    stolen = await client.post(
        "/v1/pages",
        headers=other_tenant.headers,
        json={
            "page_id": PAGE_ID,
            "app_id": "880000000000002",
            "username": "x",
            "access_token": "EAAB-other-1",
        },
    )
    assert stolen.status_code == 409
    for method, path, body in (
        ("GET", f"/v1/pages/{PAGE_ID}", None),
        ("PATCH", f"/v1/pages/{PAGE_ID}", {"otn_enabled": True}),
        ("POST", f"/v1/pages/{PAGE_ID}/checks", None),
        ("GET", f"/v1/messenger-apps/{APP_ID}", None),
        ("PATCH", f"/v1/messenger-apps/{APP_ID}", {"verify_token": "hijacked-1"}),
    ):
        response = await client.request(method, path, headers=other_tenant.headers, json=body)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/v1/pages", headers=other_tenant.headers)).json()["data"] == []
    mine = (await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers)).json()
    assert mine["otn_enabled"] is False


async def test_patch_page_settings(
    client: httpx.AsyncClient, tenant: Tenant, emulator: GraphEmulator
) -> None:
    register_in_emulator(emulator)
    await make_app(client, tenant)
    await make_page(client, tenant)
    patched = await client.patch(
        f"/v1/pages/{PAGE_ID}",
        headers=tenant.headers,
        json={"policy_profile": "meta-2020-03", "otn_enabled": True, "username": "aodaihong.vn"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["policy_profile"] == "meta-2020-03"
    assert patched.json()["otn_enabled"] is True
    assert patched.json()["m_me_url"] == "https://m.me/aodaihong.vn"
    null = await client.patch(
        f"/v1/pages/{PAGE_ID}", headers=tenant.headers, json={"otn_enabled": None}
    )
    assert null.status_code == 422


@pytest.mark.parametrize("level", [logging.DEBUG])
async def test_tokens_never_reach_logs_or_responses(
    client: httpx.AsyncClient,
    tenant: Tenant,
    emulator: GraphEmulator,
    caplog: pytest.LogCaptureFixture,
    level: int,
) -> None:
    caplog.set_level(level)
    register_in_emulator(emulator, token="EAAB-mismatch-token-1111")
    responses = [
        await make_app(client, tenant),
        await make_page(client, tenant),
        await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers),
        await client.get("/v1/pages", headers=tenant.headers),
        await client.patch(
            f"/v1/pages/{PAGE_ID}", headers=tenant.headers, json={"access_token": TOKEN + "-2"}
        ),
        await client.post(f"/v1/pages/{PAGE_ID}/checks", headers=tenant.headers),
    ]
    text = " ".join(r.text for r in responses) + " " + caplog.text
    for secret in (TOKEN, TOKEN + "-2", APP_SECRET, VERIFY, tenant.key):
        assert secret not in text
    assert any(r.status_code == 201 for r in responses)
