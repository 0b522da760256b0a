"""PostgreSQL restarts while a campaign is being sent (DESIGN section 8): the worker's jobs fail
while the server is away, the engine reconnects when it is back, and every delivery ends sent;
a send repeated because its outcome could not be written is counted, within the at-least-once
bound (the sends in flight: a worker's rounds of one batch each)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime

import pytest

from channels.sandbox import AfterSend, GraphEmulator
from channels.sandbox.server import serve
from orchestrator import dispatch
from orchestrator.models import Campaign, WorkerHeartbeat
from orchestrator.resources import build_resources
from tests.fixtures.database import make_settings
from tests.resilience.conftest import MailServer, OwnPostgres
from tests.resilience.shop import (
    Row,
    all_final,
    deliveries,
    eventually,
    launch_campaign,
    seed_shop,
    worker,
)

MESSENGER, EMAIL = 200, 100


async def test_a_postgres_restart_mid_campaign_loses_nothing(
    own_postgres: OwnPostgres, mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = GraphEmulator(after_send=AfterSend(echo=False, delivery=False))
    async with serve(emulator.app) as graph_url:
        settings = make_settings(
            own_postgres.url,
            graph_api_url=graph_url,
            smtp_port=mail_server.port,
            smtp_pool_size=2,
            # Slow enough that the restart lands while the campaign is being sent.
            page_send_rate=40,
            smtp_max_per_second=20,
            # Longer than a batch takes (100 sends at 40/s) plus the restart: sends do not check
            # their claim's lease before going out, so with a shorter lease a round re-claims
            # and sends again rows the other round is still sending.
            lease_seconds=6,
            dispatch_interval_seconds=0.2,
            dispatch_concurrency=8,
            db_pool_size=5,
        )
        resources = build_resources(settings)
        try:
            shop = await seed_shop(
                resources, messenger=MESSENGER, email_only=EMAIL, emulator=emulator
            )
            campaign_id = await launch_campaign(resources, shop.workspace_id)

            def sent_so_far() -> int:
                return len(emulator.sent) + len(mail_server.handler.messages)

            async def a_third_sent() -> bool:
                return sent_so_far() >= (MESSENGER + EMAIL) // 3

            async def finished() -> bool:
                return await all_final(MESSENGER + EMAIL)(resources, campaign_id)

            async def completed() -> bool:
                async with resources.sessions() as session:
                    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
                    return campaign is not None and campaign.status == "completed"

            caplog.set_level(logging.ERROR, logger="orchestrator.scheduler")
            async with worker(resources) as scheduler:
                await eventually(a_third_sent, within=30, what="a third of the campaign sent")
                postmaster = own_postgres.postmaster_pid()
                await asyncio.to_thread(own_postgres.restart)
                restarted_at = datetime.now(UTC)
                sent_at_restart = sent_so_far()
                assert own_postgres.postmaster_pid() not in (None, postmaster)
                await eventually(finished, within=40, what="every delivery final")
                await eventually(completed, within=15, what="the campaign completed")
                async with resources.sessions() as session:
                    heartbeat = await session.get(WorkerHeartbeat, scheduler.worker.id)
                assert heartbeat is not None and heartbeat.seen_at > restarted_at
        finally:
            await resources.close()

    assert sent_at_restart < MESSENGER + EMAIL  # the restart came mid-campaign
    rows = await _rows_after(own_postgres, campaign_id)
    assert Counter(row.state for row in rows) == {"sent": MESSENGER + EMAIL}
    assert Counter((row.channel, row.reason) for row in rows) == {
        ("messenger", "messenger.window"): MESSENGER,
        ("email", "email.no_messenger"): EMAIL,
    }

    # Every delivery reached its person; a repeat carries the same delivery id (Messenger's
    # metadata) or Message-ID (email), so it is counted, never mistaken for a new message.
    sends = [(m.at, str((m.message or {}).get("metadata"))) for m in emulator.sent]
    sends += [(mail.at, mail.message_id) for mail in mail_server.handler.messages]
    first: dict[str, datetime] = {}
    for at, key in sorted(sends):
        first.setdefault(key, at)
    assert set(first) == {row.id for row in rows if row.channel == "messenger"} | {
        row.provider_message_id for row in rows if row.channel == "email"
    }
    repeats = Counter(key for _, key in sends) - Counter(first.keys())
    # At least once, bounded by what was in flight when the server went away: a send made
    # after it was back is recorded, never repeated.
    assert sum(repeats.values()) <= settings.dispatch_rounds * dispatch.DispatchSettings().batch
    assert [key for key in repeats if first[key] > restarted_at] == []
    # The worker felt the restart: a job, or a send inside the dispatch job (whose outcome is
    # then retried), failed on the dropped connections, was logged, and the work went on.
    assert {"job failed", "send failed"} & {record.getMessage() for record in caplog.records}


async def _rows_after(own_postgres: OwnPostgres, campaign_id: str) -> list[Row]:
    resources = build_resources(make_settings(own_postgres.url))
    try:
        return await deliveries(resources, campaign_id)
    finally:
        await resources.close()
