"""A campaign's throttle and the SMTP relay's rate are global send budgets (DESIGN section 8):
two dispatchers sharing the database share them, and a send that would wait past half its
claim's lease (for a budget, or a Page cooling down after a rate-limit answer) goes back to
pending, not an attempt, instead of risking a second sender."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import sqlalchemy as sa

from channels.email import SmtpSender
from channels.sandbox import GraphEmulator
from orchestrator.campaigns import runs
from orchestrator.clock import FrozenClock
from orchestrator.models import Delivery
from orchestrator.resources import Resources
from orchestrator.send_budgets import Budget, SendBudgets
from tests.e2e.test_email_reopen_loop import (  # noqa: F401
    SETTINGS,
    Inbox,
    run_dispatch,
    smtp,
    smtp_server,
)
from tests.fixtures.api import T0, Tenant
from tests.integration.campaigns.test_campaign_runs import (
    contact,
    create_campaign,
    deliveries,
    launch,
    messenger_contact,
    two_steps,
)
from tests.integration.store.test_send_budgets import WallClock
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401


async def email_campaign(
    client: httpx.AsyncClient,
    resources: Resources,
    tenant: Tenant,
    clock: FrozenClock,
    **spec: object,
) -> str:
    for n in range(5):
        await contact(
            client,
            tenant,
            email=f"t{n}@example.com",
            consent_source="import",
            consent_at=T0.isoformat(),
        )
    one_step = {"audience": {"email_status": ["subscribed"]}, "steps": [two_steps()["steps"][0]]}
    campaign_id = await create_campaign(resources.sessions, tenant, two_steps(**one_step, **spec))
    await launch(resources.sessions, campaign_id, clock)
    await runs.plan_pending_runs(resources.sessions, clock=clock.now)
    return campaign_id


async def test_a_throttled_batch_sends_what_fits_before_half_its_lease_and_defers_the_rest(
    client: httpx.AsyncClient,
    tenant: Tenant,
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    campaign_id = await email_campaign(client, resources, tenant, clock, throttle={"per_second": 2})
    wall = WallClock(5_000_000.0)
    # A 2 s lease: sends may wait on the budget until 1 s after the claim, so two windows of two.
    settings = replace(
        SETTINGS,
        lease=timedelta(seconds=2),
        budgets=SendBudgets(resources.sessions, clock=wall, sleep=wall.sleep),
    )
    assert await run_dispatch(resources, clock, smtp, settings) == 5
    rows = list((await deliveries(resources.sessions, campaign_id)).values())
    assert sorted(row.state for row in rows) == ["pending", "sent", "sent", "sent", "sent"]
    [deferred] = [row for row in rows if row.state == "pending"]
    assert deferred.attempts == 0
    assert deferred.next_attempt_at == clock.now() + timedelta(seconds=1)
    assert len(inbox.messages) == 4
    assert wall.slept == [1.0]
    clock.advance(timedelta(seconds=1))
    assert await run_dispatch(resources, clock, smtp, settings) == 1
    rows = list((await deliveries(resources.sessions, campaign_id)).values())
    assert {row.state for row in rows} == {"sent"}
    assert len(inbox.messages) == 5


async def test_two_dispatchers_share_the_relays_budget(
    client: httpx.AsyncClient,
    tenant: Tenant,
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    campaign_id = await email_campaign(client, resources, tenant, clock)
    wall = WallClock(6_000_000.0)
    assert SETTINGS.email is not None
    relay = replace(SETTINGS.email, relay_key="smtp:relay:25", relay_budget=Budget(3))
    one, two = (
        replace(
            SETTINGS,
            batch=2,
            email=relay,
            budgets=SendBudgets(resources.sessions, clock=wall, sleep=wall.sleep),
        )
        for _ in range(2)
    )
    # Worker one sends two; worker two's first fits the relay's second, its next waits for the
    # next second; worker one's last goes out in that second too.
    assert await run_dispatch(resources, clock, smtp, one) == 2
    assert await run_dispatch(resources, clock, smtp, two) == 2
    assert await run_dispatch(resources, clock, smtp, one) == 1
    assert wall.slept == [1.0]
    assert wall.now == 6_000_001.0
    rows = list((await deliveries(resources.sessions, campaign_id)).values())
    assert {row.state for row in rows} == {"sent"}
    assert len(inbox.messages) == 5


async def test_a_rate_limit_answer_defers_the_pages_other_sends_without_an_attempt(
    wired: GraphEmulator,  # noqa: F811
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
) -> None:
    # Each person's first message makes the Page ask for their email: three sends due now.
    for n in range(3):
        await messenger_contact(
            wired, resources.sessions, clock, f"psid-cool-{n}", ago=timedelta(minutes=5)
        )
    wired.inject_rate_limit(times=1)
    before = len(wired.requests_to("messages"))
    # A one-second lease: after the 613 the Page cools down for 1 s, longer than the half
    # second left to the batch, so its other sends wait for a later claim.
    one_second = replace(SETTINGS, lease=timedelta(seconds=1))
    assert await run_dispatch(resources, clock, smtp, one_second) == 3
    assert len(wired.requests_to("messages")) - before == 1
    async with resources.sessions() as session:
        rows = (await session.execute(sa.select(Delivery))).scalars().all()
    outcomes = sorted((row.state, row.attempts, (row.last_error or {}).get("code")) for row in rows)
    assert outcomes == [("pending", 0, None), ("pending", 0, None), ("pending", 1, 613)]
    assert all(row.next_attempt_at is not None for row in rows)
    assert resources.messenger.cooling_for(PAGE_ID) > 0
