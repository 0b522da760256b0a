"""A shop on its Page, its contacts and a one-step campaign, on a test's own database; a worker
running the product's jobs on it; and what the test reads back.

Rows are written with Core, as the webhook and import paths leave them (those paths have tests of
their own); the campaign is launched with `runs.launch`, and from then on only the worker's jobs
move it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from channels.sandbox import GraphEmulator
from orchestrator import dispatch
from orchestrator.campaigns import runs
from orchestrator.campaigns.spec import validate_campaign
from orchestrator.db import transaction
from orchestrator.ids import new_id
from orchestrator.messenger_apps import seal_secret, seal_verify_token
from orchestrator.models import (
    Campaign,
    Contact,
    Delivery,
    EmailIdentity,
    MessengerApp,
    MessengerIdentity,
    Page,
    Workspace,
    table_of,
)
from orchestrator.pages import not_done, token_context
from orchestrator.resources import Resources
from orchestrator.scheduler import EmbeddedScheduler, register_jobs

APP_ID = "880000000000321"
APP_SECRET = "resilience-app-secret-0123456789"
PAGE_ID = "104000000000321"
PAGE_TOKEN = "EAAB-resilience-page-token"
GRAPH_VERSION = "v25.0"
PSID_BASE = 6_300_000_000_000_000


@dataclass(frozen=True)
class Shop:
    workspace_id: str
    psids: list[str]
    addresses: list[str]


async def seed_shop(
    resources: Resources,
    *,
    messenger: int,
    email_only: int,
    emulator: GraphEmulator | None = None,
) -> Shop:
    """A workspace with its Meta app and Page; `messenger` contacts whose window opened an hour
    ago (known to the emulator too) and `email_only` contacts with a subscribed address."""
    now = resources.clock.now()
    created = now - timedelta(days=1)
    opened = now - timedelta(hours=1)
    keyring = resources.keyring
    workspace_id = new_id("ws")
    psids = [str(PSID_BASE + index) for index in range(messenger)]
    addresses = [f"khach{index}@example.com" for index in range(email_only)]
    contacts: list[dict[str, Any]] = []
    identities: list[dict[str, Any]] = []
    emails: list[dict[str, Any]] = []
    for index, psid in enumerate(psids):
        contact_id = new_id("ct")
        contacts.append(_contact(contact_id, workspace_id, f"Khách M{index}", created))
        identities.append(
            {"id": new_id("mi"), "workspace_id": workspace_id, "contact_id": contact_id,
             "page_id": PAGE_ID, "psid": psid, "window_opened_at": opened,
             "last_user_message_at": opened, "last_event_at": opened, "created_at": created,
             "updated_at": created}
        )  # fmt: skip
    for index, address in enumerate(addresses):
        contact_id = new_id("ct")
        contacts.append(_contact(contact_id, workspace_id, f"Khách E{index}", created))
        emails.append(
            {"id": new_id("em"), "workspace_id": workspace_id, "contact_id": contact_id,
             "address": address, "status": "subscribed", "status_changed_at": created,
             "created_at": created}
        )  # fmt: skip
    async with transaction(resources.sessions) as session:
        session.add(
            Workspace(
                id=workspace_id,
                name="Áo Dài Hồng",
                from_name="Áo Dài Hồng",
                from_address="shop@aodaihong.vn",
                postal_address="12 Lý Thường Kiệt, Hoàn Kiếm, Hà Nội",
                created_at=created,
                updated_at=created,
            )
        )
        await session.flush()
        app = MessengerApp(
            id=new_id("app"),
            workspace_id=workspace_id,
            app_id=APP_ID,
            app_secret_enc=seal_secret(keyring, APP_ID, APP_SECRET),
            verify_token_enc=seal_verify_token(keyring, APP_ID, "resilience-verify"),
            created_at=created,
            updated_at=created,
        )
        session.add(app)
        await session.flush()
        session.add(
            Page(
                id=new_id("pg"),
                workspace_id=workspace_id,
                page_id=PAGE_ID,
                messenger_app_id=app.id,
                username="aodaihong",
                access_token_enc=keyring.encrypt(PAGE_TOKEN, context=token_context(PAGE_ID)),
                graph_api_version=GRAPH_VERSION,
                checks=not_done(),
                created_at=created,
                updated_at=created,
            )
        )
        await session.flush()
        for model, rows in ((Contact, contacts), (MessengerIdentity, identities)):
            if rows:
                await session.execute(sa.insert(table_of(model)), rows)
        if emails:
            await session.execute(sa.insert(table_of(EmailIdentity)), emails)
    if emulator is not None:
        emulator.register_page(
            PAGE_ID,
            username="aodaihong",
            access_token=PAGE_TOKEN,
            app_id=APP_ID,
            app_secret=APP_SECRET,
        )
        for psid in psids:
            emulator.add_person(PAGE_ID, psid, window_opened_at=opened, last_message_at=opened)
    return Shop(workspace_id, psids, addresses)


def _contact(contact_id: str, workspace_id: str, name: str, at: datetime) -> dict[str, Any]:
    return {
        "id": contact_id,
        "workspace_id": workspace_id,
        "name": name,
        "attributes": {},
        "created_at": at,
        "updated_at": at,
    }


CAMPAIGN: dict[str, Any] = {
    "name": "Khuyến mãi tháng 12",
    "page_id": PAGE_ID,
    "purpose": "promotional",
    "topic": "sale",
    "audience": {"email_status": [], "messenger": "any"},
    "steps": [
        {
            "delay": {"after": "0s"},
            "messenger": {"text": "Chào {{ contact.name }}! Áo dài giảm 30% hôm nay."},
            "email": {
                "subject": "Ưu đãi tháng 12 cho {{ contact.name }}",
                "html": "<p>Chào {{ contact.name }}, áo dài giảm 30%!</p>",
                "text": "Chào {{ contact.name }}, áo dài giảm 30%!",
            },
            "fallback": "email",
        }
    ],
    "schedule": "now",
}


async def launch_campaign(resources: Resources, workspace_id: str) -> str:
    spec = validate_campaign(CAMPAIGN)
    campaign_id = new_id("cp")
    now = resources.clock.now()
    async with transaction(resources.sessions) as session:
        campaign = Campaign(
            id=campaign_id,
            workspace_id=workspace_id,
            name=spec.name,
            page_id=spec.page_id,
            purpose=spec.purpose,
            topic=spec.topic,
            spec=spec.model_dump(mode="json"),
            created_at=now,
            updated_at=now,
        )
        session.add(campaign)
        await session.flush()
        assert await runs.launch(session, campaign=campaign, now=now) is not None
    return campaign_id


# -- the worker ----------------------------------------------------------------------------------


def dispatch_settings(resources: Resources, **overrides: Any) -> dispatch.DispatchSettings:
    """The worker's dispatch settings (as `register_jobs` builds them), with `overrides`."""
    settings = resources.settings
    values: dict[str, Any] = {
        "lease": timedelta(seconds=settings.lease_seconds),
        "takeover_quiet": timedelta(seconds=settings.takeover_quiet_seconds),
        "concurrency": settings.dispatch_concurrency,
        "email": dispatch.EmailSettings(
            public_url=settings.public_url,
            default_from=settings.email_from,
            unsubscribe_mailto=settings.unsubscribe_mailto,
        ),
    }
    values.update(overrides)
    return dispatch.DispatchSettings(**values)


