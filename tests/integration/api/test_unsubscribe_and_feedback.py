"""One-click unsubscribe (RFC 8058), bounce and complaint reports, and suppression afterwards."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import links
from orchestrator.clock import FrozenClock
from orchestrator.models import ConsentRecord, EmailIdentity
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant


async def subscribed(client: httpx.AsyncClient, tenant: Tenant, address: str) -> dict[str, object]:
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={"email": address, "consent_source": "popup", "consent_at": T0.isoformat()},
    )
    assert created.json()["email"]["status"] == "subscribed"
    return dict(created.json())


async def unsubscribe_path(
    resources: Resources,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    contact_id: str,
) -> str:
    async with sessions() as s:
        identity = (
            await s.execute(sa.select(EmailIdentity).where(EmailIdentity.contact_id == contact_id))  # type: ignore[arg-type]
        ).scalar_one()
    token = links.make_unsubscribe_token(
        resources.keyring,
        links.Unsubscribe(tenant.workspace_id, contact_id, identity.id, "dl_x"),
        now=T0,
    )
    assert identity.address not in token
    return f"/u/{token}"


async def test_get_shows_a_button_and_changes_nothing_post_unsubscribes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    resources: Resources,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    contact = await subscribed(client, tenant, "lan@example.com")
    path = await unsubscribe_path(resources, sessions, tenant, str(contact["id"]))
    page = await client.get(path)
    assert page.status_code == 200
    assert "<form" in page.text
    assert 'method="post"' in page.text.lower()
    still = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert still.json()["email"]["status"] == "subscribed"

    # RFC 8058: the mail client POSTs this body, with no cookies and no further page.
    done = await client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Gmail"},
    )
    assert done.status_code == 200
    assert "l***@example.com" in done.text
    after = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert after.json()["email"]["status"] == "unsubscribed"
    again = await client.post(path)
    assert again.status_code == 200
    async with sessions() as s:
        rows = (
            (
                await s.execute(
                    sa.select(ConsentRecord).where(ConsentRecord.action == "unsubscribe")
                )  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert [(r.source, r.user_agent) for r in rows] == [("unsubscribe_link", "Gmail")]


async def test_an_unsubscribed_address_cannot_be_imported_back(
    client: httpx.AsyncClient,
    tenant: Tenant,
    resources: Resources,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    contact = await subscribed(client, tenant, "minh@example.com")
    path = await unsubscribe_path(resources, sessions, tenant, str(contact["id"]))
    await client.post(path)
    await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    clock.advance(timedelta(days=1))
    back = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "email": "minh@example.com",
            "consent_source": "import",
            "consent_at": clock.now().isoformat(),
        },
    )
    assert back.json()["email"]["status"] == "unsubscribed"


async def test_bad_unsubscribe_links_are_refused(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    resources: Resources,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    contact = await subscribed(client, tenant, "hoa@example.com")
    path = await unsubscribe_path(resources, sessions, tenant, str(contact["id"]))
    foreign = path.replace(tenant.workspace_id, other_tenant.workspace_id)
    for bad in (path[:-4], foreign, "/u/garbage"):
        assert (await client.post(bad)).status_code == 400
        assert (await client.get(bad)).status_code == 400
    clock.advance(timedelta(days=800))
    assert (await client.post(path)).status_code == 410
    still = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert still.json()["email"]["status"] == "subscribed"


async def test_bounce_and_complaint_reports(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    bounced = await subscribed(client, tenant, "gone@example.com")
    complained = await subscribed(client, tenant, "angry@example.com")
    response = await client.post(
        "/v1/email/events",
        headers=tenant.headers,
        json={
            "events": [
                {
                    "type": "bounce",
                    "email": "GONE@example.com",
                    "occurred_at": "2026-11-20T10:00:00Z",
                },
                {
                    "type": "complaint",
                    "email": "angry@example.com",
                    "occurred_at": "2026-11-20T10:00:00Z",
                },
                {
                    "type": "bounce",
                    "email": "stranger@example.com",
                    "occurred_at": "2026-11-20T10:00:00Z",
                },
            ]
        },
    )
    assert response.json() == {"accepted": 3, "matched": 2}
    statuses = {
        c["email"]["address"]: c["email"]["status"]
        for c in (await client.get("/v1/contacts", headers=tenant.headers)).json()["data"]
    }
    assert statuses == {"gone@example.com": "bounced", "angry@example.com": "complained"}
    stranger = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "email": "stranger@example.com",
            "consent_source": "api",
            "consent_at": T0.isoformat(),
        },
    )
    assert stranger.json()["email"]["status"] == "unsubscribed"
    elsewhere = await client.post(
        "/v1/contacts",
        headers=other_tenant.headers,
        json={
            "email": "stranger@example.com",
            "consent_source": "api",
            "consent_at": T0.isoformat(),
        },
    )
    assert elsewhere.json()["email"]["status"] == "subscribed"
    bad = await client.post(
        "/v1/email/events",
        headers=tenant.headers,
        json={
            "events": [{"type": "spam", "email": "x@y.z", "occurred_at": "2026-01-01T00:00:00Z"}]
        },
    )
    assert bad.status_code == 422
    assert bounced["id"] != complained["id"]
