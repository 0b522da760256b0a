"""Accept now, apply later: a popup or embedded form's capture is answered once it is in the
capture inbox, and the `capture.apply` job makes the contact, ledger, tags, confirmation and
trigger. These tests use a client that does not apply the inbox by itself (conftest.py's does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import migrate
from orchestrator.capture import capture, inbox
from orchestrator.capture.form_cache import FormCache
from orchestrator.capture.forms import FormNotFound
from orchestrator.capture.guard import CaptureSettings
from orchestrator.capture.inbox import InboxWriter
from orchestrator.clock import FrozenClock
from orchestrator.db import create_engine, session_factory
from orchestrator.ids import new_id
from orchestrator.models import CaptureForm, CaptureInbox, table_of
from orchestrator.resources import Resources
from orchestrator.scheduler import EmbeddedScheduler, register_jobs
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import create_pg_schema, drop_pg_schema, make_settings
from tests.integration.capture.visitor import SITE, Visitor, create_form, row_counts


@pytest.fixture
async def raw(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def apply(resources: Resources) -> int:
    return await inbox.apply_until_idle(
        resources.sessions, resources.keyring, settings=CaptureSettings.of(resources.settings)
    )


async def stats(client: httpx.AsyncClient, tenant: Tenant, form_id: str) -> dict[str, int]:
    found = await client.get(f"/v1/forms/{form_id}/stats", headers=tenant.headers)
    assert found.status_code == 200, found.text
    return {k: v for k, v in found.json().items() if k in ("captured", "duplicates")}


async def test_the_answer_comes_from_the_inbox_and_the_job_applies_it(
    raw: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    form = await create_form(raw, tenant, double_opt_in=False)
    captured_at = clock.now() + timedelta(seconds=3)  # the visitor's fill time
    answer = await Visitor(raw, clock, form["id"]).submit("Mai@Example.com", name="Mai")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "subscribed",
        "double_opt_in": False,
        "messenger_url": None,
        "spin": None,
    }
    counts = await row_counts(sessions)
    assert {k: v for k, v in counts.items() if v} == {"capture_token_uses": 1, "capture_inbox": 1}
    assert await stats(raw, tenant, form["id"]) == {"captured": 0, "duplicates": 0}

    clock.advance(timedelta(minutes=5))  # the job runs later; the capture keeps its own time
    assert await apply(resources) == 1
    counts = await row_counts(sessions)
    assert counts["capture_inbox"] == 0
    assert (counts["contacts"], counts["consent_ledger"], counts["contact_tags"]) == (1, 1, 1)
    async with sessions() as s:
        at = (await s.execute(sa.text("SELECT occurred_at FROM consent_ledger"))).scalar_one()
        ip = (await s.execute(sa.text("SELECT ip FROM consent_ledger"))).scalar_one()
    assert str(at)[:19].replace("T", " ") == captured_at.strftime("%Y-%m-%d %H:%M:%S")
    assert ip == "127.0.0.1"
    assert await stats(raw, tenant, form["id"]) == {"captured": 1, "duplicates": 0}
    assert await apply(resources) == 0


async def test_the_same_token_sent_twice_at_once_is_accepted_once(
    raw: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(raw, tenant)
    visitor = Visitor(raw, clock, form["id"])
    token = await visitor.token()
    # Both join the same group commit: the batch itself must tell them apart.
    answers = await asyncio.gather(
        visitor.submit("a@example.com", token=token), visitor.submit("b@example.com", token=token)
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    counts = await row_counts(sessions)
    assert (counts["capture_inbox"], counts["capture_token_uses"]) == (1, 1)
    again = await visitor.submit("c@example.com", token=token)  # a later batch
    assert again.status_code == 409
    assert (await row_counts(sessions))["capture_inbox"] == 1


async def test_a_row_that_cannot_be_applied_is_marked_failed_and_blocks_nothing(
    raw: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    form = await create_form(raw, tenant)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.insert(table_of(CaptureInbox)).values(
                id=new_id("ci"),
                workspace_id=tenant.workspace_id,
                form_id="fm_gone",
                contact_id=new_id("ct"),
                address="lost@example.com",
                consent_version="1",
                status=inbox.PENDING,
                received_at=clock.now() - timedelta(seconds=1),
            )
        )
    assert (await Visitor(raw, clock, form["id"]).submit("ok@example.com")).status_code == 200
    assert await apply(resources) == 2
    async with sessions() as s:
        rows = (await s.execute(sa.select(table_of(CaptureInbox)))).all()
        pending = await inbox.pending(s)
    assert [(r.form_id, r.status) for r in rows] == [("fm_gone", inbox.FAILED)]
    assert "fm_gone" in (rows[0].error or "")
    assert pending == 0
    assert await stats(raw, tenant, form["id"]) == {"captured": 1, "duplicates": 0}


async def test_captures_wait_in_the_inbox_for_the_scheduler_job(resources: Resources) -> None:
    scheduler = EmbeddedScheduler(resources, kind="test")
    register_jobs(scheduler, resources)
    job = scheduler._scheduler.get_job("capture.apply")
    assert job is not None
    assert job.trigger.interval == timedelta(seconds=resources.settings.inbox_interval_seconds)


async def test_a_changed_form_is_read_again_here_at_once_and_elsewhere_after_its_ttl(
    raw: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(raw, tenant)
    visitor = Visitor(raw, clock, form["id"])
    assert (await visitor.submit("one@example.com")).status_code == 200  # the form is cached
    token = await visitor.token()
    moved = await raw.patch(
        f"/v1/forms/{form['id']}",
        headers=tenant.headers,
        json={"allowed_origins": ["https://other.example"]},
    )
    assert moved.status_code == 200, moved.text
    # Changed through this process: the capture sees it at once.
    refused = await visitor.submit("two@example.com", token=token)
    assert refused.status_code == 403, refused.text

    now = [0.0]
    cache = FormCache(sessions, ttl=5, clock=lambda: now[0])
    assert (await cache.get(form["id"])).form.allowed_origins == ["https://other.example"]
    async with sessions() as s, s.begin():  # as another process would
        await s.execute(
            sa.update(table_of(CaptureForm))
            .where(table_of(CaptureForm).c.id == form["id"])
            .values(allowed_origins=[SITE])
        )
    now[0] = 4.9
    assert (await cache.get(form["id"])).form.allowed_origins == ["https://other.example"]
    now[0] = 5.0
    assert (await cache.get(form["id"])).form.allowed_origins == [SITE]
    with pytest.raises(FormNotFound):
        await cache.get("fm_" + "0" * 26)


@pytest.mark.parametrize("double_opt_in", [True, False])
async def test_the_same_address_twice_in_one_batch_makes_one_contact_and_one_confirmation(
    raw: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    double_opt_in: bool,
) -> None:
    form = await create_form(raw, tenant, double_opt_in=double_opt_in)
    visitor = Visitor(raw, clock, form["id"])
    for typed in ("hoa@example.com", " HOA@Example.com "):
        assert (await visitor.submit(typed)).status_code == 200
    assert (await row_counts(sessions))["capture_inbox"] == 2
    assert await apply(resources) == 2
    counts = await row_counts(sessions)
    assert (counts["contacts"], counts["email_identities"], counts["capture_inbox"]) == (1, 1, 0)
    assert counts["deliveries"] == (1 if double_opt_in else 0)
    assert counts["consent_ledger"] == (0 if double_opt_in else 1)
    assert await stats(raw, tenant, form["id"]) == {"captured": 1, "duplicates": 1}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_writer_over_a_pool_answers_every_capture_once(
    backend: str, tmp_path: Path
) -> None:
    """A server's writer: sessions from a pool, a second commit in flight while the first runs."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}"
    else:
        schema, url = create_pg_schema()
    engine = create_engine(make_settings(url))
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        async with sessions() as s, s.begin():
            workspace = await create_workspace(s, name="w", now=T0)
        form = CaptureForm(
            id="fm_writer", workspace_id=workspace.id, kind="popup", name="w",
            allowed_origins=[SITE], consent_text="ok", consent_version="1",
            created_at=T0, updated_at=T0,
        )  # fmt: skip
        writer = InboxWriter(sessions)
        tokens = [f"token-{n % 150}" for n in range(200)]  # 50 tokens sent twice

        async def send(n: int, token: str) -> bool:
            submission = capture.Submission(address=f"w{n}@example.com", consent_version="1")
            try:
                await writer.accept(form=form, token=token, submission=submission, now=T0)
            except capture.TokenReplayed:
                return False
            return True

        sent: list[asyncio.Task[bool]] = []
        for n, token in enumerate(tokens):
            sent.append(asyncio.create_task(send(n, token)))
            await asyncio.sleep(0)  # one at a time, so that some arrive while a batch commits
        verdicts = await asyncio.gather(*sent)
        assert (verdicts.count(True), verdicts.count(False)) == (150, 50)
        async with sessions() as s:
            assert await inbox.pending(s) == 150
    finally:
        await engine.dispose()
        if schema:
            drop_pg_schema(schema)
