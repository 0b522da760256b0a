"""Benchmark: one campaign of 100,000 contacts on PostgreSQL with one worker, channel by channel.
Not a test.

    .venv/bin/python bench/campaign.py                 # 100,000 contacts per channel
    .venv/bin/python bench/campaign.py --quick         # 5,000: a smoke run
    .venv/bin/python bench/campaign.py --contacts 20000 --plan-batches 2000,5000 --breakdown

A fresh schema in the database `test` at 127.0.0.1:5432 (OUTREACH_TEST_POSTGRES_URL) is migrated
and dropped afterwards. Two passes, one per channel, each in its own workspace:

  * Messenger: every contact has a Messenger identity on the bench Page with a window opened an hour
    ago; the Graph API emulator (a child process, uvicorn, as in bench/messenger_send.py) knows the
    same PSIDs. The Page sends at the production 300/s limit (paced at 282/s by the client).
  * email: every contact has a subscribed address and no Messenger identity, so the policy routes
    the step to its fallback (`email.no_messenger`); Postfix's smtp-sink receives (`make bench-deps`).

Per pass: seed the contacts with COPY (not measured); create and launch a one-step campaign
(`runs.launch`); time `runs.plan_pending_runs` (the production batch, and any `--plan-batches`
on throwaway copies of the campaign), beside an `INSERT ... SELECT` of the same rows in SQL and a
Core stream of the audience query; then run the channel's own benchmark loop in a child process
(bench/messenger_send.py's `run_client`, bench/email_send.py's `--child fast`) and the real
dispatcher as a worker runs it (`dispatch_once` back to back, production `DispatchSettings`,
`build_resources` pointed at the emulator and the sink) until no row is pending.

Printed: plan time and rows/s, sends/s against the channel bench, due -> sent (p50/p99/max, from
the rows' `due_at` and `sent_at`), CPU seconds per send of this process, and peak RSS
(`ru_maxrss`). Targets: plan < 10 s, sends/s >= 0.8 x the channel bench, peak RSS < 250 MB.

`--max-send-seconds` stops a pass early (its pending rows are then cancelled, so the next pass's
dispatcher leaves them alone); the rate is over what was sent and the verdict says so.

Diagnostics: `--cadence scheduler` paces the rounds as the worker's APScheduler interval job does
(one `dispatch_once` per `dispatch_interval_seconds` tick at most, a tick missed while a round
runs); `--breakdown` times the dispatcher's parts, counts SQL statements and transactions per send
and measures one database round trip (ORM get with and without its own transaction, Core select,
a 100-id IN); `--profile FILE` runs planning and the send phases under cProfile (own time by
package, top functions). Experiments, none of them production settings: `--pending-index` (a
partial index for claim_due), `--no-pre-ping`, and OUTREACH_DB_POOL_SIZE / OUTREACH_DISPATCH_CONCURRENCY in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import json
import math
import os
import pstats
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from sqlalchemy import event

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
for entry in (str(ROOT), str(HERE.parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from channels.email import SmtpReceipt  # noqa: E402
from orchestrator import dispatch, migrate, reachability  # noqa: E402
from orchestrator.campaigns import runs  # noqa: E402
from orchestrator.campaigns.spec import validate_campaign  # noqa: E402
from orchestrator.crypto import KeyRing  # noqa: E402
from orchestrator.db import create_engine, transaction  # noqa: E402
from orchestrator.ids import new_id  # noqa: E402
from orchestrator.messenger_apps import seal_secret, seal_verify_token  # noqa: E402
from orchestrator.models import Campaign, Contact, MessengerApp, Page, Workspace, table_of  # noqa: E402
from orchestrator.pages import not_done, token_context  # noqa: E402
from orchestrator.resources import Resources, build_resources  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

# The channel benchmarks, imported for their own loops (bench/ is not a package).
messenger_bench: Any = importlib.import_module("messenger_send")
email_bench: Any = importlib.import_module("email_send")

SECRET = "bench-secret-key-" + "c" * 40
APP_NAME = "bench_campaign"
PAGE_ID: str = messenger_bench.PAGES[0]  # its token is messenger_send's `token_for(PAGE_ID)`
EMAIL_PAGE_ID = "104000000000009"  # the email workspace's Page: registered, never called
GRAPH_VERSION: str = messenger_bench.VERSION
PSID_BASE = 8_000_000_000_000_000
RATE = 300
PLAN_TARGET_SECONDS = 10.0
SEND_RATIO_TARGET = 0.8
RSS_TARGET_MB = 250.0
NAMES = ["Nguyễn Thị Lan", "Trần Văn Minh", "Lê Ngọc Hà", "Phạm Quốc Bảo", "Võ Thu Trang"]


def postgres_url() -> str:
    return os.environ.get("OUTREACH_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this benchmark's engine."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND pid <> pg_backend_pid()",
            (APP_NAME,),
        ).fetchall()
    return {int(pid): proc_cpu(int(pid)) for (pid,) in pids}


def backend_pid(dbapi_connection: Any) -> int:
    return int(dbapi_connection.driver_connection.info.backend_pid)


def psid(index: int) -> str:
    return str(PSID_BASE + index)


# --- the emulator process ----------------------------------------------------------------------


def serve(port: int) -> None:
    """Child process: the emulator, plus `/_bench/seed` (many people at once, known PSIDs) and
    `/_bench/stats` (answers by status since the last call)."""
    import uvicorn

    from channels.sandbox import AfterSend, GraphEmulator

    # No echo or delivery webhooks: nobody receives them here (as in bench/messenger_send.py).
    emulator = GraphEmulator(
        send_rate_per_second=RATE, after_send=AfterSend(echo=False, delivery=False)
    )
    inner = emulator.app
    statuses: Counter[str] = Counter()

    async def reply(send: Any, body: bytes) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def read_json(receive: Any) -> Any:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return json.loads(b"".join(chunks) or b"{}")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/_bench/seed":
            body = await read_json(receive)
            opened = datetime.fromisoformat(body["opened_at"])
            for index in range(body["first"], body["first"] + body["count"]):
                emulator.add_person(
                    body["page_id"], psid(index), window_opened_at=opened, last_message_at=opened
                )
            await reply(send, b"{}")
            return
        if path == "/_bench/stats":
            await reply(send, json.dumps(dict(statuses)).encode())
            statuses.clear()
            return
        if path.endswith("/messages"):

            async def counting(message: Any) -> None:
                if message["type"] == "http.response.start":
                    statuses[str(message["status"])] += 1
                await send(message)

            await inner(scope, receive, counting)
            # The emulator records every request for tests; 100,000 of them only cost memory.
            if len(emulator.requests) > 2000:
                emulator.requests.clear()
                emulator.sent.clear()
            return
        await inner(scope, receive, send)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        ws="none",
    )


Emulator = tuple[asyncio.subprocess.Process, str]


async def start_emulator() -> Emulator:
    port: int = email_bench.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE), "--serve", str(port), cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as control:
        for _ in range(200):
            try:
                (await control.get("/_emulator/state")).raise_for_status()
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        else:
            process.kill()
            raise RuntimeError("the emulator did not start")
        page = {
            "page_id": PAGE_ID,
            "username": "hoasen.shop",
            "access_token": messenger_bench.token_for(PAGE_ID),
            "app_id": "1000000000000001",
            "app_secret": "bench-secret",
        }
        (await control.post("/_emulator/pages", json=page)).raise_for_status()
    return process, base


async def seed_emulator(base: str, count: int, opened: datetime) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as control:
        body = {"page_id": PAGE_ID, "first": 0, "count": count, "opened_at": opened.isoformat()}
        (await control.post("/_bench/seed", json=body)).raise_for_status()


async def emulator_stats(base: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=base) as control:
        answer = await control.get("/_bench/stats")
        answer.raise_for_status()
        stats: dict[str, int] = answer.json()
        return stats


# --- the channel benchmarks, each in a child process --------------------------------------------


def messenger_baseline_child(base: str, sends: int) -> None:
    """Child: bench/messenger_send.py's MessengerClient run, one Page, its own in-flight."""
    people = {PAGE_ID: [psid(index) for index in range(100)]}
    work = messenger_bench.jobs(people, [PAGE_ID], sends)
    in_flight = messenger_bench.in_flight_for(0.0, 1)
    run = asyncio.run(messenger_bench.run_client(base, work, in_flight, "MessengerClient, 1 Page"))
    result = {
        "sent": sends - run.errors,
        "errors": run.errors,
        "seconds": run.wall,
        "in_flight": in_flight,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_json_child(command: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu_before = children_cpu()
    output = subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    result: dict[str, Any] = json.loads(output.stdout.decode().strip().splitlines()[-1])
    result["per_second"] = result["sent"] / result["seconds"]
    # The child's CPU from start to exit (imports included: an upper bound per send).
    result["cpu_ms_per_send"] = (children_cpu() - cpu_before) / max(result["sent"], 1) * 1000
    return result


def messenger_baseline(base: str, sends: int) -> dict[str, Any]:
    command = [sys.executable, str(HERE), "--messenger-baseline", base, "--sends", str(sends)]
    return run_json_child(command)


def email_baseline(port: int, messages: int, connections: int, html_kb: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE.with_name("email_send.py")),
        "--child",
        "fast",
        "--port",
        str(port),
        "--messages",
        str(messages),
        "--connections",
        str(connections),
        "--html-kb",
        str(html_kb),
    ]
    return run_json_child(command)


# --- the store ----------------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    with psycopg.connect(postgres_url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type,unused-ignore]


def create_schema() -> tuple[str, str]:
    schema = "bench_campaign_" + os.urandom(4).hex()
    pg_admin(f"CREATE SCHEMA {schema}")
    base = postgres_url()
    sep = "&" if "?" in base else "?"
    # The application name finds our backends in pg_stat_activity, to read their CPU time.
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}&application_name={APP_NAME}"


