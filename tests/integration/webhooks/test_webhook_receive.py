"""Receiving webhooks: the handshake, the signature over raw bytes, the durable inbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.messenger.webhooks import sign
from channels.sandbox import GraphEmulator
from orchestrator.models import WebhookBody, WebhookInbox, table_of
from tests.fixtures.api import Tenant

APP_ID = "880000000000009"
APP_SECRET = "the-app-secret-for-webhooks"
VERIFY = "verify-me-please"
PAGE_ID = "104000000000555"
TOKEN = "EAAB-webhook-page-token-123"
HOOK = f"http://testserver/webhooks/messenger/{APP_ID}"


@pytest.fixture
async def wired(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, emulator: GraphEmulator
) -> AsyncIterator[GraphEmulator]:
    """Our app registered with an app and a Page; the emulator posts its webhooks to it."""
    await client.post(
        "/v1/messenger-apps",
        headers=tenant.headers,
        json={"app_id": APP_ID, "app_secret": APP_SECRET, "verify_token": VERIFY},
    )
    emulator.register_page(
        PAGE_ID,
        username="shop",
        access_token=TOKEN,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        webhook_url=HOOK,
        get_started_payload="GET_STARTED",
    )
    await client.post(
        "/v1/pages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "app_id": APP_ID, "username": "shop", "access_token": TOKEN},
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as hooks:
        emulator.webhook_client = hooks
        emulator.page(PAGE_ID).webhook_client = hooks
        yield emulator


async def inbox(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with sessions() as s:
        rows = await s.execute(
            sa.select(table_of(WebhookInbox)).order_by(table_of(WebhookInbox).c.event_time)
        )
        return [dict(r._mapping) for r in rows]


async def test_verification_handshake(client: httpx.AsyncClient, wired: GraphEmulator) -> None:
    ok = await client.get(
        f"/webhooks/messenger/{APP_ID}",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert await wired.verify_webhook(PAGE_ID, VERIFY)
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
    ):
        refused = await client.get(f"/webhooks/messenger/{APP_ID}", params=params)
        assert refused.status_code == 403
    foreign = await client.get(
        "/webhooks/messenger/123",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
    )
    assert foreign.status_code == 403


async def test_signed_vietnamese_message_is_stored_raw(
    wired: GraphEmulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    psid = wired.add_person(PAGE_ID)
    event = await wired.person_writes(PAGE_ID, psid, "Chào shop, áo dài màu đỏ còn size M không?")
    delivery = wired.deliveries[-1]
    assert delivery.status_code == 200, delivery.error
    assert b"\\u00e0" in delivery.body or b"\\u" in delivery.body
    rows = await inbox(sessions)
    assert len(rows) == 1
    row = rows[0]
    assert row["event_type"] == "messages"
    assert row["status"] == "pending"
    assert str(row["event_key"]).startswith("messages:m_")
    payload = json.loads(str(row["payload"]))
    assert payload["message"]["text"] == "Chào shop, áo dài màu đỏ còn size M không?"
    assert payload["sender"]["id"] == psid
    async with sessions() as s:
        body = (await s.execute(sa.select(table_of(WebhookBody)))).one()
    assert body.raw == delivery.body
    assert event is not None


async def test_redelivery_changes_nothing(
    wired: GraphEmulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "một")
    again = await wired.redeliver(wired.deliveries[-1])
    assert again.status_code == 200
    assert len(await inbox(sessions)) == 1


async def test_forged_or_missing_signature_is_403_and_stores_nothing(
    client: httpx.AsyncClient, wired: GraphEmulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": []}]}
    ).encode()
    for headers in (
        {"X-Hub-Signature-256": sign(body, "not-the-secret")},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign(body, APP_SECRET).replace("sha256=", "sha1=")},
        {},
    ):
        response = await client.post(f"/webhooks/messenger/{APP_ID}", content=body, headers=headers)
        assert response.status_code == 403
    tampered = body.replace(b'"time": 1', b'"time": 2')
    response = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=tampered,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
    )
    assert response.status_code == 403
    foreign = await client.post(
        "/webhooks/messenger/999",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
    )
    assert foreign.status_code == 403
    assert await inbox(sessions) == []
    async with sessions() as s:
        assert (
            await s.execute(sa.select(sa.func.count()).select_from(table_of(WebhookBody)))
        ).scalar_one() == 0


async def test_unknown_pages_are_recorded_and_dropped_unknown_types_kept(
    client: httpx.AsyncClient, wired: GraphEmulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "104999999999999",
                    "time": 1764000000000,
                    "messaging": [
                        {
                            "sender": {"id": "1"},
                            "recipient": {"id": "104999999999999"},
                            "timestamp": 1764000000000,
                            "message": {"mid": "m_x", "text": "hi"},
                        }
                    ],
                },
                {
                    "id": PAGE_ID,
                    "time": 1764000000001,
                    "messaging": [
                        {
                            "sender": {"id": "2"},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": 1764000000001,
                            "brand_new_event": {"x": 1},
                        }
                    ],
                },
            ],
        },
        ensure_ascii=True,
    ).encode()
    response = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
    )
    assert response.status_code == 200
    assert response.json() == {"stored": 2, "duplicates": 0}
    rows = {r["page_id"]: r for r in await inbox(sessions)}
    assert rows["104999999999999"]["status"] == "dropped"
    assert rows["104999999999999"]["workspace_id"] is None
    assert rows[PAGE_ID]["status"] == "pending"
    assert rows[PAGE_ID]["event_type"] == "unknown:brand_new_event"


async def test_a_body_that_is_not_an_envelope_is_400(
    client: httpx.AsyncClient, wired: GraphEmulator
) -> None:
    body = b"[1, 2, 3]"
    response = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_batched_events_each_get_a_row(
    wired: GraphEmulator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = wired.add_person(PAGE_ID), wired.add_person(PAGE_ID)
    events = [
        await wired.person_writes(PAGE_ID, first, "a", post=False),
        await wired.person_writes(PAGE_ID, second, "b", post=False),
        await wired.person_reads(PAGE_ID, first, post=False),
    ]
    delivery = await wired.post_events([e for e in events if e is not None])
    assert delivery.status_code == 200
    rows = await inbox(sessions)
    assert sorted(r["event_type"] for r in rows) == ["message_reads", "messages", "messages"]


async def test_a_rotated_secret_takes_effect_at_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    wired: GraphEmulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "trước")
    rotated = await client.patch(
        f"/v1/messenger-apps/{APP_ID}",
        headers=tenant.headers,
        json={"app_secret": "rotated-secret-9"},
    )
    assert rotated.status_code == 200
    body = json.dumps(
        {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": []}]}
    ).encode()
    old = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
    )
    assert old.status_code == 403
    new = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, "rotated-secret-9")},
    )
    assert new.status_code == 200
