"""`tag_added` triggers: a tag new to a contact through the contacts API starts one run of each
running campaign waiting for it, with its first step planned; a tag already there starts none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.campaigns.spec import validate_campaign
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Campaign, CampaignRun, Delivery, table_of
from tests.fixtures.api import T0, Tenant
from tests.integration.api.test_contacts_api import PAGE, add_page


async def tag_campaign(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, tag: str, *, status: str = "running"
) -> str:
    spec = validate_campaign(
        {
            "name": f"Chào {tag}",
            "page_id": PAGE,
            "purpose": "promotional",
            "audience": {"email_status": []},
            "trigger": {"on": "tag_added", "tag": tag},
            "steps": [
                {"delay": {"after": "0s"}, "messenger": {"text": "Chào bạn!"}, "fallback": "skip"}
            ],
        }
    )
    campaign_id = new_id("cp")
    async with sessions() as s, s.begin():
        s.add(
            Campaign(
                id=campaign_id,
                workspace_id=tenant.workspace_id,
                name=spec.name,
                page_id=PAGE,
                purpose=spec.purpose,
                spec=spec.model_dump(mode="json"),
                status=status,
                trigger_on="tag_added",
                trigger_key=tag,
                launched_at=T0,
                created_at=T0,
                updated_at=T0,
            )
        )
    return campaign_id


async def started(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[str]]:
    """Trigger runs per campaign, as contact ids."""
    runs = table_of(CampaignRun)
    async with sessions() as s:
        rows = await s.execute(
            sa.select(runs.c.campaign_id, runs.c.contact_id).where(runs.c.kind == "trigger")
        )
    found: dict[str, list[str]] = {}
    for campaign_id, contact_id in rows:
        found.setdefault(campaign_id, []).append(contact_id)
    return found


async def first_steps(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    table = table_of(Delivery)
    async with sessions() as s:
        rows = await s.execute(
            sa.select(table.c.campaign_id, table.c.contact_id, table.c.step_index, table.c.due_at)
            .where(table.c.kind == "step")
            .order_by(table.c.campaign_id)
        )
    return [tuple(r) for r in rows]


async def test_new_tags_fire_through_create_patch_and_the_tags_endpoint(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await add_page(sessions, tenant)
    vip = await tag_campaign(sessions, tenant, "vip")
    gold = await tag_campaign(sessions, tenant, "gold")
    sale = await tag_campaign(sessions, tenant, "sale")
    paused = await tag_campaign(sessions, tenant, "sale", status="paused")
    headers = tenant.headers

    created = await client.post(
        "/v1/contacts",
        headers=headers,
        json={"messenger": {"page_id": PAGE, "psid": "2710001"}, "tags": ["vip", "khach-le"]},
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    assert await started(sessions) == {vip: [contact_id]}
    assert await first_steps(sessions) == [(vip, contact_id, 0, T0)]

    # The same tag again (an upsert by the same identity), a moment later: nothing new.
    clock.advance(timedelta(minutes=1))
    again = await client.post(
        "/v1/contacts",
        headers=headers,
        json={"messenger": {"page_id": PAGE, "psid": "2710001"}, "tags": ["vip"]},
    )
    assert again.status_code == 200
    assert await started(sessions) == {vip: [contact_id]}

    patched = await client.patch(
        f"/v1/contacts/{contact_id}", headers=headers, json={"tags": ["vip", "gold"]}
    )
    assert patched.status_code == 200, patched.text
    assert await started(sessions) == {vip: [contact_id], gold: [contact_id]}

    added = await client.post(
        f"/v1/contacts/{contact_id}/tags", headers=headers, json={"tags": ["gold", "sale"]}
    )
    assert added.status_code == 200
    assert sorted(added.json()["tags"]) == ["gold", "sale", "vip"]
    runs = await started(sessions)
    assert runs == {vip: [contact_id], gold: [contact_id], sale: [contact_id]}
    assert paused not in runs
    assert len(await first_steps(sessions)) == 3

    # Removed, then added again later: a new event, a new run.
    await client.delete(f"/v1/contacts/{contact_id}/tags/vip", headers=headers)
    clock.advance(timedelta(minutes=1))
    await client.post(f"/v1/contacts/{contact_id}/tags", headers=headers, json={"tags": ["vip"]})
    assert (await started(sessions))[vip] == [contact_id, contact_id]
