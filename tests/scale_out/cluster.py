"""A scale-out cluster on this machine: N `outreach worker` processes sharing one PostgreSQL
schema, the Graph API emulator and an SMTP server (each a child process of its own,
tests/scale_out/services.py), and campaigns planned and sent by the real code.

    config = ClusterConfig(pages=2, messenger_per_page=500, email_per_page=500, workers=3)
    async with running_cluster(config) as cluster:
        await cluster.launch()
        await cluster.wait_until_done(timeout=40)
        ledger = await cluster.ledger()

Used by tests/scale_out/ and bench/scale_out.py. Setup migrates a fresh schema; per Page, a
workspace, its Meta app and Page are created with the service functions (`create_workspace`,
`messenger_apps.create_app`, `pages.register_page`), the contacts are written with COPY (what an
import leaves behind: a contact and its Messenger identity with an open window, or its
subscribed address; thousands through the API would take most of a test's minute), the
emulator learns the same open windows, and one campaign per Page is created as a draft
(`campaigns.control.create_campaign`). `launch()` launches them (`launch_campaign`); the
workers plan the runs and dispatch. Teardown always happens: workers killed, services stopped,
schema dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator import messenger_apps, migrate, pages, workspaces
from orchestrator.campaigns import control
from orchestrator.crypto import KeyRing
from orchestrator.db import create_engine, session_factory, transaction
from tests.fixtures.database import (
    TEST_SECRET,
    create_pg_schema,
    drop_pg_schema,
    make_settings,
    postgres_url,
)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
PSID_BASE = 7_000_000_000_000_000
APP_SECRET = "scale-out-app-secret"  # the emulator's pretend Meta app
STARTUP_SECONDS = 30.0
APPLICATION_NAME = "outreach_scale_out"
EMAIL_DOMAIN = "outreach.test"  # the Message-ID's domain comes from the public URL's host
TERMINAL = frozenset({"sent", "failed", "skipped", "cancelled", "expired"})


def default_campaign(page_id: str) -> dict[str, Any]:
    """One step, sent now: Messenger inside the window, else the fallback email."""
    return {
        "name": "Ưu đãi tháng 12",
        "page_id": page_id,
        "purpose": "promotional",
        "topic": "sale",
        "audience": {"email_status": [], "messenger": "any"},
        "steps": [
            {
                "delay": {"after": "0s"},
                "messenger": {
                    "text": "Chào {{ contact.name | default('bạn') }}! Giảm 30% hôm nay."
                },
                "email": {
                    "subject": "Ưu đãi tháng 12 cho {{ contact.name | default('bạn') }}",
                    "html": "<p>Chào {{ contact.name | default('bạn') }}, giảm 30% hôm nay!</p>",
                },
                "fallback": "email",
            }
        ],
    }


@dataclass(frozen=True)
class ClusterConfig:
    """What to run. Settings reach the workers as `OUTREACH_*` variables (orchestrator/settings)."""

    pages: int = 2
    messenger_per_page: int = 500
    email_per_page: int = 500
    workers: int = 3
    page_send_rate: int = 300
    lease_seconds: int = 30
    dispatch_interval_seconds: float = 0.2
    dispatch_rounds: int = 2
    dispatch_concurrency: int = 32
    campaign: Callable[[str], dict[str, Any]] = default_campaign
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def contacts(self) -> int:
        return self.pages * (self.messenger_per_page + self.email_per_page)

    def page_id(self, index: int) -> str:
        return f"10500000000000{index:02d}"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    peak_rss_mb: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample_rss(self) -> float:
        """Peak resident memory so far (VmHWM), kept for when the process is gone."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
        return self.peak_rss_mb

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, key: str = "port") -> str:
        return f"http://127.0.0.1:{self.ports[key]}"


