"""Held steps end to end through the dispatcher: a hold past its `max_wait` is released by the
sweep and goes out as `email.hold_expired` (deferred to the send window first, then due again);
a hold whose person comes back goes out on Messenger in the window that just opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from channels.sandbox import GraphEmulator
from orchestrator import sweeps
from orchestrator.campaigns import runs
from orchestrator.campaigns.spec import validate_campaign
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Campaign, Delivery
from orchestrator.resources import Resources
from tests.e2e.test_email_reopen_loop import (  # noqa: F401
    Inbox,
    run_dispatch,
    smtp,
    smtp_server,
)
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply, identity_of
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401


def waiting_step(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Nhắc trước khi hết hạn",
        "page_id": PAGE_ID,
        "purpose": "promotional",
        "topic": "sale",
        "audience": {"email_status": [], "messenger": "any"},
        "steps": [
            {
                "delay": {"before_window_closes": "1h"},
                "messenger": {"text": "Ưu đãi sắp hết!"},
                "email": {"subject": "Ưu đãi sắp hết", "html": "<p>Ưu đãi sắp hết!</p>"},
                "fallback": "wait_for_window",
                "max_wait": "1d",
            }
        ],
    }
    body.update(overrides)
    return body


async def launched(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    resources: Resources,
    clock: FrozenClock,
    request: dict[str, Any],
) -> Delivery:
    """Launch and plan the campaign; returns its one delivery."""
    spec = validate_campaign(request)
    campaign = Campaign(
        id=new_id("cp"),
        workspace_id=tenant.workspace_id,
        name=spec.name,
        page_id=spec.page_id,
        purpose=spec.purpose,
        topic=spec.topic,
        spec=spec.model_dump(mode="json"),
        created_at=T0,
        updated_at=T0,
    )
    async with sessions() as s, s.begin():
        s.add(campaign)
        await s.flush()
        await runs.launch(s, campaign=campaign, now=clock.now())
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now) == 1
    return await only_delivery(sessions, campaign.id)


async def only_delivery(sessions: async_sessionmaker[AsyncSession], campaign_id: str) -> Delivery:
    async with sessions() as s:
        return (
            await s.execute(sa.select(Delivery).where(Delivery.campaign_id == campaign_id))  # type: ignore[arg-type]
        ).scalar_one()


async def drain(resources: Resources, clock: FrozenClock, smtp: SmtpSender) -> None:  # noqa: F811
    """Dispatch until nothing is due (one delivery per contact per round)."""
    for _ in range(4):
        if await run_dispatch(resources, clock, smtp) == 0:
            return


async def sweep(sessions: async_sessionmaker[AsyncSession], clock: FrozenClock) -> tuple[int, int]:
    async with sessions() as s, s.begin():
        return (
            await sweeps.expire_holds(s, now=clock.now()),
            await sweeps.release_due_deferred(s, now=clock.now()),
        )


async def test_an_expired_hold_goes_out_as_email_hold_expired_inside_the_send_window(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={"email": "lan@example.com", "consent_source": "popup", "consent_at": T0.isoformat()},
    )
    assert created.status_code == 201
    # 08:00-12:00 in Asia/Ho_Chi_Minh is 01:00-05:00 UTC; T0 (09:00 UTC) is outside it.
    planned = await launched(
        sessions,
        tenant,
        resources,
        clock,
        waiting_step(send_window={"start": "08:00", "end": "12:00"}),
    )
    await drain(resources, clock, smtp)
    held = await only_delivery(sessions, planned.campaign_id or "")
    assert (held.state, held.reason, held.held_until) == (
        "held",
        "held.until_window",
        T0 + timedelta(days=1),
    )

    clock.set(T0 + timedelta(hours=23))
    assert await sweep(sessions, clock) == (0, 0)
    clock.set(T0 + timedelta(days=1))
    assert await sweep(sessions, clock) == (1, 0)
    await drain(resources, clock, smtp)
    deferred = await only_delivery(sessions, planned.campaign_id or "")
    opening = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    assert (deferred.state, deferred.reason, deferred.due_at) == (
        "deferred",
        "deferred.send_window",
        opening,
    )
    assert inbox.messages == []

    clock.set(opening)
    assert await sweep(sessions, clock) == (0, 1)
    await drain(resources, clock, smtp)
    sent = await only_delivery(sessions, planned.campaign_id or "")
    assert (sent.state, sent.reason, sent.channel) == ("sent", "email.hold_expired", "email")
    assert len(inbox.messages) == 1
    assert await sweep(sessions, clock) == (0, 0)


async def test_a_held_step_goes_out_on_messenger_when_the_person_writes_again(
    wired: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "xin chào", at=T0 - timedelta(hours=30))
    await apply(sessions, clock)
    planned = await launched(sessions, tenant, resources, clock, waiting_step(name="Quay lại"))
    await drain(resources, clock, smtp)
    held = await only_delivery(sessions, planned.campaign_id or "")
    assert (held.state, held.reason) == ("held", "held.until_window")

    clock.advance(timedelta(hours=2))
    await wired.person_writes(PAGE_ID, psid, "Mình quay lại rồi")
    await apply(sessions, clock)
    await drain(resources, clock, smtp)
    sent = await only_delivery(sessions, planned.campaign_id or "")
    assert (sent.state, sent.reason, sent.channel) == ("sent", "messenger.window", "messenger")
    texts = [(m.message or {}).get("text") for m in wired.sent_to(PAGE_ID, psid)]
    assert texts[-1] == "Ưu đãi sắp hết!"
    assert (await identity_of(sessions, psid)).window_opened_at == clock.now()
