"""The Graph API answers 613 ("Calls to this api have exceeded the rate limit") for a few seconds
in the middle of a campaign: the refused sends back off and are retried, the Page's budget is
never exceeded (the emulator's own limiter refuses nothing, and no second holds more calls than
the budget, retries included), and every message goes out exactly once (DESIGN sections 5 and 8).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from channels.sandbox import AfterSend, GraphEmulator
from channels.sandbox.records import RecordedRequest
from channels.sandbox.server import serve_in_thread
from orchestrator.resources import build_resources
from tests.fixtures.database import make_settings
from tests.resilience.conftest import OwnPostgres
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

PEOPLE = 200
LIMIT = 50  # Send API calls a second the emulated Meta allows the Page (Meta's 300, scaled down)
# Ours, set below it: the pace (94 % of it, bursts of 3) then leaves room for the jitter between
# granting a call here and its arrival there (channels.messenger.ratelimit).
PAGE_SEND_RATE = 45
RATE_LIMIT_SUBCODE = 2534040  # how the injected 613s differ from the emulator limiter's own
RATE_LIMITED_FOR = timedelta(seconds=3)
BACKOFF = {
    "backoff_base": timedelta(seconds=0.5),
    "backoff_cap": timedelta(seconds=2),
    "max_attempts": 12,
}


def error_of(request: RecordedRequest) -> dict[str, Any]:
    response = request.response if isinstance(request.response, dict) else {}
    error = response.get("error")
    return error if isinstance(error, dict) else {}


def delivery_of(request: RecordedRequest) -> str:
    body = request.body if isinstance(request.body, dict) else {}
    return str((body.get("message") or {}).get("metadata"))


def busiest_second(times: list[datetime]) -> int:
    """The most calls in any window of one second (sliding)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - timedelta(seconds=1):
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_sends_back_off_under_613_and_all_complete(own_postgres: OwnPostgres) -> None:
    emulator = GraphEmulator(
        after_send=AfterSend(echo=False, delivery=False), send_rate_per_second=LIMIT
    )
    # Its own thread and loop, as Meta is elsewhere: it stamps arrivals as they come.
    with serve_in_thread(emulator.app) as graph_url:
        settings = make_settings(
            own_postgres.url,
            graph_api_url=graph_url,
            page_send_rate=PAGE_SEND_RATE,
            lease_seconds=5,
            dispatch_interval_seconds=0.2,
            dispatch_concurrency=16,
            db_pool_size=5,
        )
        resources = build_resources(settings)
        try:
            shop = await seed_shop(resources, messenger=PEOPLE, email_only=0, emulator=emulator)
            campaign_id = await launch_campaign(resources, shop.workspace_id)
            assert await plan_campaign(resources) == PEOPLE

            async def some_sent() -> bool:
                return len(emulator.sent) >= PEOPLE // 4

            async def finished() -> bool:
                return await all_final(PEOPLE)(resources, campaign_id)

            async with worker(resources, dispatch_with=dispatch_settings(resources, **BACKOFF)):
                await eventually(some_sent, within=20, what="a quarter of the messages sent")
                fault = emulator.inject_rate_limit(RATE_LIMIT_SUBCODE, duration=RATE_LIMITED_FOR)
                await eventually(finished, within=40, what="every delivery final")
            rows = await deliveries(resources, campaign_id)
        finally:
            await resources.close()

    sends = [r for r in emulator.requests if r.endpoint == "messages"]
    refused = [r for r in sends if r.status_code != 200]
    assert fault.fired > 0
    # Every refusal was the injected one: the Page's own budget was never exceeded...
    assert {(error_of(r).get("code"), error_of(r).get("error_subcode")) for r in refused} == {
        (613, RATE_LIMIT_SUBCODE)
    }
    assert len(refused) == fault.fired
    # The Page slowed down: after the first refusal it cooled down (1 s, then 2 s) instead of
    # sending into the limit at its full pace for the 3 s of refusals (about 135 calls).
    assert len(refused) < PAGE_SEND_RATE
    # ... not even by the retries: no second holds more calls than the budget.
    assert busiest_second([r.at for r in sends]) <= LIMIT
    # The refused sends waited and went again; everything went out, once.
    assert Counter(r.state for r in rows) == {"sent": PEOPLE}
    assert Counter(str((m.message or {}).get("metadata")) for m in emulator.sent) == Counter(
        {r.id: 1 for r in rows}
    )
    refused_ids = {delivery_of(r) for r in refused}
    assert {r.id for r in rows if r.attempts >= 2} == refused_ids
