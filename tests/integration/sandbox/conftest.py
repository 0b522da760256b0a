"""Fixtures for the Graph API emulator tests: a frozen clock, a tiny webhook receiver, and the
emulator with one Page whose webhooks go in-process to that receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from channels.sandbox import GraphEmulator
from tests.integration.sandbox.graph_emulator_support import (
    APP_ID,
    APP_SECRET,
    GRAPH_BASE,
    PAGE_ID,
    PAGE_TOKEN,
    PAGE_USERNAME,
    RECEIVER_URL,
    START,
    TestClock,
    WebhookReceiver,
)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(START)


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver()


@pytest.fixture
async def emu(clock: TestClock, receiver: WebhookReceiver) -> AsyncIterator[GraphEmulator]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as client:
        emulator = GraphEmulator(clock.now, webhook_client=client)
        emulator.register_page(
            PAGE_ID,
            username=PAGE_USERNAME,
            access_token=PAGE_TOKEN,
            app_id=APP_ID,
            app_secret=APP_SECRET,
            webhook_url=RECEIVER_URL,
            get_started_payload="GET_STARTED",
        )
        yield emulator


@pytest.fixture
async def graph(emu: GraphEmulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=GRAPH_BASE) as client:
        yield client
