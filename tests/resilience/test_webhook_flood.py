"""A flood of signed Messenger webhooks, posted all at once to `outreach serve` (a process of its
own, on the test's own PostgreSQL), with Meta's redeliveries among them: every post is
acknowledged with 200 well inside Meta's timeout, every event is stored once in the inbox, and the
server's embedded scheduler applies them all (DESIGN section 8, "Webhooks")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from channels.sandbox.signature import SIGNATURE_HEADER, sign
from orchestrator.models import InteractionEvent, MessengerIdentity, WebhookInbox, table_of
from orchestrator.resources import Resources, build_resources
from tests.fixtures.database import TEST_SECRET, make_settings
from tests.resilience.conftest import OwnPostgres, free_port
from tests.resilience.shop import APP_ID, APP_SECRET, PAGE_ID, eventually, seed_shop

PEOPLE = 250
MESSAGES_EACH = 2
REDELIVERED = 50  # posts Meta sends again (its retry after a slow answer): stored once
ACK_WITHIN = 5.0  # seconds; Meta retries a webhook not answered in time
ROOT = Path(__file__).resolve().parents[2]


def body_of(psid: str, index: int, at: datetime) -> bytes:
    ms = int(at.timestamp() * 1000)
    event = {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": ms,
        "message": {"mid": f"m_flood_{psid}_{index}", "text": f"Shop ơi, tin số {index}"},
    }
    envelope = {"object": "page", "entry": [{"id": PAGE_ID, "time": ms, "messaging": [event]}]}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture
def api_server(own_postgres: OwnPostgres, tmp_path: Path) -> Iterator[str]:
    """`outreach serve` on the test's database; stopped (and killed if it must be) at the end."""
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("OUTREACH_")},
        "OUTREACH_DATABASE_URL": own_postgres.url,
        "OUTREACH_SECRET_KEY": TEST_SECRET,
        "OUTREACH_PUBLIC_URL": "https://outreach.test",
        "OUTREACH_GRAPH_API_URL": "http://127.0.0.1:9",
        "OUTREACH_INBOX_INTERVAL_SECONDS": "0.3",
        "OUTREACH_LOG_LEVEL": "WARNING",
        "OUTREACH_LOG_FORMAT": "text",
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"outreach serve exited ({server.returncode}): see {log.name}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("outreach serve did not answer /healthz within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


async def post(port: int, raw: bytes) -> tuple[int, float]:
    """One signed webhook on a connection of its own, as Meta posts them; (status, seconds from
    connecting to the answer). Plain asyncio streams: an httpx pool of hundreds of connections
    in this process would time itself, not the server (encode/httpx#3215)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST /webhooks/messenger/{APP_ID} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"{SIGNATURE_HEADER}: {sign(raw, APP_SECRET)}\r\n"
            f"Content-Length: {len(raw)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + raw)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1]), time.monotonic() - started


async def test_a_webhook_flood_is_acknowledged_in_time_and_nothing_is_lost(
    own_postgres: OwnPostgres, api_server: str
) -> None:
    resources = build_resources(make_settings(own_postgres.url))
    try:
        await seed_shop(resources, messenger=0, email_only=0)
        now = resources.clock.now()
        psids = [str(7_100_000_000_000_000 + index) for index in range(PEOPLE)]
        # Each person's messages a second apart, in the last minutes.
        events = [
            (psid, index, now - timedelta(minutes=5) + timedelta(seconds=index))
            for psid in psids
            for index in range(MESSAGES_EACH)
        ]
        bodies = [body_of(*event) for event in events]
        port = int(api_server.rsplit(":", 1)[1])
        answers = await asyncio.gather(*(post(port, raw) for raw in bodies + bodies[:REDELIVERED]))

        assert {status for status, _ in answers} == {200}
        slowest = max(seconds for _, seconds in answers)
        assert slowest < ACK_WITHIN

        async def all_applied() -> bool:
            return await _inbox_statuses(resources) == {"applied": len(events)}

        await eventually(all_applied, within=30, what="every stored event applied")
        identities, messages = await _applied(resources, psids)
    finally:
        await resources.close()

    # Each person became one Messenger identity whose window dates from their last message,
    # and each message one interaction event.
    last = {psid: at for psid, _, at in events}
    assert {psid: _ms(at) for psid, at in identities.items()} == {
        psid: _ms(at) for psid, at in last.items()
    }
    assert messages == Counter(psid for psid, _, _ in events)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _inbox_statuses(resources: Resources) -> dict[str, int]:
    inbox = table_of(WebhookInbox)
    async with resources.sessions() as session:
        result = await session.execute(
            sa.select(inbox.c.status, sa.func.count()).group_by(inbox.c.status)
        )
        return {str(status): int(count) for status, count in result.all()}


async def _applied(
    resources: Resources, psids: list[str]
) -> tuple[dict[str, datetime], dict[str, int]]:
    identities = table_of(MessengerIdentity)
    events = table_of(InteractionEvent)
    async with resources.sessions() as session:
        windows = await session.execute(
            sa.select(identities.c.psid, identities.c.last_user_message_at).where(
                identities.c.psid.in_(psids)
            )
        )
        counts = await session.execute(
            sa.select(events.c.psid, sa.func.count())
            .where(events.c.psid.in_(psids), events.c.type == "message")
            .group_by(events.c.psid)
        )
        return (
            {str(psid): at.astimezone(UTC) for psid, at in windows.all()},
            {str(psid): int(count) for psid, count in counts.all()},
        )
