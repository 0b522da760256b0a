"""The demo's imperative shell: servers, registration, seeding, the campaign, the progress bar.

One process, one event loop: the API (uvicorn, with the embedded scheduler), the Graph API
emulator (uvicorn on another loopback port; it posts signed webhooks to the API), and the SMTP
server (aiosmtpd's protocol on this loop). The clock is real; the past is placed instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from channels.sandbox import AfterSend, GraphEmulator, serve
from orchestrator import apikeys, contacts, logs, migrate, workspaces
from orchestrator.app import create_app
from orchestrator.db import transaction
from orchestrator.delivery_states import State
from orchestrator.demo import funnel, mailbox, people, population
from orchestrator.ids import new_id
from orchestrator.models import (
    ConsentRecord,
    Contact,
    Delivery,
    EmailIdentity,
    MessengerIdentity,
    WebhookInbox,
    table_of,
)
from orchestrator.resources import Resources, build_resources
from orchestrator.scheduler import EmbeddedScheduler, register_jobs
from orchestrator.settings import Settings

APP_ID = "1000000000000001"
APP_SECRET = "demo-app-secret-0123456789abcdef"  # noqa: S105 (the emulator's app, not a secret)
VERIFY_TOKEN = "demo-verify-token"  # noqa: S105
PAGE_ID = "104000000000001"
PAGE_USERNAME = "aodaihong.demo"
PAGE_TOKEN = "EAAB-demo-page-token-0123456789"  # noqa: S105
DATABASE = "demo.db"
SUMMARY = "summary.json"
STEPS = 2
FINAL = (State.SENT.value, State.SKIPPED.value, State.FAILED.value, State.CANCELLED.value)
WAITING = (State.PENDING.value, State.CLAIMED.value, State.DEFERRED.value)

CAMPAIGN_NAME = "Khuyến mãi tháng 12"
NAME = "{{ contact.name | default('bạn') }}"
CAMPAIGN: dict[str, Any] = {
    "name": CAMPAIGN_NAME,
    "page_id": PAGE_ID,
    "purpose": "promotional",
    "topic": "sale",
    # Everyone: the send-time policy, not the audience, sorts out who gets what and how.
    "audience": {"email_status": [], "messenger": "any"},
    "trigger": None,
    "steps": [
        {
            "delay": {"after": "0s"},
            "messenger": {"text": f"Chào {NAME}! Áo dài giảm 30% hôm nay."},
            "email": {
                "subject": f"Ưu đãi tháng 12 cho {NAME}",
                "html": f"<h1>Áo dài giảm 30%</h1><p>Chào {NAME}, áo dài giảm 30% đến hết "
                "tháng 12, miễn phí giao hàng.</p><p>Nhắn cho shop trên Messenger để được tư "
                "vấn size và màu.</p>",
                "text": f"Chào {NAME}, áo dài giảm 30% đến hết tháng 12, miễn phí giao hàng.",
                "buttons": {
                    "support": {"vi": people.SUPPORT, "en": "Get support"},
                    "subscribe": {"vi": people.SUBSCRIBE, "en": "Subscribe to notifications"},
                },
            },
            "fallback": "email",
            "max_wait": None,
        },
        {
            "delay": {"before_window_closes": "1h"},
            "messenger": {"text": f"Còn 1 giờ: mã TET2027 giảm thêm 10% cho {NAME}"},
            "email": None,
            "fallback": "wait_for_window",
            "max_wait": "3d",
        },
    ],
    "schedule": "now",
    "send_window": None,
    "frequency_cap": 2,
    "throttle": None,
}


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


@dataclass(frozen=True)
class Options:
    data_dir: Path
    port: int = 8000
    contacts: int = 1000
    serve: bool = True
    host: str = "127.0.0.1"
    step2_due_in: timedelta | None = None  # None: `population.step2_due_in_for(contacts)`
    timeout_seconds: float | None = None  # None: a minute, and a tenth of a second per contact

    @property
    def due_in(self) -> timedelta:
        return self.step2_due_in or population.step2_due_in_for(self.contacts)

    @property
    def timeout(self) -> float:
        return self.timeout_seconds or 60.0 + self.contacts / 10


@dataclass(frozen=True)
class Snapshot:
    """Where the campaign stands, read from the database while the demo runs."""

    by_step: dict[tuple[int, str], int]
    waiting: int  # any delivery of the workspace not yet decided (pending, claimed, deferred)
    inbox: int  # webhook events received and not applied yet
    actors_held: int

    def count(self, step: int, states: Iterable[str]) -> int:
        return sum(self.by_step.get((step, state), 0) for state in states)

    def rows(self, step: int) -> int:
        return sum(n for (index, _), n in self.by_step.items() if index == step)


# -- the parts ----------------------------------------------------------------------------------


def fresh_data_dir(data_dir: Path) -> Path:
    """Remove what an earlier run left (only the demo's own files), and return the mail folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}.secret-key", SUMMARY):
        (data_dir / name).unlink(missing_ok=True)
    mail = data_dir / "mail"
    shutil.rmtree(mail, ignore_errors=True)
    mail.mkdir()
    return mail


def demo_settings(options: Options, *, smtp_port: int, graph_url: str) -> Settings:
    """The embedded defaults, pointed at the local SMTP server and the emulator. The public URL
    is https because RFC 8058 wants the List-Unsubscribe URL to be (channels/email refuses
    anything else); the demo's people and the HTML copy reach the same paths over plain http."""
    return Settings(
        database_url=f"sqlite+aiosqlite:///{(options.data_dir / DATABASE).resolve()}",
        public_url=f"https://{options.host}:{options.port}",
        smtp_host=options.host,
        smtp_port=smtp_port,
        smtp_tls="none",
        smtp_username=None,
        smtp_password=None,
        email_from="Áo Dài Hồng <cuahang@example.com>",
        graph_api_url=graph_url,
        clock_offset=0.0,
        host=options.host,
        port=options.port,
        embedded_scheduler=True,
        # One process writes a burst to one SQLite file (webhook acknowledgements, dispatch,
        # the inbox job): under it a writer was once seen waiting out the 5 s default for the
        # write lock; it would retry on the next tick, but the demo prefers that it wait.
        sqlite_busy_timeout_ms=30_000,
        # Logs share the terminal with the progress bars: warnings and errors only.
        log_level="WARNING",
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the demo owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def api_socket(host: str, port: int) -> socket.socket:
    """The API's port, taken first: a port in use is reported before anything else starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {host}:{port} ({exc.strerror}): try --port") from exc
    return sock


@contextlib.asynccontextmanager
async def api_server(app: FastAPI, sock: socket.socket) -> AsyncIterator[str]:
    """The API, with its lifespan, served on this loop from `sock`; yields its base URL."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise DemoError("the API stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def scheduled(resources: Resources) -> AsyncIterator[None]:
    """The scheduler jobs `outreach serve` runs, stopped gracefully (EmbeddedScheduler.stop)."""
    scheduler = EmbeddedScheduler(resources, kind="serve")
    register_jobs(scheduler, resources)
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


def _ok(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()


async def create_tenant(resources: Resources) -> apikeys.IssuedKey:
    now = resources.clock.now()
    async with transaction(resources.sessions) as session:
        workspace = await workspaces.create_workspace(session, name="demo", now=now)
        return await apikeys.create_api_key(
            session, workspace_id=workspace.id, now=now, name="demo"
        )


async def register_page(api: httpx.AsyncClient, emulator: GraphEmulator, api_url: str) -> None:
    """The shop as a business sets it up: sender identity, the Meta app, the Page. The emulator
    starts with no Get Started button and the app unsubscribed; the Page's checks set both."""
    _ok(
        await api.patch(
            "/v1/workspace",
            json={
                "from_name": "Áo Dài Hồng",
                "from_address": "cuahang@example.com",
                "postal_address": "12 Lý Tự Trọng, Quận 1, TP. Hồ Chí Minh",
            },
        ),
        200,
    )
    _ok(
        await api.post(
            "/v1/messenger-apps",
            json={"app_id": APP_ID, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        ),
        201,
    )
    emulator.register_page(
        PAGE_ID,
        username=PAGE_USERNAME,
        access_token=PAGE_TOKEN,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        webhook_url=f"{api_url}/webhooks/messenger/{APP_ID}",
        subscribed_fields=None,
        app_name="Áo Dài Hồng Outreach",
    )
    _ok(
        await api.post(
            "/v1/pages",
            json={
                "page_id": PAGE_ID,
                "app_id": APP_ID,
                "username": PAGE_USERNAME,
                "access_token": PAGE_TOKEN,
            },
        ),
        201,
    )
    for _ in range(200):
        checks = _ok(await api.get(f"/v1/pages/{PAGE_ID}"), 200)["checks"]
        statuses = {name: check["status"] for name, check in checks.items()}
        if "not_done" not in statuses.values():
            if set(statuses.values()) != {"ok"}:
                raise DemoError(f"the Page's checks failed: {checks}")
            break
        await asyncio.sleep(0.05)
    else:
        raise DemoError("the Page's checks did not finish")
    if not await emulator.verify_webhook(PAGE_ID, VERIFY_TOKEN):
        raise DemoError("the webhook verification handshake failed")


async def seed(
    resources: Resources,
    emulator: GraphEmulator,
    *,
    workspace_id: str,
    contacts_count: int,
    step2_due_in: timedelta,
) -> tuple[list[population.Person], dict[int, str], datetime]:
    """The contacts, inserted with Core in one transaction; returns them, their ids, and when
    the window-relative step 2 falls due for those whose window is open."""
    now = resources.clock.now()
    everyone = population.people(contacts_count, now=now, step2_due_in=step2_due_in)
    rows = population.seed_rows(
        everyone, workspace_id=workspace_id, page_id=PAGE_ID, now=now, new_id=new_id
    )
    email_of = {row["contact_id"]: row["id"] for row in rows.emails}
    async with transaction(resources.sessions) as session:
        for model, batch in (
            (Contact, rows.contacts),
            (EmailIdentity, rows.emails),
            (ConsentRecord, rows.ledger),
            (MessengerIdentity, rows.identities),
        ):
            if batch:
                await session.execute(sa.insert(table_of(model)), batch)
        for person in everyone:
            if person.group.email != "unsubscribed":
                continue
            identity = await session.get(EmailIdentity, email_of[rows.contact_ids[person.index]])
            assert identity is not None
            await contacts.record_consent(
                session,
                identity=identity,
                action="unsubscribe",
                consent=contacts.Consent(
                    source="unsubscribe_link", at=now - population.UNSUBSCRIBED_AGO
                ),
                now=now,
            )
    for person in everyone:
        if person.psid is not None:
            # Meta knows the same threads, so the emulator enforces the same windows.
            emulator.add_person(
                PAGE_ID,
                person.psid,
                window_opened_at=person.last_event_at,
                last_message_at=person.last_event_at,
            )
    return everyone, rows.contact_ids, now + step2_due_in


def watcher(settings: Settings) -> AsyncEngine:
    """A read-only engine of the demo's own. The store begins every transaction IMMEDIATE (it
    takes SQLite's write lock); plain reads in WAL mode see a snapshot without that lock, so
    watching the progress never waits for, or holds up, the writers."""
    return create_async_engine(settings.database_url)


async def snapshot(
    engine: AsyncEngine,
    *,
    workspace_id: str,
    campaign_id: str,
    actor_ids: list[str],
) -> Snapshot:
    deliveries, inbox = table_of(Delivery), table_of(WebhookInbox)
    async with engine.connect() as connection:
        grouped = await connection.execute(
            sa.select(deliveries.c.step_index, deliveries.c.state, sa.func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.step_index, deliveries.c.state)
        )
        waiting = await connection.scalar(
            sa.select(sa.func.count()).where(
                deliveries.c.workspace_id == workspace_id, deliveries.c.state.in_(WAITING)
            )
        )
        unapplied = await connection.scalar(
            sa.select(sa.func.count()).where(inbox.c.status == "pending")
        )
        held: int | None = 0
        if actor_ids:
            held = await connection.scalar(
                sa.select(sa.func.count()).where(
                    deliveries.c.campaign_id == campaign_id,
                    deliveries.c.step_index == 1,
                    deliveries.c.state == State.HELD.value,
                    deliveries.c.contact_id.in_(actor_ids),
                )
            )
    return Snapshot(
        by_step={(int(step or 0), str(state)): int(n) for step, state, n in grouped.all()},
        waiting=int(waiting or 0),
        inbox=int(unapplied or 0),
        actors_held=int(held or 0),
    )


def _duration(length: timedelta) -> str:
    minutes, seconds = divmod(round(length.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m {seconds:02d} s"


def _step2(due_at: datetime, now: datetime) -> str:
    seconds = (due_at - now).total_seconds()
    return f"Bước 2 · Step 2, in {seconds:.0f} s" if seconds >= 0.5 else "Bước 2 · Step 2, now"


async def drive(
    resources: Resources,
    watching: AsyncEngine,
    progress: Progress,
    world: people.World,
    everyone: list[population.Person],
    *,
    workspace_id: str,
    campaign_id: str,
    contact_ids: dict[int, str],
    step2_due_at: datetime,
    timeout_seconds: float,
) -> list[str]:
    """Watch the campaign go by; once every actor's step 2 is held (their step 1 went out as
    email or was skipped), let the people act. Returns what went wrong (nothing, normally)."""
    total = len(everyone)
    acting = [person for person in everyone if person.action is not None]
    actor_ids = [contact_ids[person.index] for person in acting]
    step1 = progress.add_task("Bước 1 · Step 1, now", total=total)
    acts = progress.add_task("Khách bấm, trả lời · People act", total=len(acting))
    step2 = progress.add_task(_step2(step2_due_at, resources.clock.now()), total=total)
    acted: asyncio.Task[list[str]] | None = None
    deadline = time.monotonic() + timeout_seconds

    def advance() -> None:
        progress.advance(acts)

    try:
        while True:
            now = resources.clock.now()
            snap = await snapshot(
                watching,
                workspace_id=workspace_id,
                campaign_id=campaign_id,
                actor_ids=actor_ids,
            )
            progress.update(step1, completed=snap.count(0, FINAL))
            progress.update(
                step2,
                completed=snap.count(1, (*FINAL, State.HELD.value)),
                description=_step2(step2_due_at, now),
            )
            if acted is None and snap.actors_held == len(acting):
                acted = asyncio.create_task(people.act_all(world, acting, on_done=advance))
            settled = (
                snap.rows(0) == total
                and snap.rows(1) == total
                and snap.waiting == 0
                and snap.inbox == 0
            )
            if acted is not None and acted.done() and settled:
                return acted.result()
            if time.monotonic() > deadline:
                return [f"the campaign did not settle within {timeout_seconds:.0f} s"]
            await asyncio.sleep(0.2)
    finally:
        if acted is not None and not acted.done():
            acted.cancel()


def save_html_copy(
    drop: mailbox.MailDrop, *, public_url: str, local_url: str
) -> tuple[Path, Path] | None:
    """One fallback email as an .html file next to its .eml, links pointing at the local server."""
    for path in drop.saved():
        message = mailbox.read(path)
        if not mailbox.button_links(message, public_url=public_url):
            continue
        html = mailbox.html_copy(message, public_url=public_url, local_url=local_url)
        if html is not None:
            target = path.with_suffix(".html")
            target.write_text(html, encoding="utf-8")
            return path, target
    return None


# -- the whole demo ------------------------------------------------------------------------------


async def _main(options: Options, console: Console) -> int:
    started = time.monotonic()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    async with contextlib.AsyncExitStack() as stack:
        sock = stack.enter_context(api_socket(options.host, options.port))
        mail_dir = fresh_data_dir(options.data_dir)
        drop = mailbox.MailDrop(mail_dir)
        try:
            smtp_port = await stack.enter_async_context(
                mailbox.smtp_server(drop, host=options.host)
            )
        except ImportError as exc:
            raise DemoError(
                f"the demo's SMTP server needs aiosmtpd (pip install 'aiosmtpd>=1.4.6'): {exc}"
            ) from exc
        hooks = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        emulator = GraphEmulator(
            webhook_client=hooks,
            # Meta also echoes every message the Page sends; the orchestrator recognises its own
            # echoes and changes nothing for them, and on two cores they would cost the demo
            # about 15 s (a signed webhook, an inbox row and its application per send). Delivery
            # receipts stay: they set each delivery's `delivered_at`.
            after_send=AfterSend(echo=False, delivery=True, timing="background"),
        )
        graph_url = await stack.enter_async_context(serve(emulator.app, host=options.host))
        settings = demo_settings(options, smtp_port=smtp_port, graph_url=graph_url)
        logs.configure_logging(settings)
        # Interval ticks skipped while a long dispatch round runs are normal in a burst.
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).setLevel(logging.ERROR)
        resources = build_resources(settings)
        stack.push_async_callback(resources.close)
        await migrate.upgrade(resources.engine)
        issued = await create_tenant(resources)
        api_url = await stack.enter_async_context(
            # The scheduler runs beside the app (`scheduled`), to be stopped between two jobs.
            api_server(create_app(resources=resources, run_scheduler=False), sock)
        )
        await stack.enter_async_context(scheduled(resources))
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=api_url, headers={"Authorization": f"Bearer {issued.key}"}, timeout=30
            )
        )
        public = await stack.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30))
        console.print(f"[bold]outreach demo[/bold]  API {api_url}", soft_wrap=True)
        console.print(f"  SMTP 127.0.0.1:{smtp_port} → {mail_dir}/*.eml", soft_wrap=True)
        console.print(f"  Graph API emulator {graph_url}", soft_wrap=True)
        await register_page(api, emulator, api_url)
        console.print(
            f"Trang / Page @{PAGE_USERNAME}: Get Started set, app subscribed, webhook verified"
        )
        everyone, contact_ids, step2_due_at = await seed(
            resources,
            emulator,
            workspace_id=issued.workspace_id,
            contacts_count=options.contacts,
            step2_due_in=options.due_in,
        )
        sizes = population.group_sizes(options.contacts)
        console.print(f"{options.contacts:,} liên hệ / contacts:")
        for group in population.GROUPS:
            if sizes[group.key]:
                console.print(f"  {sizes[group.key]:>6,}  {group.vi} · {group.en}")
        campaign = _ok(await api.post("/v1/campaigns", json=CAMPAIGN), 201)
        campaign_id = str(campaign["id"])
        _ok(
            await api.post(
                f"/v1/campaigns/{campaign_id}/launch",
                headers={"Idempotency-Key": str(uuid.uuid4())},
            ),
            202,
        )
        watching = watcher(settings)
        stack.push_async_callback(watching.dispose)
        closes_in = options.due_in + population.STEP2_MARGIN
        console.print(
            "Bước 2 đi 1 giờ trước khi cửa sổ 24 giờ đóng; cửa sổ đang mở sẽ đóng sau "
            f"{_duration(closes_in)} / Step 2 goes 1 h before each 24-hour window closes; the "
            f"open windows close in {_duration(closes_in)}.",
        )
        world = people.World(emulator, public, drop, PAGE_ID, settings.public_url)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            trouble = await drive(
                resources,
                watching,
                progress,
                world,
                everyone,
                workspace_id=issued.workspace_id,
                campaign_id=campaign_id,
                contact_ids=contact_ids,
                step2_due_at=step2_due_at,
                timeout_seconds=options.timeout,
            )
        stats = _ok(await api.get(f"/v1/campaigns/{campaign_id}/stats"), 200)
        emails_saved = len(drop.saved())
        elapsed = time.monotonic() - started
        trouble += funnel.problems(
            stats, emails_saved=emails_saved, contacts=options.contacts, steps=STEPS
        )
        console.print()
        console.print(
            funnel.table(
                funnel.lines(stats, emails_saved=emails_saved),
                title=f'Phễu chiến dịch / Campaign funnel: "{CAMPAIGN_NAME}", {STEPS} bước / steps',
            )
        )
        console.print(funnel.total(stats))
        for line in trouble:
            console.print(f"[red]✗ {line}[/red]")
        if not trouble:
            console.print("✓ Số liệu khớp / The numbers add up")
        console.print(f"Xong sau / Done in {elapsed:.1f} s")
        copy = save_html_copy(drop, public_url=settings.public_url, local_url=api_url)
        write_summary(
            options.data_dir / SUMMARY,
            campaign_id=campaign_id,
            contacts_count=options.contacts,
            groups=sizes,
            stats=stats,
            emails_saved=emails_saved,
            email=copy,
            elapsed=elapsed,
            problems=trouble,
        )
        print_links(console, options, api_url, graph_url, campaign_id, issued.key, copy, mail_dir)
        if options.serve:
            console.print("\nĐang chạy / Serving. Ctrl-C để dừng / to stop.")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                task.uncancel()
                console.print("Đang dừng / Stopping…")
        return 1 if trouble else 0
    raise AssertionError("unreachable")  # pragma: no cover


def write_summary(
    path: Path,
    *,
    campaign_id: str,
    contacts_count: int,
    groups: dict[str, int],
    stats: dict[str, Any],
    emails_saved: int,
    email: tuple[Path, Path] | None,
    elapsed: float,
    problems: list[str],
) -> None:
    """The funnel's numbers for scripts (and the demo's own test); never the API key."""
    summary = {
        "campaign_id": campaign_id,
        "contacts": contacts_count,
        "groups": groups,
        "stats": stats,
        "emails_saved": emails_saved,
        "email_eml": str(email[0]) if email else None,
        "email_html": str(email[1]) if email else None,
        "elapsed_seconds": round(elapsed, 2),
        "problems": problems,
    }
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def print_links(
    console: Console,
    options: Options,
    api_url: str,
    graph_url: str,
    campaign_id: str,
    key: str,
    email: tuple[Path, Path] | None,
    mail_dir: Path,
) -> None:
    console.print()
    if options.serve:
        console.print(f"  API docs            {api_url}/docs", soft_wrap=True)
        console.print(f"  Campaign page       {api_url}/campaigns/{campaign_id}", soft_wrap=True)
        console.print(f"  API key (log in)    {key}", soft_wrap=True)
        console.print(
            f'  Stats               curl -H "Authorization: Bearer {key}" '
            f"{api_url}/v1/campaigns/{campaign_id}/stats",
            soft_wrap=True,
        )
        console.print(f"  Graph API emulator  {graph_url}/_emulator/state", soft_wrap=True)
    if email is not None:
        console.print(
            f"  A fallback email    {email[1]}  (as sent: {email[0].name})", soft_wrap=True
        )
    console.print(f"  All emails          {mail_dir}/", soft_wrap=True)
    console.print(f"  Numbers (JSON)      {options.data_dir / SUMMARY}", soft_wrap=True)


def run(options: Options, *, console: Console | None = None) -> int:
    """Run the demo; returns the process's exit code (130 when interrupted)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or captured, rich assumes 80 columns, which folds every row of the funnel.
            console = Console(width=120)
    try:
        return asyncio.run(_main(options, console))
    except asyncio.CancelledError:
        console.print("Đã dừng / Interrupted")
        return 130
    except DemoError as exc:
        console.print(f"[red]error: {exc}[/red]")
        return 1
