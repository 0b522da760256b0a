"""The SMTP relay goes away for two retry intervals in the middle of a campaign, either stopped
(connections refused) or up and answering 451 to every recipient: the emails wait, backing off
(pending with a temporary error, never failed, the channel never paused), and all go out once the
relay is back (DESIGN sections 5 and 8)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Literal

import pytest

from orchestrator.resources import build_resources
from tests.fixtures.database import make_settings
from tests.resilience.conftest import MailServer, OwnPostgres
from tests.resilience.shop import (
    all_final,
    deliveries,
    dispatch_settings,
    eventually,
    launch_campaign,
    plan_campaign,
    seed_shop,
    worker,
)

EMAILS = 80
# Short retry intervals (full jitter up to the cap), and room for many of them: an outage of a
# few seconds must leave the emails waiting, not failed.
BACKOFF = {
    "backoff_base": timedelta(seconds=0.5),
    "backoff_cap": timedelta(seconds=2),
    "max_attempts": 12,
}


@pytest.mark.parametrize("outage", ["stopped", "refusing"])
async def test_emails_wait_out_an_smtp_outage_and_all_go_out(
    own_postgres: OwnPostgres,
    mail_server: MailServer,
    outage: Literal["stopped", "refusing"],
) -> None:
    settings = make_settings(
        own_postgres.url,
        smtp_port=mail_server.port,
        smtp_pool_size=2,
        smtp_max_per_second=30,
        lease_seconds=5,
        dispatch_interval_seconds=0.2,
        dispatch_concurrency=8,
        db_pool_size=5,
    )
    resources = build_resources(settings)
    inbox = mail_server.handler
    try:
        shop = await seed_shop(resources, messenger=0, email_only=EMAILS)
        campaign_id = await launch_campaign(resources, shop.workspace_id)
        assert await plan_campaign(resources) == EMAILS

        async def some_sent() -> bool:
            return len(inbox.messages) >= EMAILS // 4

        async def retried_twice() -> bool:
            waiting = [r for r in await deliveries(resources, campaign_id) if r.state != "sent"]
            return bool(waiting) and all(r.attempts >= 2 for r in waiting)

        async def finished() -> bool:
            return await all_final(EMAILS)(resources, campaign_id)

        async with worker(resources, dispatch_with=dispatch_settings(resources, **BACKOFF)):
            await eventually(some_sent, within=20, what="a quarter of the emails sent")
            if outage == "stopped":
                await asyncio.to_thread(mail_server.stop)
            else:
                inbox.mode = "refuse"
            received_before = len(inbox.messages)
            await eventually(retried_twice, within=30, what="every waiting email tried twice")
            during = await deliveries(resources, campaign_id)
            if outage == "stopped":
                await asyncio.to_thread(mail_server.start)
            else:
                inbox.mode = "accept"
            await eventually(finished, within=30, what="every email final")
        rows = await deliveries(resources, campaign_id)
    finally:
        await resources.close()

    # While the relay was away: waiting with a temporary error, none failed.
    waiting = [r for r in during if r.state != "sent"]
    assert received_before < EMAILS and waiting
    assert {r.state for r in waiting} <= {"pending", "claimed"}
    assert {(r.last_error or {}).get("class") for r in waiting} == {"temporary"}
    if outage == "refusing":
        assert inbox.refused >= 2 * len(waiting)
    # Back: everyone's email, once each (a repeat, if the relay dropped a connection after
    # taking a message, keeps its Message-ID).
    assert Counter(r.state for r in rows) == {"sent": EMAILS}
    received = Counter(mail.message_id for mail in inbox.messages)
    assert set(received) == {r.provider_message_id for r in rows}
    assert sum(received.values()) - len(received) <= settings.smtp_pool_size
    waited = {r.id for r in waiting}
    assert all(r.attempts >= 3 for r in rows if r.id in waited)