@dataclass(frozen=True)
class Ledger:
    """What the providers received, and what the database says, after a run."""

    messenger: list[tuple[float, str, str | None, int]]  # arrived_at, page_id, metadata, status
    mail: list[tuple[float, str | None]]  # arrived_at, Message-ID
    rows: dict[str, tuple[str, str | None]]  # delivery id -> (state, channel)

    def received(self) -> Counter[str]:
        """How many times each delivery id reached a provider that accepted it: the delivery id
        in the Messenger call's `message.metadata`, or the Message-ID `<delivery_id@domain>`
        (DESIGN section 8's way of counting duplicates)."""
        seen: Counter[str] = Counter()
        for _at, _page, metadata, status in self.messenger:
            if status == 200 and metadata is not None:
                seen[metadata] += 1
        for _at, message_id in self.mail:
            if message_id is not None:
                seen[delivery_of(message_id)] += 1
        return seen

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.received().values() if count > 1)

    def peak_per_page(self, window: float = 1.0) -> dict[str, int]:
        """The most Send API calls of each Page arriving in any `window` seconds (every call
        counts, refused or not, as Meta counts them)."""
        by_page: dict[str, list[float]] = {}
        for at, page_id, _metadata, _status in self.messenger:
            by_page.setdefault(page_id, []).append(at)
        return {page: peak_in_window(sorted(times), window) for page, times in by_page.items()}