def bench_settings(url: str, graph_url: str, smtp_port: int, connections: int) -> Settings:
    # Production defaults except where the channels are, and the SMTP pool sized like the
    # channel bench's (`--connections`), so the two email figures compare like for like.
    values: dict[str, object] = {
        "database_url": url,
        "secret_key": SECRET,
        "public_url": "https://outreach.bench.example",
        "embedded_scheduler": False,
        "graph_api_url": graph_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_pool_size": connections,
        "email_from": "Cửa hàng Hoa Sen <hello@shop.example.vn>",
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def create_tenant(
    resources: Resources, *, name: str, app_id: str, page_id: str, now: datetime
) -> str:
    """A workspace with a Meta app and a Page (the Page's token opens with the bench's key)."""
    keyring: KeyRing = resources.keyring
    workspace_id = new_id("ws")
    async with transaction(resources.sessions) as session:
        session.add(
            Workspace(
                id=workspace_id,
                name=name,
                from_name="Cửa hàng Hoa Sen",
                from_address="hello@shop.example.vn",
                postal_address="12 Lý Thường Kiệt, Hoàn Kiếm, Hà Nội",
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        app = MessengerApp(
            id=new_id("app"),
            workspace_id=workspace_id,
            app_id=app_id,
            app_secret_enc=seal_secret(keyring, app_id, "bench-secret"),
            verify_token_enc=seal_verify_token(keyring, app_id, "bench-verify"),
            created_at=now,
            updated_at=now,
        )
        session.add(app)
        await session.flush()
        session.add(
            Page(
                id=new_id("pg"),
                workspace_id=workspace_id,
                page_id=page_id,
                messenger_app_id=app.id,
                username="hoasen.shop",
                access_token_enc=keyring.encrypt(
                    messenger_bench.token_for(page_id), context=token_context(page_id)
                ),
                graph_api_version=GRAPH_VERSION,
                checks=not_done(),
                created_at=now,
                updated_at=now,
            )
        )
    return workspace_id


def contact_id(tag: str, index: int) -> str:
    # Same shape as new_id ("ct_" + 26 characters), ordered by index, computable again.
    return f"ct_{tag}{index:016d}"


def seed_contacts(
    schema: str, workspace_id: str, tag: str, count: int, *, channel: str, now: datetime
) -> float:
    """COPY `count` contacts and, per channel, a Messenger identity with an open window or a
    subscribed address. Rows are generated as they are written: nothing is held in memory."""
    created = now - timedelta(days=1)
    opened = now - timedelta(hours=1)
    started = time.perf_counter()

    def contacts() -> Iterator[tuple[Any, ...]]:
        for index in range(count):
            yield (
                contact_id(tag, index),
                workspace_id,
                f"{NAMES[index % len(NAMES)]} {index}",
                "vi",
                None,
                "{}",
                None,
                created,
                created,
            )

    def identities() -> Iterator[tuple[Any, ...]]:
        for index in range(count):
            yield (
                f"mi_{tag}{index:016d}",
                workspace_id,
                contact_id(tag, index),
                PAGE_ID,
                psid(index),
                opened,
                opened,
                opened,
                created,
                created,
            )

    def emails() -> Iterator[tuple[Any, ...]]:
        for index in range(count):
            yield (
                f"em_{tag}{index:016d}",
                workspace_id,
                contact_id(tag, index),
                f"khach{index}@mail{index % 97}.example.vn",
                "subscribed",
                created,
                created,
            )

    copies: list[tuple[str, Callable[[], Iterator[tuple[Any, ...]]]]] = [
        (
            "contacts (id, workspace_id, name, locale, timezone, attributes, merged_into, "
            "created_at, updated_at)",
            contacts,
        )
    ]
    if channel == "messenger":
        copies.append(
            (
                "messenger_identities (id, workspace_id, contact_id, page_id, psid, "
                "window_opened_at, last_user_message_at, last_event_at, created_at, updated_at)",
                identities,
            )
        )
    else:
        copies.append(
            (
                "email_identities (id, workspace_id, contact_id, address, status, "
                "status_changed_at, created_at)",
                emails,
            )
        )
    with psycopg.connect(postgres_url()) as conn:
        conn.execute(f"SET search_path TO {schema}")  # type: ignore[arg-type,unused-ignore]
        with conn.cursor() as cursor:
            for target, rows in copies:
                with cursor.copy(f"COPY {target} FROM STDIN") as copy:  # type: ignore[arg-type,unused-ignore]
                    for row in rows():
                        copy.write_row(row)
        conn.commit()
    vacuum(schema, "contacts", "messenger_identities", "email_identities")
    return time.perf_counter() - started


def vacuum(schema: str, *tables: str) -> None:
    # What autovacuum would have done by the time a real campaign runs on these rows.
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {schema}.{table}")  # type: ignore[arg-type,unused-ignore]


# --- the campaign -------------------------------------------------------------------------------

MESSENGER_TEXT = (
    "Chào {{ contact.name | default('bạn') }}! Ưu đãi tháng 12 của Cửa hàng Hoa Sen: giảm 30% "
    "cho tất cả sản phẩm chăm sóc da và quà tặng. Trả lời tin này để được tư vấn nhé."
)


def email_html(kilobytes: int) -> str:
    """Step HTML of about `kilobytes`, from the email bench's block, as a user template."""
    block = email_bench.BLOCK.replace("{{name}}", "{{ contact.name | default('bạn') }}")
    blocks = max(1, kilobytes * 1024 // len(block.encode()))
    return str('<table width="100%" cellpadding="0">\n' + block * blocks + "</table>\n")


def campaign_body(page_id: str, audience: dict[str, Any], html_kb: int) -> dict[str, Any]:
    return {
        "name": "Ưu đãi tháng 12",
        "page_id": page_id,
        "purpose": "promotional",
        "topic": "sale",
        "audience": audience,
        "steps": [
            {
                "delay": {"after": "0s"},
                "messenger": {
                    "text": MESSENGER_TEXT,
                    "quick_replies": [
                        {"content_type": "text", "title": "Đồng ý", "payload": "YES"},
                        {"content_type": "text", "title": "Để sau", "payload": "LATER"},
                    ],
                },
                "email": {
                    "subject": "Ưu đãi tháng 12 cho {{ contact.name | default('bạn') }}: giảm 30%",
                    "html": email_html(html_kb),
                },
                "fallback": "email",
            }
        ],
    }


async def launch_campaign(
    resources: Resources, workspace_id: str, body: dict[str, Any], now: datetime
) -> tuple[str, str, datetime]:
    spec = validate_campaign(body)
    campaign_id = new_id("cp")
    async with transaction(resources.sessions) as session:
        session.add(
            Campaign(
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
        )
    async with transaction(resources.sessions) as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        run = await runs.launch(session, campaign=campaign, now=resources.clock.now())
        assert run is not None
        return campaign_id, run.id, run.started_at


async def time_planning(resources: Resources, batch: int) -> tuple[int, float]:
    started = time.perf_counter()
    planned = await runs.plan_pending_runs(
        resources.sessions, clock=resources.clock.now, batch=batch
    )
    return planned, time.perf_counter() - started


def audience_sql(channel: str) -> str:
    """The campaign's audience in plain SQL: the rows `plan_pending_runs` plans."""
    if channel == "messenger":
        condition = (
            "EXISTS (SELECT 1 FROM messenger_identities i "
            "WHERE i.contact_id = c.id AND i.page_id = :page_id)"
        )
    else:
        condition = (
            "EXISTS (SELECT 1 FROM email_identities e "
            "WHERE e.contact_id = c.id AND e.status IN ('subscribed'))"
        )
    return (
        "FROM contacts c WHERE c.workspace_id = :workspace_id AND c.merged_into IS NULL "
        f"AND c.created_at <= :started_at AND {condition}"
    )


async def baseline_insert_select(
    resources: Resources,
    *,
    channel: str,
    workspace_id: str,
    campaign_id: str,
    page_id: str,
    started_at: datetime,
) -> tuple[int, float]:
    """The same rows planned by one `INSERT ... SELECT` (ids made in SQL), then deleted."""
    insert = sa.text(
        "INSERT INTO deliveries (id, workspace_id, kind, campaign_id, campaign_run_id, "
        "step_index, contact_id, page_id, purpose, topic, state, due_at, content, attempts, "
        "created_at, updated_at) "
        "SELECT 'dl_' || substr(md5(random()::text), 1, 26), c.workspace_id, 'step', "
        "CAST(:campaign_id AS varchar), 'run_bench_baseline', 0, c.id, "
        "CAST(:page_id AS varchar), 'promotional', 'sale', 'pending', "
        "CAST(:started_at AS timestamptz), '{}'::jsonb, 0, now(), now() " + audience_sql(channel)
    )
    params = {
        "workspace_id": workspace_id,
        "campaign_id": campaign_id,
        "page_id": page_id,
        "started_at": started_at,
    }
    started = time.perf_counter()
    async with resources.engine.begin() as conn:
        inserted = (await conn.execute(insert, params)).rowcount
    elapsed = time.perf_counter() - started
    async with resources.engine.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM deliveries WHERE campaign_run_id = 'run_bench_baseline'")
        )
    return int(inserted), elapsed


async def core_stream(
    resources: Resources, *, channel: str, workspace_id: str, page_id: str, started_at: datetime
) -> tuple[int, float]:
    """The audience's rows streamed through SQLAlchemy Core: the planner's read side alone."""
    query = sa.text("SELECT c.id, c.timezone " + audience_sql(channel) + " ORDER BY c.id")
    params = {"workspace_id": workspace_id, "page_id": page_id, "started_at": started_at}
    started = time.perf_counter()
    count = 0
    async with resources.engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=5000), params)
        async for _row in result:
            count += 1
    return count, time.perf_counter() - started


async def discard_campaign(resources: Resources, campaign_id: str) -> None:
    async with resources.engine.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM deliveries WHERE campaign_id = :c"), {"c": campaign_id}
        )
        await conn.execute(sa.text("DELETE FROM campaigns WHERE id = :c"), {"c": campaign_id})


# --- sending ------------------------------------------------------------------------------------


@dataclass
class Breakdown:
    """Wall time inside each dispatcher part (summed over concurrent deliveries) and SQL."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)
    statements: Counter[str] = field(default_factory=Counter)
    transactions: int = 0


def instrument(resources: Resources, breakdown: Breakdown) -> Callable[[], None]:
    """Wrap the dispatcher's parts with timers (module attributes, looked up at each call) and
    count statements; returns the undo."""
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                breakdown.seconds[label] += time.perf_counter() - started
                breakdown.calls[label] += 1

        setattr(owner, name, timed)
        undo.append(lambda: setattr(owner, name, original))

    def wrap_sync(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                breakdown.seconds[label] += time.perf_counter() - started
                breakdown.calls[label] += 1

        setattr(owner, name, timed)
        undo.append(lambda: setattr(owner, name, original))

    wrap(dispatch, "release_expired_leases", "round: release_expired_leases")
    wrap(dispatch, "claim_due", "round: claim_due")
    wrap(dispatch, "_load_plans", "_load_plans (1 transaction a batch)")
    wrap(reachability, "load_facts_many", "  reachability.load_facts_many")
    wrap_sync(dispatch, "_throttle_of", "  _throttle_of")
    wrap_sync(dispatch, "_email_plan", "  _email_plan (links + render + MIME)")
    wrap_sync(dispatch, "open_token", "  open_token (decrypt Page token)")
    wrap(dispatch, "_send_email", "_send_email (send)")
    wrap(dispatch, "_record_result", "_record_result (in the batch's transaction)")
    wrap(resources.messenger, "send_once", "messenger.send_once (limiter + HTTP)")
    wrap(resources.email, "send", "  email.send (SMTP)")
    wrap(dispatch, "_record", "_record (UPDATE + next step)")
    wrap(runs, "plan_next_step", "  runs.plan_next_step")

    sync_engine = resources.engine.sync_engine

    def on_statement(*args: Any) -> None:
        statement = str(args[2]).lstrip().split(None, 1)[0].upper()
        breakdown.statements[statement] += 1

    def on_begin(_conn: Any) -> None:
        breakdown.transactions += 1

    event.listen(sync_engine, "before_cursor_execute", on_statement)
    event.listen(sync_engine, "begin", on_begin)
    undo.append(lambda: event.remove(sync_engine, "before_cursor_execute", on_statement))
    undo.append(lambda: event.remove(sync_engine, "begin", on_begin))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


async def round_trip_probe(resources: Resources, tag: str, contacts: int) -> None:
    """What one database round trip costs this process, one at a time (no concurrency): the
    dispatcher makes ~11 statements and 2-3 transactions per send."""
    count = min(contacts, 2000)
    ids = [contact_id(tag, index) for index in range(count)]
    table = table_of(Contact)

    async def session_per_get() -> None:
        for one in ids:
            async with transaction(resources.sessions) as session:
                await session.get(Contact, one)

    async def gets_in_one_session() -> None:
        async with transaction(resources.sessions) as session:
            for one in ids:
                await session.get(Contact, one)
                session.expunge_all()

    async def core_in_one_connection() -> None:
        async with resources.engine.connect() as conn:
            for one in ids:
                (await conn.execute(sa.select(table).where(table.c.id == one))).first()

    async def core_batches_of_100() -> None:
        async with resources.engine.connect() as conn:
            for start in range(0, count, 100):
                chunk = ids[start : start + 100]
                (await conn.execute(sa.select(table).where(table.c.id.in_(chunk)))).all()

    probes: list[tuple[str, int, Callable[[], Awaitable[None]]]] = [
        ("ORM get, a transaction (checkout) each", count, session_per_get),
        ("ORM get, one session", count, gets_in_one_session),
        ("Core select, one connection", count, core_in_one_connection),
        ("Core select of 100 ids at once", count, core_batches_of_100),
    ]
    print(f"  one row read {count:,} times, sequentially:")
    for name, rows, probe in probes:
        cpu, wall = cpu_seconds(), time.perf_counter()
        await probe()
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        print(
            f"    {name:<40} {wall / rows * 1000:6.3f} ms wall, {cpu / rows * 1000:6.3f} ms CPU "
            "per row"
        )


@dataclass
class Drain:
    processed: int = 0
    rounds: int = 0
    empty_rounds: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    round_seconds: list[float] = field(default_factory=list)
    timed_out: bool = False
    connections: int = 0  # PostgreSQL connections opened while sending
    postgres_cpu: float = 0.0


async def open_rows(resources: Resources, campaign_id: str) -> int:
    async with resources.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT count(*) FROM deliveries WHERE campaign_id = :c "
                "AND state IN ('pending', 'claimed')"
            ),
            {"c": campaign_id},
        )
        return int(result.scalar_one())


async def drain(
    resources: Resources,
    campaign_id: str,
    *,
    cadence: str,
    max_seconds: float,
    profiler: cProfile.Profile | None,
) -> Drain:
    """`dispatch_once` as the worker calls it, until the campaign has no pending row."""
    settings = resources.settings
    dispatch_settings = dispatch.DispatchSettings(
        lease=timedelta(seconds=settings.lease_seconds),
        takeover_quiet=timedelta(seconds=settings.takeover_quiet_seconds),
        concurrency=settings.dispatch_concurrency,
        email=dispatch.EmailSettings(
            public_url=settings.public_url,
            default_from=settings.email_from,
            unsubscribe_mailto=settings.unsubscribe_mailto,
        ),
    )
    worker_id = new_id("wk")
    interval = settings.dispatch_interval_seconds
    result = Drain()
    sync_engine = resources.engine.sync_engine
    # PostgreSQL's side: the CPU of every backend that served the pool meanwhile, the ones the
    # pool opens and closes included (read just before they close).
    backends = backend_cpu()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        result.connections += 1
        backends[backend_pid(dbapi_connection)] = 0.0

    def on_close(dbapi_connection: Any, _record: Any) -> None:
        pid = backend_pid(dbapi_connection)
        if pid in backends:
            result.postgres_cpu += proc_cpu(pid) - backends.pop(pid)

    event.listen(sync_engine, "connect", on_connect)
    event.listen(sync_engine, "close", on_close)
    cpu_before = cpu_seconds()
    began = time.perf_counter()
    last_work_done = began
    if profiler is not None:
        profiler.enable()
    try:
        while True:
            round_began = time.perf_counter()
            # The worker's dispatch job (a short budget, so the figures below stay per call).
            processed = await dispatch.dispatch_until_idle(
                resources.sessions,
                resources.keyring,
                resources.messenger,
                worker_id=worker_id,
                clock=resources.clock.now,
                settings=dispatch_settings,
                email=resources.email,
                rounds=settings.dispatch_rounds,
                budget=1.0,
            )
            ended = time.perf_counter()
            result.rounds += 1
            if processed:
                result.processed += processed
                result.round_seconds.append(ended - round_began)
                last_work_done = ended
            else:
                result.empty_rounds += 1
                if await open_rows(resources, campaign_id) == 0:
                    break
                await asyncio.sleep(0.05)  # retries wait for their next_attempt_at
            if ended - began > max_seconds:
                result.timed_out = True
                break
            if cadence == "scheduler":
                # APScheduler's interval job, max_instances=1: a tick that comes while a round
                # runs is skipped, so the next round starts at the first tick after this one.
                elapsed = time.perf_counter() - began
                await asyncio.sleep(math.ceil(elapsed / interval) * interval - elapsed)
    finally:
        if profiler is not None:
            profiler.disable()
        event.remove(sync_engine, "connect", on_connect)
        event.remove(sync_engine, "close", on_close)
        result.postgres_cpu += sum(proc_cpu(pid) - cpu for pid, cpu in backends.items())
    result.seconds = last_work_done - began
    result.cpu = cpu_seconds() - cpu_before
    return result


@dataclass
class Outcomes:
    by_state: dict[str, int]
    sent: int
    due_to_sent: tuple[float, float, float]
    sent_span: float


async def outcomes(resources: Resources, campaign_id: str) -> Outcomes:
    async with resources.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT state, coalesce(reason, '-') AS reason, count(*) AS n FROM deliveries "
                    "WHERE campaign_id = :c GROUP BY state, reason ORDER BY n DESC"
                ),
                {"c": campaign_id},
            )
        ).all()
        timing = (
            await conn.execute(
                sa.text(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d), "
                    "extract(epoch FROM max(sent_at) - min(sent_at)) FROM ("
                    "  SELECT sent_at, extract(epoch FROM sent_at - due_at) AS d FROM deliveries "
                    "  WHERE campaign_id = :c AND state = 'sent') AS s"
                ),
                {"c": campaign_id},
            )
        ).one()
    by_state = {f"{row.state}/{row.reason}": int(row.n) for row in rows}
    sent = sum(n for key, n in by_state.items() if key.startswith("sent/"))
    p50, p99, worst, span = (float(value or 0.0) for value in timing)
    return Outcomes(by_state, sent, (p50, p99, worst), span)


# --- one pass -----------------------------------------------------------------------------------


@dataclass
class PassResult:
    channel: str
    contacts: int
    seed_seconds: float
    plans: list[tuple[int, int, float]]  # (batch, rows, seconds)
    baseline_rows: int
    baseline_seconds: float
    stream_rows: int
    stream_seconds: float
    channel_bench: dict[str, Any]
    drain: Drain
    outcomes: Outcomes
    rss_after_plan: float
    rss_after_send: float
    emulator_cpu: float = 0.0
    answers: dict[str, int] = field(default_factory=dict)
    breakdown: Breakdown | None = None
    email_bytes: int = 0


async def run_pass(
    channel: str,
    resources: Resources,
    args: argparse.Namespace,
    *,
    schema: str,
    emulator: Emulator,
    sink_port: int,
    profiler: cProfile.Profile | None,
) -> PassResult:
    now = resources.clock.now()
    page_id = PAGE_ID if channel == "messenger" else EMAIL_PAGE_ID
    app_id = "1000000000000001" if channel == "messenger" else "1000000000000002"
    workspace_id = await create_tenant(
        resources, name=f"bench-{channel}", app_id=app_id, page_id=page_id, now=now
    )
    tag = new_id("x")[2:12]
    print(f"\n[{channel}] seeding {args.contacts:,} contacts ...", flush=True)
    seed_seconds = seed_contacts(schema, workspace_id, tag, args.contacts, channel=channel, now=now)
    if channel == "messenger":
        await seed_emulator(emulator[1], args.contacts, now - timedelta(hours=1))
    audience: dict[str, Any] = (
        {"email_status": [], "messenger": "required"}
        if channel == "messenger"
        else {"email_status": ["subscribed"], "messenger": "any"}
    )
    body = campaign_body(page_id, audience, args.step_html_kb)

    plans: list[tuple[int, int, float]] = []
    # Throwaway copies first, the kept campaign last: each plans the same audience.
    for batch in args.plan_batches[1:]:
        throwaway, _run_id, _started = await launch_campaign(resources, workspace_id, body, now)
        planned, seconds = await time_planning(resources, batch)
        plans.append((batch, planned, seconds))
        await discard_campaign(resources, throwaway)
        print(
            f"[{channel}] planned {planned:,} rows in {seconds:.2f} s (batch {batch})", flush=True
        )
    campaign_id, _run_id, started_at = await launch_campaign(resources, workspace_id, body, now)
    plan_profiler = cProfile.Profile() if args.profile else None
    if plan_profiler is not None:
        plan_profiler.enable()
    planned, seconds = await time_planning(resources, args.plan_batches[0])
    if plan_profiler is not None:
        plan_profiler.disable()
        print_profile(plan_profiler, f"{args.profile}.plan-{channel}", "planning")
    plans.insert(0, (args.plan_batches[0], planned, seconds))
    print(
        f"[{channel}] planned {planned:,} rows in {seconds:.2f} s (batch {args.plan_batches[0]})",
        flush=True,
    )
    baseline_rows, baseline_seconds = await baseline_insert_select(
        resources,
        channel=channel,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        page_id=page_id,
        started_at=started_at,
    )
    stream_rows, stream_seconds = await core_stream(
        resources,
        channel=channel,
        workspace_id=workspace_id,
        page_id=page_id,
        started_at=started_at,
    )
    vacuum(schema, "deliveries")
    rss_after_plan = peak_rss_mb()

    # The channel's own benchmark, in its own process, just before the campaign sends.
    if channel == "messenger":
        await asyncio.sleep(1.2)  # let the emulator's one-second window drain
        bench = messenger_baseline(emulator[1], args.messenger_bench_sends)
        await asyncio.sleep(1.2)
        await emulator_stats(emulator[1])  # start the campaign's answers from zero
    else:
        bench = email_baseline(sink_port, args.email_bench_messages, args.connections, args.html_kb)
    print(
        f"[{channel}] channel bench: {bench['per_second']:.0f}/s, "
        f"{bench['cpu_ms_per_send']:.2f} ms CPU per send; dispatching ...",
        flush=True,
    )

    breakdown = Breakdown() if args.breakdown else None
    restore = instrument(resources, breakdown) if breakdown is not None else None
    sizes: list[int] = []
    original_send = resources.email.send

    async def sized_send(message: bytes, *, sender: str, recipients: Sequence[str]) -> SmtpReceipt:
        if len(sizes) < 10:
            sizes.append(len(message))
        return await original_send(message, sender=sender, recipients=recipients)

    resources.email.send = sized_send  # type: ignore[method-assign]
    emulator_cpu_before = proc_cpu(emulator[0].pid)
    try:
        drained = await drain(
            resources,
            campaign_id,
            cadence=args.cadence,
            max_seconds=args.max_send_seconds,
            profiler=profiler,
        )
    finally:
        resources.email.send = original_send  # type: ignore[method-assign]
        if restore is not None:
            restore()
    emulator_cpu = proc_cpu(emulator[0].pid) - emulator_cpu_before
    answers = await emulator_stats(emulator[1]) if channel == "messenger" else {}
    found = await outcomes(resources, campaign_id)
    if drained.timed_out:
        # Stopped before the end: the rows left must not be sent by the next pass's dispatcher.
        async with resources.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE deliveries SET state = 'cancelled', reason = 'bench.stopped' "
                    "WHERE campaign_id = :c AND state = 'pending'"
                ),
                {"c": campaign_id},
            )
    result = PassResult(
        channel=channel,
        contacts=args.contacts,
        seed_seconds=seed_seconds,
        plans=plans,
        baseline_rows=baseline_rows,
        baseline_seconds=baseline_seconds,
        stream_rows=stream_rows,
        stream_seconds=stream_seconds,
        channel_bench=bench,
        drain=drained,
        outcomes=found,
        rss_after_plan=rss_after_plan,
        rss_after_send=peak_rss_mb(),
        emulator_cpu=emulator_cpu,
        answers=answers,
        breakdown=breakdown,
        email_bytes=sum(sizes) // max(1, len(sizes)),
    )
    report_pass(result)
    if args.breakdown:
        await round_trip_probe(resources, tag, args.contacts)
    return result


# --- report -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_pass(result: PassResult) -> None:
    channel = result.channel
    drained = result.drain
    sent = result.outcomes.sent
    rate = sent / drained.seconds if drained.seconds else 0.0
    print(f"\n[{channel}] outcomes: {result.outcomes.by_state}")
    rounds = sorted(drained.round_seconds)
    if rounds:
        print(
            f"[{channel}] {drained.rounds} rounds ({drained.empty_rounds} empty), "
            f"{drained.processed:,} processed in {drained.seconds:.1f} s = {rate:.0f}/s; round "
            f"p50 {rounds[len(rounds) // 2]:.2f} s, max {rounds[-1]:.2f} s"
            + f"; {drained.connections:,} new database connections"
            + ("; TIMED OUT" if drained.timed_out else "")
        )
    print(
        f"[{channel}] CPU during the sends: this process {drained.cpu:.1f} s "
        f"({drained.cpu / max(drained.seconds, 1e-9):.0%} of a core, "
        f"{drained.cpu / max(sent, 1) * 1000:.2f} ms per send)"
        + (f", emulator {result.emulator_cpu:.1f} s" if channel == "messenger" else "")
        + f", its PostgreSQL backends {drained.postgres_cpu:.1f} s"
    )
    if result.answers:
        print(f"[{channel}] emulator answers to the campaign: {result.answers}")
    if result.email_bytes:
        print(
            f"[{channel}] email size: campaign {result.email_bytes:,} bytes, channel bench "
            f"{result.channel_bench.get('bytes_per_message', 0):,} bytes"
        )
    if result.breakdown is not None:
        report_breakdown(result.breakdown, sent)


def report_breakdown(breakdown: Breakdown, sent: int) -> None:
    print("  dispatcher breakdown (wall seconds summed over concurrent deliveries):")
    for label, seconds in breakdown.seconds.items():
        calls = breakdown.calls[label]
        print(
            f"    {label:<44} {seconds:9.1f} s  {calls:>8,} calls  "
            f"{seconds / max(calls, 1) * 1000:8.2f} ms/call"
        )
    total = sum(breakdown.statements.values())
    per = {name: round(n / max(sent, 1), 2) for name, n in breakdown.statements.most_common()}
    print(
        f"  SQL: {total:,} statements ({total / max(sent, 1):.1f} per send: {per}), "
        f"{breakdown.transactions:,} transactions ({breakdown.transactions / max(sent, 1):.1f} "
        "per send)"
    )


def report(results: list[PassResult], peak: float, args: argparse.Namespace) -> bool:
    print(
        f"\ncampaign of {args.contacts:,} contacts per channel, PostgreSQL, one worker "
        f"(cadence {args.cadence}); python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    header = f"{'measure':<42} {'measured':>22} {'baseline (same run)':>36}  {'target':<18} verdict"
    print(header)
    print("-" * len(header))
    passed = True
    for result in results:
        channel = result.channel
        for index, (batch, rows, seconds) in enumerate(result.plans):
            ok = seconds < PLAN_TARGET_SECONDS and rows == result.contacts
            passed = passed and ok
            base = (
                f"INSERT..SELECT {result.baseline_seconds:.2f} s "
                f"({result.baseline_rows / max(result.baseline_seconds, 1e-9):,.0f}/s)"
                if index == 0
                else ""
            )
            print(
                f"{f'plan, {channel}, batch {batch}':<42} "
                f"{f'{rows:,} in {seconds:.2f} s ({rows / max(seconds, 1e-9):,.0f}/s)':>22} "
                f"{base:>36}  {'< 10 s':<18} {verdict(ok)}"
            )
        stream = (
            f"{result.stream_rows:,} in {result.stream_seconds:.2f} s "
            f"({result.stream_rows / max(result.stream_seconds, 1e-9):,.0f}/s)"
        )
        print(f"{'  audience read alone, Core stream':<42} {stream:>22}")
        drained = result.drain
        rate = result.outcomes.sent / drained.seconds if drained.seconds else 0.0
        bench = result.channel_bench["per_second"]
        ratio = rate / bench if bench else 0.0
        all_sent = result.outcomes.sent == result.contacts and not drained.timed_out
        ok = ratio >= SEND_RATIO_TARGET and all_sent
        passed = passed and ok
        name = "MessengerClient, 1 Page" if channel == "messenger" else "channels.email"
        note = (
            ""
            if all_sent
            else f"; stopped after {drained.seconds:.0f} s, {result.outcomes.sent:,} of "
            f"{result.contacts:,} sent, all would take ~{result.contacts / max(rate, 1e-9):,.0f} s"
        )
        print(
            f"{f'send, {channel} ({result.outcomes.sent:,} sent)':<42} {f'{rate:,.0f}/s':>22} "
            f"{f'{name} {bench:,.0f}/s':>36}  {'>= 0.8 x':<18} "
            f"{verdict(ok)} ({ratio:.2f}x{note})"
        )
        p50, p99, worst = result.outcomes.due_to_sent
        floor = result.contacts / bench if bench else 0.0
        print(
            f"{f'  due -> sent p50 / p99 / max, {channel}' + ('' if all_sent else ' (sent rows)'):<42} "
            f"{f'{p50:.1f} / {p99:.1f} / {worst:.1f} s':>22} "
            f"{f'all due at launch: >= {floor:.0f} s at {bench:,.0f}/s':>36}  {'(info)':<18}"
        )
    ok = peak < RSS_TARGET_MB
    passed = passed and ok
    phases = ", ".join(
        f"{r.channel}: {r.rss_after_plan:.0f} after planning, {r.rss_after_send:.0f} after sending"
        for r in results
    )
    print(f"{'peak RSS (this process)':<42} {f'{peak:.0f} MB':>22} {'':>36}  {'< 250 MB':<18} "
          f"{verdict(ok)}")  # fmt: skip
    print(f"  ({phases})")
    print(f"overall: {verdict(passed)}")
    return passed


def profile_groups(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time per package (site-packages name, this repository's folder, stdlib module)."""
    groups: defaultdict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, *_rest) in raw.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(str(ROOT)):
            key = "/".join(Path(filename).relative_to(ROOT).parts[:2])
        elif filename == "~":
            key = f"builtin {function}"[:60]
        else:
            key = "stdlib " + Path(filename).parts[-1]
        groups[key] += own
    return sorted(groups.items(), key=lambda item: -item[1])


