"""Campaign runs end to end at the store level: launch, plan, dispatch through the emulator and a
real SMTP server, the next step planned when one ends, window-relative steps, holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from channels.sandbox import GraphEmulator
from orchestrator.campaigns import runs
from orchestrator.campaigns.spec import validate_campaign
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Campaign, CampaignRun, Delivery, table_of
from orchestrator.resources import Resources
from tests.e2e.test_email_reopen_loop import (  # noqa: F401
    Inbox,
    run_dispatch,
    smtp,
    smtp_server,
)
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401

EMAIL = {"subject": "Ưu đãi", "html": "<p>Chào {{ contact.name | default('bạn') }}</p>"}


def two_steps(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Khuyến mãi tháng 12",
        "page_id": PAGE_ID,
        "purpose": "promotional",
        "topic": "sale",
        "audience": {"email_status": [], "messenger": "any"},
        "steps": [
            {
                "delay": {"after": "0s"},
                "messenger": {"text": "Chào {{ contact.name | default('bạn') }}!"},
                "email": EMAIL,
                "fallback": "email",
            },
            {
                "delay": {"before_window_closes": "1h"},
                "messenger": {"text": "Còn 1 giờ!"},
                "email": None,
                "fallback": "wait_for_window",
                "max_wait": "1d",
            },
        ],
    }
    body.update(overrides)
    return body


async def create_campaign(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, body: dict[str, Any]
) -> str:
    spec = validate_campaign(body)
    campaign_id = new_id("cp")
    async with sessions() as s, s.begin():
        s.add(
            Campaign(
                id=campaign_id,
                workspace_id=tenant.workspace_id,
                name=spec.name,
                page_id=spec.page_id,
                purpose=spec.purpose,
                topic=spec.topic,
                spec=spec.model_dump(mode="json"),
                trigger_on=spec.trigger.on if spec.trigger else None,
                created_at=T0,
                updated_at=T0,
            )
        )
    return campaign_id


async def launch(
    sessions: async_sessionmaker[AsyncSession], campaign_id: str, clock: FrozenClock
) -> CampaignRun | None:
    async with sessions() as s, s.begin():
        campaign = await s.get(Campaign, campaign_id)
        assert campaign is not None
        return await runs.launch(s, campaign=campaign, now=clock.now())


async def deliveries(
    sessions: async_sessionmaker[AsyncSession], campaign_id: str
) -> dict[tuple[str, int], Delivery]:
    async with sessions() as s:
        rows = (
            (await s.execute(sa.select(Delivery).where(Delivery.campaign_id == campaign_id)))  # type: ignore[arg-type]
            .scalars()
            .all()
        )
    return {(row.contact_id, row.step_index or 0): row for row in rows}


async def contact(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> str:
    response = await client.post("/v1/contacts", headers=tenant.headers, json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def messenger_contact(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    psid: str,
    *,
    ago: timedelta,
) -> str:
    await wired.person_writes(PAGE_ID, psid, "xin chào", at=clock.now() - ago)
    await apply(sessions, clock)
    async with sessions() as s:
        from orchestrator.models import MessengerIdentity

        identity = (
            await s.execute(sa.select(MessengerIdentity).where(MessengerIdentity.psid == psid))  # type: ignore[arg-type]
        ).scalar_one()
        return identity.contact_id


async def drain(resources: Resources, clock: FrozenClock, smtp: SmtpSender) -> None:  # noqa: F811
    for _ in range(6):
        if await run_dispatch(resources, clock, smtp) == 0:
            return


async def test_a_two_step_campaign_routes_each_contact_and_plans_the_next_step(
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
    on_messenger = await messenger_contact(
        wired, sessions, clock, "psid-open", ago=timedelta(hours=2)
    )
    by_email = await contact(
        client,
        tenant,
        email="lan@example.com",
        name="Chị Lan",
        consent_source="popup",
        consent_at=T0.isoformat(),
    )
    unconfirmed = await contact(client, tenant, email="hoa@example.com")
    campaign_id = await create_campaign(sessions, tenant, two_steps())

    run = await launch(sessions, campaign_id, clock)
    assert run is not None and run.status == "planning"
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now, batch=2) == 3
    async with sessions() as s:
        planned = await s.get(CampaignRun, run.id)
    assert planned is not None
    assert (planned.status, planned.audience_count) == ("running", 3)

    await drain(resources, clock, smtp)
    rows = await deliveries(sessions, campaign_id)
    first = {cid: rows[(cid, 0)] for cid in (on_messenger, by_email, unconfirmed)}
    assert (first[on_messenger].state, first[on_messenger].reason) == ("sent", "messenger.window")
    assert first[by_email].last_error is None, first[by_email].last_error
    assert (first[by_email].state, first[by_email].reason) == ("sent", "email.no_messenger")
    assert (first[unconfirmed].state, first[unconfirmed].reason) == (
        "skipped",
        "skipped.unconfirmed",
    )
    assert len(inbox.messages) == 1
    texts = [(m.message or {}).get("text") for m in wired.sent_to(PAGE_ID, "psid-open")]
    assert "Chào bạn!" in texts

    # Step 2 is window-relative: the open window's end minus 1h; without a window, held.
    second = {cid: rows[(cid, 1)] for cid in (on_messenger, by_email, unconfirmed)}
    assert second[on_messenger].state == "pending"
    assert second[on_messenger].due_at == T0 - timedelta(hours=2) + timedelta(hours=23)
    assert second[by_email].state == "held"
    assert second[by_email].reason == "held.until_window"
    assert second[by_email].held_until == T0 + timedelta(days=1)

    clock.set(T0 + timedelta(hours=21))
    await drain(resources, clock, smtp)
    rows = await deliveries(sessions, campaign_id)
    assert (rows[(on_messenger, 1)].state, rows[(on_messenger, 1)].reason) == (
        "sent",
        "messenger.window",
    )
    assert "Còn 1 giờ!" in [
        (m.message or {}).get("text") for m in wired.sent_to(PAGE_ID, "psid-open")
    ]
    assert len(rows) == 6  # no third step exists, none was planned


async def test_launching_twice_conflicts_and_planning_twice_adds_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
) -> None:
    for n in range(5):
        await contact(
            client,
            tenant,
            email=f"c{n}@example.com",
            consent_source="import",
            consent_at=T0.isoformat(),
        )
    campaign_id = await create_campaign(
        sessions, tenant, two_steps(audience={"email_status": ["subscribed"]})
    )
    run = await launch(sessions, campaign_id, clock)
    assert run is not None
    from orchestrator.errors import Conflict

    try:
        await launch(sessions, campaign_id, clock)
    except Conflict:
        pass
    else:
        raise AssertionError("a second launch must conflict")
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now, batch=2) == 5
    # A planner that crashed and starts over re-plans the run: the unique key keeps one row each.
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(table_of(CampaignRun))
            .where(table_of(CampaignRun).c.id == run.id)
            .values(status="planning")
        )
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now, batch=2) == 0
    assert len(await deliveries(sessions, campaign_id)) == 5


async def test_contacts_created_after_the_run_started_are_not_in_it(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
) -> None:
    await contact(
        client, tenant, email="a@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    campaign_id = await create_campaign(
        sessions, tenant, two_steps(audience={"email_status": ["subscribed"]})
    )
    await launch(sessions, campaign_id, clock)
    clock.advance(timedelta(seconds=1))
    await contact(
        client, tenant, email="b@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now) == 1


async def test_meta_says_window_closed_and_the_same_delivery_goes_out_by_email(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    from orchestrator.models import MessengerIdentity

    inbox, _ = smtp_server
    contact_id = await contact(
        client,
        tenant,
        email="minh@example.com",
        consent_source="popup",
        consent_at=T0.isoformat(),
    )
    async with sessions() as s, s.begin():
        s.add(
            MessengerIdentity(
                id=new_id("mi"),
                workspace_id=tenant.workspace_id,
                contact_id=contact_id,
                page_id=PAGE_ID,
                psid="psid-stale",
                window_opened_at=T0 - timedelta(hours=1),
                created_at=T0,
                updated_at=T0,
            )
        )
    # The emulator last heard from the person 25 hours ago (no webhook reached us).
    await wired.person_writes(PAGE_ID, "psid-stale", "hi", at=T0 - timedelta(hours=25), post=False)
    campaign_id = await create_campaign(
        sessions, tenant, two_steps(steps=[two_steps()["steps"][0]])
    )
    await launch(sessions, campaign_id, clock)
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    await drain(resources, clock, smtp)
    [row] = (await deliveries(sessions, campaign_id)).values()
    assert (row.state, row.channel, row.reason) == ("sent", "email", "email.window_closed")
    assert row.last_error is None
    assert len(inbox.messages) == 1
    assert wired.sent_to(PAGE_ID, "psid-stale") == []


async def test_send_window_defers_then_sends_at_the_opening(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    await contact(
        client,
        tenant,
        email="d@example.com",
        timezone="Asia/Ho_Chi_Minh",
        consent_source="import",
        consent_at=T0.isoformat(),
    )
    # T0 is 16:00 in Ho Chi Minh City; the window opens at 08:00 local (01:00 UTC) next day.
    body = two_steps(
        audience={"email_status": ["subscribed"]},
        steps=[two_steps()["steps"][0]],
        send_window={"start": "08:00", "end": "12:00"},
    )
    campaign_id = await create_campaign(sessions, tenant, body)
    await launch(sessions, campaign_id, clock)
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    await drain(resources, clock, smtp)
    [row] = (await deliveries(sessions, campaign_id)).values()
    opening = T0.replace(hour=1) + timedelta(days=1)
    assert (row.state, row.reason, row.due_at) == ("deferred", "deferred.send_window", opening)
    assert inbox.messages == []
    clock.set(opening - timedelta(seconds=1))
    await drain(resources, clock, smtp)
    assert inbox.messages == []
    clock.set(opening)
    await drain(resources, clock, smtp)
    [row] = (await deliveries(sessions, campaign_id)).values()
    assert (row.state, row.reason) == ("sent", "email.no_messenger")
    assert len(inbox.messages) == 1


async def test_frequency_cap_counts_promotional_sends_across_campaigns(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    await contact(
        client, tenant, email="f@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    one_step = {"audience": {"email_status": ["subscribed"]}, "steps": [two_steps()["steps"][0]]}
    first = await create_campaign(sessions, tenant, two_steps(**one_step))
    second = await create_campaign(sessions, tenant, two_steps(**one_step, frequency_cap=1))
    for campaign_id in (first, second):
        await launch(sessions, campaign_id, clock)
        await runs.plan_pending_runs(resources.sessions, clock=clock.now)
        await drain(resources, clock, smtp)
        clock.advance(timedelta(hours=1))
    [sent] = (await deliveries(sessions, first)).values()
    [capped] = (await deliveries(sessions, second)).values()
    assert (sent.state, capped.state, capped.reason) == ("sent", "skipped", "skipped.frequency_cap")
    assert len(inbox.messages) == 1
    # A day later the cap's period has passed.
    clock.advance(timedelta(days=1))
    third = await create_campaign(sessions, tenant, two_steps(**one_step, frequency_cap=1))
    await launch(sessions, third, clock)
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    await drain(resources, clock, smtp)
    [later] = (await deliveries(sessions, third)).values()
    assert later.state == "sent"


async def test_a_paused_page_or_campaign_keeps_its_deliveries_waiting(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    from orchestrator.models import Page

    inbox, _ = smtp_server
    await contact(
        client, tenant, email="p@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    body = two_steps(audience={"email_status": ["subscribed"]}, steps=[two_steps()["steps"][0]])
    campaign_id = await create_campaign(sessions, tenant, body)
    await launch(sessions, campaign_id, clock)
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    pages = table_of(Page)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(pages).values(paused_at=T0, paused_reason="TokenInvalid: expired")
        )
    await drain(resources, clock, smtp)
    [row] = (await deliveries(sessions, campaign_id)).values()
    assert row.state == "pending"
    shown = (await client.get(f"/v1/campaigns/{campaign_id}", headers=tenant.headers)).json()
    assert (shown["status"], shown["paused_reason"]) == (
        "paused",
        "page_paused: TokenInvalid: expired",
    )
    async with sessions() as s, s.begin():
        await s.execute(sa.update(pages).values(paused_at=None, paused_reason=None))
        await s.execute(
            sa.update(table_of(Campaign))
            .where(table_of(Campaign).c.id == campaign_id)
            .values(status="paused")
        )
    await drain(resources, clock, smtp)
    assert inbox.messages == []
    resumed = await client.post(f"/v1/campaigns/{campaign_id}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    await drain(resources, clock, smtp)
    [row] = (await deliveries(sessions, campaign_id)).values()
    assert row.state == "sent"
    assert len(inbox.messages) == 1


async def test_step_one_is_due_its_delay_after_the_run_starts(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
) -> None:
    await contact(
        client, tenant, email="h@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    first = dict(two_steps()["steps"][0], delay={"after": "90m"})
    body = two_steps(audience={"email_status": ["subscribed"]}, steps=[first])
    campaign_id = await create_campaign(sessions, tenant, body)
    await launch(sessions, campaign_id, clock)
    clock.advance(timedelta(minutes=5))  # the planner runs a little after the launch
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    [row] = (await deliveries(sessions, campaign_id)).values()
    assert row.due_at == T0 + timedelta(minutes=90)


async def test_scheduled_and_cron_campaigns_start_their_runs_on_time_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
) -> None:
    at = T0 + timedelta(hours=2)
    once = await create_campaign(sessions, tenant, two_steps(schedule={"at": at.isoformat()}))
    # Mondays 09:00 in Ho Chi Minh City = 02:00 UTC; T0 (2026-11-20) is a Friday.
    weekly = await create_campaign(
        sessions,
        tenant,
        two_steps(schedule={"cron": "0 9 * * 1", "timezone": "Asia/Ho_Chi_Minh"}),
    )
    assert await launch(sessions, once, clock) is None
    assert await launch(sessions, weekly, clock) is None
    monday = T0.replace(day=23, hour=2)
    async with sessions() as s:
        scheduled = {cid: await s.get(Campaign, cid) for cid in (once, weekly)}
    assert [(c.status, c.next_run_at) for c in scheduled.values() if c] == [
        ("scheduled", at),
        ("scheduled", monday),
    ]

    async def start() -> int:
        async with sessions() as s, s.begin():
            return await runs.start_due_runs(s, now=clock.now())

    clock.set(at - timedelta(seconds=1))
    assert await start() == 0
    clock.set(at)
    assert await start() == 1
    assert await start() == 0
    clock.set(monday + timedelta(minutes=3))
    assert await start() == 1
    assert await start() == 0
    async with sessions() as s:
        run_rows = (
            (await s.execute(sa.select(CampaignRun).order_by(CampaignRun.started_at)))  # type: ignore[arg-type]
            .scalars()
            .all()
        )
        cron_campaign = await s.get(Campaign, weekly)
    assert [(r.campaign_id, r.kind, r.occurrence) for r in run_rows] == [
        (once, "scheduled", "at"),
        (weekly, "cron", f"cron:{monday.isoformat()}"),
    ]
    assert cron_campaign is not None
    assert cron_campaign.next_run_at == monday + timedelta(days=7)


async def test_a_run_and_its_campaign_complete_when_every_delivery_is_final(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    wired: GraphEmulator,  # noqa: F811
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    await contact(
        client, tenant, email="z@example.com", consent_source="import", consent_at=T0.isoformat()
    )
    body = two_steps(audience={"email_status": ["subscribed"]}, steps=[two_steps()["steps"][0]])
    campaign_id = await create_campaign(sessions, tenant, body)
    run = await launch(sessions, campaign_id, clock)
    assert run is not None
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)

    async def complete() -> tuple[str | None, str | None]:
        async with sessions() as s, s.begin():
            await runs.complete_finished(s, now=clock.now())
        async with sessions() as s:
            found_run = await s.get(CampaignRun, run.id)
            found = await s.get(Campaign, campaign_id)
            return (found_run.status if found_run else None, found.status if found else None)

    assert await complete() == ("running", "running")
    await drain(resources, clock, smtp)
    assert await complete() == ("completed", "completed")
