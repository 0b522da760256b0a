"""`GET /v1/contacts/{id}/reachability`: facts from applied events, the policy's decision now."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator.clock import FrozenClock
from orchestrator.models import MessengerIdentity, table_of
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401


async def test_reachability_follows_the_window_and_hides_tokens(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "chào")
    await wired.person_accepts_one_time_notification(
        PAGE_ID, psid, "restock", token="OTN-HIDDEN-42"
    )
    await apply(sessions, clock)
    async with sessions() as s:
        contact_id = (
            await s.execute(sa.select(table_of(MessengerIdentity).c.contact_id))
        ).scalar_one()
    await client.patch(
        f"/v1/contacts/{contact_id}",
        headers=tenant.headers,
        json={"email": "khach@example.com", "consent_source": "api", "consent_at": T0.isoformat()},
    )
    clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    open_now = await client.get(f"/v1/contacts/{contact_id}/reachability", headers=tenant.headers)
    assert open_now.status_code == 200, open_now.text
    body = open_now.json()
    assert "OTN-HIDDEN-42" not in open_now.text
    assert body["email"] == {"address": "khach@example.com", "status": "subscribed"}
    page = body["messenger"][0]
    assert page["psid"] == psid
    assert page["window_open"] is True
    assert page["window_closes_at"].startswith("2026-11-21T09:00:00")
    assert page["human_agent_until"].startswith("2026-11-27T09:00:00")
    assert page["tokens"] == [
        {"topic": "restock", "kind": "one_time", "expires_at": page["tokens"][0]["expires_at"]}
    ]
    assert body["decisions"]["promotional"]["route"] == "messenger"
    assert body["decisions"]["promotional"]["reason"] == "messenger.window"
    assert body["decisions"]["promotional"]["messaging_type"] == "UPDATE"

    clock.advance(timedelta(seconds=1))
    closed = (
        await client.get(f"/v1/contacts/{contact_id}/reachability", headers=tenant.headers)
    ).json()
    assert closed["messenger"][0]["window_open"] is False
    assert closed["decisions"]["promotional"]["reason"] == "email.window_closed"
    assert closed["decisions"]["promotional"]["route"] == "email"


async def test_reachability_of_an_email_only_contact(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = (
        await client.post(
            "/v1/contacts", headers=tenant.headers, json={"email": "only@example.com"}
        )
    ).json()
    body = (
        await client.get(f"/v1/contacts/{created['id']}/reachability", headers=tenant.headers)
    ).json()
    assert body["messenger"] == []
    assert body["decisions"]["promotional"]["route"] == "none"
    assert body["decisions"]["promotional"]["reason"] == "skipped.unconfirmed"
    missing = await client.get("/v1/contacts/ct_x/reachability", headers=tenant.headers)
    assert missing.status_code == 404