def print_profile(profiler: cProfile.Profile, path: str, what: str) -> None:
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    groups = profile_groups(stats)
    total = sum(own for _key, own in groups) or 1.0
    print(f"\ncProfile of the {what} (saved to {path}); own time by package (top 25):")
    for key, own in groups[:25]:
        print(f"  {own:8.2f} s {own / total:6.1%}  {key}")
    # Cumulative times are left out: a coroutine's frame is counted again at every resumption.
    print("top 30 functions by own time:")
    stats.sort_stats("tottime").print_stats(30)


# --- main ---------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> bool:
    sink_kind = "smtp-sink" if shutil.which(email_bench.SMTP_SINK) else "aiosmtpd"
    sink_port: int = email_bench.free_port()
    sink = email_bench.start_sink(sink_kind, sink_port)
    emulator = await start_emulator()
    schema, url = create_schema()
    resources: Resources | None = None
    profiler = cProfile.Profile() if args.profile else None
    try:
        settings = bench_settings(url, emulator[1], sink_port, args.connections)
        migrating = create_engine(settings, pool_size=1)
        await migrate.upgrade(migrating)
        if args.pending_index:
            async with migrating.begin() as conn:
                await conn.execute(
                    sa.text(
                        "CREATE INDEX ix_bench_deliveries_pending ON deliveries (due_at, id) "
                        "WHERE state = 'pending'"
                    )
                )
        await migrating.dispose()
        # `--no-pre-ping` is an experiment (production pings every checkout): our own engine.
        engine = create_engine(settings, pool_pre_ping=False) if args.no_pre_ping else None
        resources = build_resources(settings, engine=engine)
        print(
            f"schema {schema}; emulator {emulator[1]}; sink {sink_kind} on {sink_port}; "
            f"dispatch batch {dispatch.DispatchSettings().batch}, concurrency "
            f"{settings.dispatch_concurrency}, db pool {settings.db_pool_size}, graph in-flight "
            f"{settings.graph_max_in_flight}, smtp pool {settings.smtp_pool_size}, pre-ping "
            f"{'off' if args.no_pre_ping else 'on'}"
            + ("; experiment: partial index on pending (due_at, id)" if args.pending_index else ""),
            flush=True,
        )
        results = []
        for channel in args.channels:
            results.append(
                await run_pass(
                    channel,
                    resources,
                    args,
                    schema=schema,
                    emulator=emulator,
                    sink_port=sink_port,
                    profiler=profiler,
                )
            )
        passed = report(results, peak_rss_mb(), args)
        if profiler is not None:
            print_profile(profiler, args.profile, "send phases")
        return passed
    finally:
        if resources is not None:
            await resources.close()
            if not resources.owns_engine:
                await resources.engine.dispose()
        emulator[0].terminate()
        await asyncio.wait_for(emulator[0].wait(), timeout=10)
        sink.terminate()
        sink.wait(timeout=10)
        if args.keep_schema:
            print(f"schema {schema} kept")
        else:
            pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 contacts: a smoke run")
    parser.add_argument(
        "--plan-batches",
        default="2000",
        help="planner batch sizes; the first plans the kept campaign (default: production 2000)",
    )
    parser.add_argument("--channels", default="messenger,email")
    parser.add_argument("--cadence", choices=["tight", "scheduler"], default="tight")
    parser.add_argument("--connections", type=int, default=8, help="SMTP connections (both runs)")
    parser.add_argument("--html-kb", type=int, default=20, help="the email bench's HTML size")
    parser.add_argument(
        "--step-html-kb",
        type=int,
        default=11,
        help="the campaign step's HTML size; 11 KB in the fallback layout (HTML and text parts)\n"
        "makes a message the size of the email bench's 20 KB one (~37 KB)",
    )
    parser.add_argument("--messenger-bench-sends", type=int, default=5_000)
    parser.add_argument("--email-bench-messages", type=int, default=20_000)
    parser.add_argument(
        "--max-send-seconds",
        type=float,
        default=1800.0,
        help="stop each send pass after this long (the rows left are cancelled)",
    )
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--profile", metavar="FILE", default=None)
    parser.add_argument("--keep-schema", action="store_true")
    parser.add_argument(
        "--pending-index",
        action="store_true",
        help="experiment: a partial index deliveries (due_at, id) WHERE state = 'pending', so\n"
        "claim_due's ORDER BY due_at, id LIMIT walks an index instead of the whole queue",
    )
    parser.add_argument(
        "--no-pre-ping",
        action="store_true",
        help="experiment: the engine without pool_pre_ping (OUTREACH_DB_POOL_SIZE and\n"
        "OUTREACH_DISPATCH_CONCURRENCY in the environment are other experiments)",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--messenger-baseline", metavar="BASE", help=argparse.SUPPRESS)
    parser.add_argument("--sends", type=int, default=5_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    if args.messenger_baseline:
        messenger_baseline_child(args.messenger_baseline, args.sends)
        return
    if args.quick:
        args.contacts = 5_000
        args.messenger_bench_sends = min(args.messenger_bench_sends, 2_000)
        args.email_bench_messages = min(args.email_bench_messages, 5_000)
    args.plan_batches = [int(item) for item in args.plan_batches.split(",") if item.strip()]
    args.channels = [item.strip() for item in args.channels.split(",") if item.strip()]
    passed = asyncio.run(bench(args))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