@asynccontextmanager
async def worker(
    resources: Resources, *, dispatch_with: dispatch.DispatchSettings | None = None
) -> AsyncIterator[EmbeddedScheduler]:
    """An `outreach worker` in this process: the embedded scheduler with every job
    (`register_jobs`); or, with `dispatch_with`, only the dispatch job, run with those settings
    (shorter backoffs than `register_jobs` gives) as the product's job wrapper runs it."""
    scheduler = EmbeddedScheduler(resources, kind="worker", heartbeat_seconds=1.0)
    if dispatch_with is None:
        register_jobs(scheduler, resources)
    else:
        settings = dispatch_with

        async def send(_session: Any, _now: datetime) -> None:
            await dispatch.dispatch_until_idle(
                resources.sessions,
                resources.keyring,
                resources.messenger,
                worker_id=scheduler.worker.id,
                clock=resources.clock.now,
                settings=settings,
                email=resources.email,
                rounds=resources.settings.dispatch_rounds,
                budget=2.0,
            )

        scheduler.add_job(
            "deliveries.dispatch", send, seconds=resources.settings.dispatch_interval_seconds
        )
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop(grace_seconds=5.0)


async def plan_campaign(resources: Resources) -> int:
    return await runs.plan_pending_runs(resources.sessions, clock=resources.clock.now)


# -- reading back --------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float, what: str, poll: float = 0.1
) -> float:
    """Poll `check` until it holds; returns the seconds it took. Database errors while a test's
    server is down count as "not yet"."""
    started = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - started
        except (DBAPIError, OSError):
            pass
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(poll)


@dataclass(frozen=True)
class Row:
    id: str
    state: str
    reason: str | None
    channel: str | None
    attempts: int
    provider_message_id: str | None
    last_error: dict[str, Any] | None


async def deliveries(resources: Resources, campaign_id: str) -> list[Row]:
    table = table_of(Delivery)
    async with resources.sessions() as session:
        result = await session.execute(
            sa.select(
                table.c.id, table.c.state, table.c.reason, table.c.channel, table.c.attempts,
                table.c.provider_message_id, table.c.last_error,
            ).where(table.c.campaign_id == campaign_id)
        )  # fmt: skip
        return [Row(*row) for row in result.all()]


async def states(resources: Resources, campaign_id: str) -> Counter[str]:
    return Counter(row.state for row in await deliveries(resources, campaign_id))


def all_final(expected: int) -> Callable[[Resources, str], Awaitable[bool]]:
    async def check(resources: Resources, campaign_id: str) -> bool:
        counted = await states(resources, campaign_id)
        return sum(counted.values()) == expected and not (
            counted["pending"] or counted["claimed"] or counted["deferred"]
        )

    return check
