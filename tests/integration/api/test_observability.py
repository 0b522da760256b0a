"""Observability on both databases: the counts `/metrics` reads from the rows, its cache,
`/readyz`'s worker check, the access log's route templates, and JSON log lines during a real send
through the Graph emulator (the ids are there, the Page token and the message text never are)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator import logs
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.metrics import DatabaseMetrics, MetricsCache, families, read_database_metrics
from orchestrator.models import (
    CaptureCounter,
    CaptureInbox,
    Delivery,
    Page,
    WebhookInbox,
    table_of,
)
from orchestrator.resources import Resources
from orchestrator.scheduler import WorkerIdentity, record_heartbeat
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import Database, make_settings
from tests.integration.api.test_contacts_api import PAGE, add_page
from tests.integration.webhooks.test_one_off_sends import deliveries, person, run_dispatch
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, TOKEN, wired  # noqa: F401

NOW = T0


def delivery(
    workspace_id: str,
    state: str,
    *,
    channel: str | None = None,
    reason: str | None = None,
    error: dict[str, Any] | None = None,
    attempts: int = 0,
    due_at: datetime = NOW - timedelta(hours=1),
    next_attempt_at: datetime | None = None,
    page_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("dl"),
        "workspace_id": workspace_id,
        "kind": "campaign",
        "contact_id": new_id("ct"),
        "purpose": "promotional",
        "state": state,
        "channel": channel,
        "reason": reason,
        "last_error": error,
        "attempts": attempts,
        "due_at": due_at,
        "next_attempt_at": next_attempt_at,
        "page_id": page_id,
        "content": {"text": "Giảm giá 20% hôm nay"},
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW,
    }


def inbox_row(event_type: str, received_at: datetime, *, applied: bool) -> dict[str, Any]:
    return {
        "id": new_id("wh"),
        "app_id": "9000001",
        "event_key": new_id("key"),
        "event_type": event_type,
        "event_time": received_at,
        "payload": "{}",
        "status": "applied" if applied else "pending",
        "received_at": received_at,
        "applied_at": received_at + timedelta(seconds=1) if applied else None,
    }


TEMPORARY = {"class": "temporary", "code": 1200, "message": "(#1200) Temporary send failure"}


def capture_row(status: str, received_at: datetime) -> dict[str, Any]:
    return {
        "id": new_id("cin"),
        "form_id": "frm_a",
        "contact_id": new_id("ct"),
        "address": "an@example.com",
        "consent_version": "v1",
        "status": status,
        "received_at": received_at,
    }


async def seed(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    """Rows of every kind the metrics distinguish; `expected` below is what they add up to."""
    ws = tenant.workspace_id
    await add_page(sessions, tenant)
    rows = [
        delivery(ws, "sent", channel="messenger", reason="messenger.window"),
        delivery(ws, "sent", channel="messenger", reason="messenger.window"),
        delivery(ws, "sent", channel="email", reason="email.window_closed"),
        delivery(ws, "skipped", reason="skipped.unsubscribed"),
        delivery(ws, "skipped", reason="skipped.bounced", error={"class": "recipient_rejected"}),
        delivery(ws, "failed", reason="failed.page_paused", error={"class": "page_paused"}),
        # A render failure is no provider error: counted by reason, not by error class.
        delivery(ws, "failed", reason="failed.render", error={"message": "undefined name"}),
        delivery(ws, "cancelled"),
        # Due since its retry time (10 s ago), not since its original due time (1 h ago).
        delivery(
            ws,
            "pending",
            error=TEMPORARY,
            attempts=1,
            next_attempt_at=NOW - timedelta(seconds=10),
        ),
        delivery(ws, "pending", due_at=NOW - timedelta(seconds=30)),
        # Waiting for its next attempt: retrying, not due.
        delivery(
            ws, "pending", error=TEMPORARY, attempts=2, next_attempt_at=NOW + timedelta(minutes=5)
        ),
        # A paused Page's rows wait on purpose: not late work.
        delivery(ws, "pending", due_at=NOW - timedelta(hours=2), page_id=PAGE),
        delivery(ws, "pending", due_at=NOW + timedelta(hours=1)),
        delivery(ws, "claimed"),
        delivery(ws, "held", reason="held.until_window"),
    ]
    inbox = [
        inbox_row("message", NOW - timedelta(minutes=5), applied=True),
        inbox_row("message", NOW - timedelta(minutes=4), applied=True),
        inbox_row("message", NOW - timedelta(seconds=45), applied=False),
        inbox_row("read", NOW - timedelta(seconds=20), applied=False),
        inbox_row("standby", NOW - timedelta(minutes=9), applied=True),
    ]
    counters = [
        {"form_id": "frm_a", "outcome": "captured", "count": 3},
        {"form_id": "frm_a", "outcome": "confirmed", "count": 1},
        {"form_id": "frm_a", "outcome": "rejected.honeypot", "count": 2},
        {"form_id": "frm_b", "outcome": "captured", "count": 4},
    ]
    accepted = [
        capture_row("pending", NOW - timedelta(seconds=12)),
        capture_row("pending", NOW - timedelta(seconds=3)),
        capture_row("failed", NOW - timedelta(hours=1)),
    ]
    async with sessions() as s, s.begin():
        await s.execute(sa.insert(table_of(Delivery)), rows)
        await s.execute(sa.insert(table_of(WebhookInbox)), inbox)
        await s.execute(
            sa.insert(table_of(CaptureCounter)), [{**c, "workspace_id": ws} for c in counters]
        )
        await s.execute(
            sa.insert(table_of(CaptureInbox)), [{**c, "workspace_id": ws} for c in accepted]
        )
        await s.execute(
            sa.update(table_of(Page)).where(table_of(Page).c.page_id == PAGE).values(paused_at=NOW)
        )


async def read(sessions: async_sessionmaker[AsyncSession]) -> DatabaseMetrics:
    async with sessions() as s:
        return await read_database_metrics(s, now=NOW)


async def test_metrics_count_what_the_rows_say(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await seed(sessions, tenant)
    metrics = await read(sessions)
    assert metrics.deliveries == {
        ("sent", "messenger", "messenger.window"): 2,
        ("sent", "email", "email.window_closed"): 1,
        ("skipped", "none", "skipped.unsubscribed"): 1,
        ("skipped", "none", "skipped.bounced"): 1,
        ("failed", "none", "failed.page_paused"): 1,
        ("failed", "none", "failed.render"): 1,
        ("cancelled", "none", "none"): 1,
    }
    assert metrics.delivery_errors == {
        ("skipped", "recipient_rejected"): 1,
        ("failed", "page_paused"): 1,
    }
    assert metrics.retrying == {"temporary": 2}
    assert (metrics.queue_depth, metrics.oldest_due_age_seconds) == (2, 30.0)
    assert metrics.in_flight == 1
    assert metrics.webhook_events == {"message": 3, "read": 1, "standby": 1}
    assert (metrics.inbox_pending, metrics.inbox_lag_seconds) == (2, 45.0)
    assert metrics.captures == {"captured": 7, "confirmed": 1, "rejected.honeypot": 2}
    # A failed capture waits for a person, not for the job: it is no lag.
    assert metrics.capture_inbox == {"pending": 2, "failed": 1}
    assert metrics.capture_inbox_lag_seconds == 12.0


async def test_an_empty_database_reads_zeros(sessions: async_sessionmaker[AsyncSession]) -> None:
    metrics = await read(sessions)
    assert metrics.deliveries == {} and metrics.webhook_events == {} and metrics.captures == {}
    assert (metrics.queue_depth, metrics.oldest_due_age_seconds) == (0, 0.0)
    assert (metrics.inbox_pending, metrics.inbox_lag_seconds) == (0, 0.0)
    assert (metrics.capture_inbox, metrics.capture_inbox_lag_seconds) == ({}, 0.0)


async def test_families_carry_no_ids(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await seed(sessions, tenant)
    exported = families(await read(sessions))
    by_name = {family.name: family for family in exported}
    deliveries_total = by_name["outreach_deliveries"]
    assert deliveries_total.kind == "counter"
    assert (
        (("state", "sent"), ("channel", "messenger"), ("reason", "messenger.window")),
        2,
    ) in [(sample.labels, sample.value) for sample in deliveries_total.samples]
    assert by_name["outreach_queue_oldest_due_age_seconds"].samples[0].value == 30.0
    assert by_name["outreach_webhook_inbox_lag_seconds"].kind == "gauge"
    labels = {
        value for family in exported for sample in family.samples for _, value in sample.labels
    }
    assert not any(value.startswith(("ws_", "ct_", "dl_", "frm_", "wh_")) for value in labels)
    assert tenant.workspace_id not in labels and PAGE not in labels


async def test_the_cache_reads_once_per_ttl(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, clock: FrozenClock
) -> None:
    cache = MetricsCache(timedelta(seconds=5), clock=clock.now)
    first = await cache.read(sessions)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.insert(table_of(Delivery)),
            [delivery(tenant.workspace_id, "sent", channel="email", reason="email.no_messenger")],
        )
    clock.advance(timedelta(seconds=4))
    assert await cache.read(sessions) is first
    clock.advance(timedelta(seconds=1))
    fresh = await cache.read(sessions)
    assert fresh.deliveries == {("sent", "email", "email.no_messenger"): 1}
    assert fresh.read_at == T0 + timedelta(seconds=5)


# -- /readyz --------------------------------------------------------------------------------------


async def test_readyz_wants_a_recent_heartbeat(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    alone = await client.get("/readyz")
    assert alone.status_code == 503
    assert alone.json() == {
        "status": "not ready",
        "checks": {
            "database": "ok",
            "migrations": "current",
            "email": "ok",
            "worker": "none seen in 60s",
        },
    }
    worker = WorkerIdentity.of_this_process("worker")
    async with sessions() as s, s.begin():
        await record_heartbeat(
            s,
            worker=worker,
            now=clock.now() - timedelta(seconds=5),
            forget_after=timedelta(hours=1),
        )
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["worker"] == "ok"
    clock.advance(timedelta(seconds=56))
    assert (await client.get("/readyz")).status_code == 503


async def test_readyz_worker_age_is_a_setting(
    database: Database, sessions: async_sessionmaker[AsyncSession], resources: Resources
) -> None:
    from orchestrator.app import create_app
    from orchestrator.resources import build_resources

    patient = build_resources(
        make_settings(database.url, readyz_worker_max_age_seconds=600),
        engine=database.engine,
        sessions=sessions,
        clock=resources.clock,
        messenger=resources.messenger,
    )
    async with sessions() as s, s.begin():
        await record_heartbeat(
            s,
            worker=WorkerIdentity.of_this_process("serve"),
            now=T0 - timedelta(minutes=9),
            forget_after=timedelta(hours=1),
        )
    app = create_app(resources=patient, run_scheduler=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.json()


# -- the access log -------------------------------------------------------------------------------


async def test_access_log_names_the_route_never_the_path(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="outreach.access"):
        await client.get("/v1/contacts/ct_private0001", headers=tenant.headers)
        await client.get("/u/some-signed-link-token?x=1")
        await client.get("/nothing/here/tok_abc")
        await client.get("/healthz")
    records = [r for r in caplog.records if r.name == "outreach.access"]
    seen = [(r.method, r.route, r.status, r.levelno) for r in records]  # type: ignore[attr-defined]
    assert seen == [
        ("GET", "/v1/contacts/{contact_id}", 404, logging.INFO),
        ("GET", "/u/{token}", seen[1][2], logging.INFO),
        ("GET", "<unmatched>", 404, logging.INFO),
        ("GET", "/healthz", 200, logging.DEBUG),
    ]
    text = " ".join(r.getMessage() for r in records)
    for raw in ("ct_private0001", "some-signed-link-token", "tok_abc"):
        assert raw not in text
    assert all(r.duration_ms >= 0 for r in records)  # type: ignore[attr-defined]


# -- JSON logs during a send ----------------------------------------------------------------------


@pytest.fixture
def json_logs(database: Database) -> Iterator[io.StringIO]:
    """The process configuration of `outreach worker` (at DEBUG), writing into a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    stream = io.StringIO()
    settings = make_settings(database.url, log_level="DEBUG", log_format="json")
    logs.configure_logging(settings, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, previous in quiet.items():
            logging.getLogger(name).setLevel(previous)


async def test_json_logs_of_a_send_name_the_delivery_and_never_the_token(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    json_logs: io.StringIO,
) -> None:
    psid, _ = await person(wired, sessions, clock)
    # A temporary failure may have been delivered: the dispatcher says so, naming the delivery.
    wired.inject_temporary_failure(page_id=PAGE_ID, times=1)
    await run_dispatch(resources, clock)
    clock.advance(timedelta(minutes=5))
    await run_dispatch(resources, clock)
    [sent] = await deliveries(sessions)
    assert sent.state == "sent", sent.last_error
    [message] = wired.sent_to(PAGE_ID, psid)

    output = json_logs.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines, "nothing was logged"
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    about = [line for line in lines if line.get("delivery_id") == sent.id]
    assert about, [line["message"] for line in lines]
    # The channel adapter knows no ids: the dispatcher's log context names them on its lines.
    graph = [line for line in lines if "Graph API error temporary" in line["message"]]
    assert graph
    assert all(
        (line.get("delivery_id"), line.get("contact_id")) == (sent.id, sent.contact_id)
        for line in graph
    )
    assert TOKEN not in output
    assert message.message is not None
    assert str(message.message.get("text")) not in output


async def test_metrics_endpoint_exposes_the_counts_and_the_latency_histograms(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    resources: Resources,
) -> None:
    await seed(sessions, tenant)
    resources.process_metrics.on_graph_response("messages", "ok", 0.042)
    resources.process_metrics.on_smtp_send("temporary", 1.5)
    response = await client.get("/metrics")  # keyless, DESIGN section 9
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'outreach_deliveries_total{channel="messenger",reason="messenger.window",state="sent"} 2.0'
        in text
    )
    assert "outreach_queue_depth 2.0" in text
    assert 'outreach_captures_total{outcome="captured"} 7.0' in text
    assert 'outreach_graph_request_seconds_count{endpoint="messages",outcome="ok"} 1.0' in text
    assert (
        'outreach_graph_request_seconds_bucket{endpoint="messages",le="0.05",outcome="ok"} 1.0'
        in text
    )
    assert 'outreach_smtp_send_seconds_bucket{le="1.0",outcome="temporary"} 0.0' in text
    assert 'outreach_smtp_send_seconds_count{outcome="temporary"} 1.0' in text
    assert tenant.workspace_id not in text