def delivery_of(message_id: str) -> str:
    return message_id.strip().strip("<>").split("@", 1)[0]


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The most of the sorted `times` inside any half-open interval [t, t + window)."""
    peak, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Cluster:
    def __init__(self, config: ClusterConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.schema, url = create_pg_schema()
        # Names our PostgreSQL backends in pg_stat_activity (bench/scale_out.py reads their CPU).
        self.url = f"{url}&application_name={APPLICATION_NAME}"
        self.settings = make_settings(self.url, public_url=f"https://{EMAIL_DOMAIN}")
        self.engine: AsyncEngine = create_engine(self.settings, pool_size=2)
        self.keyring = KeyRing(TEST_SECRET, ())
        self.graph: Service | None = None
        self.smtp: Service | None = None
        self.workers: list[Worker] = []
        self.campaigns: dict[str, str] = {}  # campaign id -> workspace id
        self.launched_at: datetime | None = None
        # Workers seen holding claims while waiting (a sent row no longer names its sender).
        self.claimers_seen: set[str] = set()

    # --- setup ------------------------------------------------------------------------------

    async def start(self, *, workers: int) -> None:
        """Migrate, start the services and `workers` workers, seed; the workers start (imports:
        seconds on two busy cores) while the store is seeded, then heartbeat."""
        await migrate.upgrade(self.engine)
        # Both set before either is awaited, so that teardown stops both whatever happens.
        self.graph = Service(
            self._spawn_service(["graph", "--rate", str(self.config.page_send_rate)])
        )
        self.smtp = Service(self._spawn_service(["smtp"]))
        for service in (self.graph, self.smtp):
            service.ports = self._ports(service.process)
        started = [self.start_worker() for _ in range(workers)]
        await self.seed()
        await self.wait_for_heartbeats(started)

    def _spawn_service(self, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"service-{args[0]}.log").open("wb") as log:
            return subprocess.Popen(
                [str(PYTHON), "-m", "tests.scale_out.services", *args],
                cwd=ROOT,
                env=self._child_env({}),
                stdout=subprocess.PIPE,
                stderr=log,
            )

    def _ports(self, process: subprocess.Popen[bytes]) -> dict[str, int]:
        """The service's ports, from its first line (printed once it listens)."""
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"a service did not start (see {self.workdir})")
        ports: dict[str, int] = json.loads(line)
        return ports

    def _child_env(self, outreach: Mapping[str, str]) -> dict[str, str]:
        # Only our OUTREACH_* settings reach a child (none inherited, no metrics port).
        env = {key: value for key, value in os.environ.items() if not key.startswith("OUTREACH_")}
        env.update(outreach)
        env["PYTHONPATH"] = str(ROOT)
        return env

    async def seed(self) -> None:
        now = datetime.now(UTC)
        opened = now - timedelta(hours=1)
        assert self.graph is not None
        sessions = session_factory(self.engine)
        async with httpx.AsyncClient(base_url=self.graph.url(), timeout=60) as emulator:
            for index in range(self.config.pages):
                page_id = self.config.page_id(index)
                app_id = f"20000000000000{index:02d}"
                token = f"scale-out-token-{page_id}"
                async with transaction(sessions) as session:
                    workspace = await workspaces.create_workspace(
                        session, name=f"scale-out-{index}", now=now
                    )
                    await workspaces.update_workspace(
                        session,
                        workspace_id=workspace.id,
                        changes={
                            "from_name": "Cửa hàng Hoa Sen",
                            "from_address": "hello@shop.example.vn",
                            "postal_address": "12 Lý Thường Kiệt, Hoàn Kiếm, Hà Nội",
                        },
                        now=now,
                    )
                    await messenger_apps.create_app(
                        session,
                        self.keyring,
                        workspace_id=workspace.id,
                        app_id=app_id,
                        app_secret=APP_SECRET,
                        verify_token="scale-out-verify",
                        now=now,
                    )
                    await pages.register_page(
                        session,
                        self.keyring,
                        workspace_id=workspace.id,
                        page_id=page_id,
                        app_id=app_id,
                        settings=pages.PageSettings(username=f"shop{index}", access_token=token),
                        default_graph_api_version=self.settings.graph_api_version,
                        now=now,
                    )
                    workspace_id = workspace.id
                psids = await asyncio.to_thread(
                    self._copy_contacts, workspace_id, index, page_id, now
                )
                page = {
                    "page_id": page_id,
                    "username": f"shop{index}",
                    "access_token": token,
                    "app_id": app_id,
                    "app_secret": APP_SECRET,
                }
                (await emulator.post("/_scale/pages", json=page)).raise_for_status()
                for start in range(0, len(psids), 20_000):
                    people = {
                        "page_id": page_id,
                        "psids": psids[start : start + 20_000],
                        "opened_at": opened.isoformat(),
                    }
                    (await emulator.post("/_scale/people", json=people)).raise_for_status()
                async with transaction(sessions) as session:
                    campaign = await control.create_campaign(
                        session,
                        workspace_id=workspace_id,
                        body=self.config.campaign(page_id),
                        now=now,
                    )
                    self.campaigns[campaign.id] = workspace_id

    def _copy_contacts(
        self, workspace_id: str, index: int, page_id: str, now: datetime
    ) -> list[str]:
        """COPY the Page's contacts: Messenger ones with a window opened an hour ago, then
        email-only ones with a subscribed address. Returns the PSIDs."""
        created = now - timedelta(days=1)
        opened = now - timedelta(hours=1)
        messenger, email = self.config.messenger_per_page, self.config.email_per_page
        tag = f"{index:02d}"
        psids = [str(PSID_BASE + index * 10_000_000 + n) for n in range(messenger)]

        def contact(n: int) -> str:
            return f"ct_so{tag}{n:020d}"

        def contacts() -> Iterator[tuple[Any, ...]]:
            for n in range(messenger + email):
                yield (contact(n), workspace_id, f"Khách {tag}-{n}", "vi", "{}", created, created)

        def identities() -> Iterator[tuple[Any, ...]]:
            for n, psid in enumerate(psids):
                yield (f"mi_so{tag}{n:020d}", workspace_id, contact(n), page_id, psid, opened,
                       opened, opened, created, created)  # fmt: skip

        def addresses() -> Iterator[tuple[Any, ...]]:
            for n in range(messenger, messenger + email):
                yield (f"em_so{tag}{n:020d}", workspace_id, contact(n),
                       f"khach{tag}.{n}@mail{n % 97}.example.vn", "subscribed", created, created)  # fmt: skip

        copies: list[tuple[str, Callable[[], Iterator[tuple[Any, ...]]]]] = [
            ("contacts (id, workspace_id, name, locale, attributes, created_at, updated_at)",
             contacts),
            ("messenger_identities (id, workspace_id, contact_id, page_id, psid, window_opened_at,"
             " last_user_message_at, last_event_at, created_at, updated_at)", identities),
            ("email_identities (id, workspace_id, contact_id, address, status, status_changed_at,"
             " created_at)", addresses),
        ]  # fmt: skip
        with psycopg.connect(postgres_url()) as conn:
            conn.execute(f"SET search_path TO {self.schema}")  # type: ignore[arg-type,unused-ignore]
            with conn.cursor() as cursor:
                for target, rows in copies:
                    with cursor.copy(f"COPY {target} FROM STDIN") as copy:  # type: ignore[arg-type,unused-ignore]
                        for row in rows():
                            copy.write_row(row)
            conn.commit()
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            for table in ("contacts", "messenger_identities", "email_identities"):
                # What autovacuum would have done before a real campaign meets these rows.
                conn.execute(f"ANALYZE {self.schema}.{table}")  # type: ignore[arg-type,unused-ignore]
        return psids

    # --- workers ----------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        assert self.graph is not None and self.smtp is not None
        config = self.config
        outreach = {
            "OUTREACH_DATABASE_URL": self.url,
            "OUTREACH_SECRET_KEY": TEST_SECRET,
            "OUTREACH_PUBLIC_URL": f"https://{EMAIL_DOMAIN}",
            "OUTREACH_GRAPH_API_URL": self.graph.url(),
            "OUTREACH_SMTP_HOST": "127.0.0.1",
            "OUTREACH_SMTP_PORT": str(self.smtp.ports["port"]),
            "OUTREACH_PAGE_SEND_RATE": str(config.page_send_rate),
            "OUTREACH_LEASE_SECONDS": str(config.lease_seconds),
            "OUTREACH_DISPATCH_INTERVAL_SECONDS": str(config.dispatch_interval_seconds),
            "OUTREACH_DISPATCH_ROUNDS": str(config.dispatch_rounds),
            "OUTREACH_DISPATCH_CONCURRENCY": str(config.dispatch_concurrency),
            "OUTREACH_LOG_FORMAT": "json",
            "OUTREACH_LOG_LEVEL": "WARNING",
            **config.extra_env,
        }
        return self._child_env(outreach)

    def start_worker(self) -> Worker:
        name = f"worker-{len(self.workers)}"
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(PYTHON), "-m", "orchestrator", "worker"],
                # Not the repository: a `.env` there must not reach the workers.
                cwd=self.workdir,
                env=self.worker_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, log_path)
        self.workers.append(worker)
        return worker

    async def start_workers(self, count: int) -> list[Worker]:
        started = [self.start_worker() for _ in range(count)]
        await self.wait_for_heartbeats(started)
        return started

    async def wait_for_heartbeats(self, workers: Sequence[Worker]) -> None:
        """Until each worker has written its heartbeat (its scheduler runs)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        wanted = {worker.pid for worker in workers}
        while True:
            for worker in workers:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {worker.pid} exited:\n{worker.log_tail()}")
            async with self.engine.connect() as conn:
                rows = await conn.execute(sa.text("SELECT pid FROM worker_heartbeats"))
                if wanted <= {int(pid) for (pid,) in rows}:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start in time")
            await asyncio.sleep(0.1)

    async def backend_pids(self) -> list[int]:
        """The PostgreSQL backends serving this cluster's processes now."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
                    "AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            )
            return [int(pid) for (pid,) in rows]

    async def worker_id_of(self, worker: Worker) -> str:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT id FROM worker_heartbeats WHERE pid = :pid"), {"pid": worker.pid}
            )
            return str(found.scalar_one())

    def kill(self, worker: Worker) -> None:
        worker.sample_rss()
        os.kill(worker.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)

    def sample_rss(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.sample_rss()

    # --- the campaign -----------------------------------------------------------------------

    async def launch(self) -> datetime:
        sessions = session_factory(self.engine)
        self.launched_at = datetime.now(UTC)
        for campaign_id, workspace_id in self.campaigns.items():
            async with transaction(sessions) as session:
                await control.launch_campaign(
                    session,
                    workspace_id=workspace_id,
                    campaign_id=campaign_id,
                    now=self.launched_at,
                )
        return self.launched_at

    async def states(self) -> Counter[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT state, count(*) FROM deliveries GROUP BY state")
            )
            owners = await conn.execute(
                sa.text("SELECT DISTINCT lease_owner FROM deliveries WHERE state = 'claimed'")
            )
            self.claimers_seen.update(str(owner) for (owner,) in owners if owner is not None)
            return Counter({str(state): int(count) for state, count in rows})

    async def claimed_by(self, worker_id: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.text(
                    "SELECT count(*) FROM deliveries WHERE state = 'claimed' AND lease_owner = :w"
                ),
                {"w": worker_id},
            )
            return int(found.scalar_one())

    async def accepted(self) -> int:
        """Sends the providers accepted so far (duplicates included)."""
        assert self.graph is not None and self.smtp is not None
        total = 0
        async with httpx.AsyncClient(timeout=30) as client:
            for base in (self.graph.url(), self.smtp.url("control_port")):
                answer = await client.get(base + "/_scale/count")
                answer.raise_for_status()
                total += int(answer.json()["accepted"])
        return total

    async def wait_until_done(self, *, within: float, poll: float = 0.25) -> Counter[str]:
        """Until every planned delivery is in a terminal state (and all were planned)."""
        deadline = time.monotonic() + within
        while True:
            self.sample_rss()
            states = await self.states()
            planned = sum(states.values())
            if planned >= self.config.contacts and not set(states) - TERMINAL:
                return states
            for worker in self.workers:
                code = worker.process.poll()
                if code is not None and code != -signal.SIGKILL:
                    raise RuntimeError(f"worker {worker.pid} exited {code}:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done after {within} s: {dict(states)}")
            await asyncio.sleep(poll)

    async def ledger(self) -> Ledger:
        assert self.graph is not None and self.smtp is not None
        async with httpx.AsyncClient(timeout=120) as client:
            sends = await client.get(self.graph.url() + "/_scale/sends")
            mail = await client.get(self.smtp.url("control_port") + "/_scale/mail")
        sends.raise_for_status()
        mail.raise_for_status()
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT id, state, channel FROM deliveries"))
            by_id = {str(row.id): (str(row.state), row.channel) for row in rows}
        return Ledger(
            messenger=[
                (float(at), str(page), meta, int(status)) for at, page, meta, status in sends.json()
            ],
            mail=[(float(at), message_id) for at, message_id in mail.json()],
            rows=by_id,
        )

    async def unsent(self, limit: int = 20) -> list[dict[str, Any]]:
        """Deliveries that did not end `sent`, with why (for a report)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT id, state, reason, channel, attempts, last_error FROM deliveries "
                    "WHERE state <> 'sent' ORDER BY id LIMIT :n"
                ),
                {"n": limit},
            )
            return [dict(row._mapping) for row in rows]

    async def due_to_sent(self) -> dict[str, list[float]]:
        """Seconds from due to sent of every sent delivery, per channel."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT channel, extract(epoch FROM sent_at - due_at) FROM deliveries "
                    "WHERE state = 'sent'"
                )
            )
            found: dict[str, list[float]] = {}
            for channel, seconds in rows:
                found.setdefault(str(channel), []).append(float(seconds))
            return found

    async def sent_span(self) -> dict[str, tuple[float, float]]:
        """Per channel, the first and last `sent_at` (epoch seconds)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT channel, extract(epoch FROM min(sent_at)), "
                    "extract(epoch FROM max(sent_at)) FROM deliveries WHERE state = 'sent' "
                    "GROUP BY channel"
                )
            )
            return {str(channel): (float(first), float(last)) for channel, first, last in rows}

    # --- teardown ---------------------------------------------------------------------------

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.sample_rss()
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=10)
        for service in (self.graph, self.smtp):
            if service is None:
                continue
            service.process.terminate()
            try:
                service.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(timeout=10)
            if service.process.stdout is not None:
                service.process.stdout.close()
        await self.engine.dispose()
        drop_pg_schema(self.schema)


@contextlib.asynccontextmanager
async def running_cluster(
    config: ClusterConfig, *, workdir: Path | None = None
) -> AsyncIterator[Cluster]:
    """A seeded cluster, its workers started and heartbeating; torn down whatever happens."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-out-")))
        cluster = Cluster(config, workdir)
        try:
            await cluster.start(workers=config.workers)
            yield cluster
        finally:
            await cluster.stop()
