"""Capture benchmark: the public capture endpoint under load from a second process on loopback.

    .venv/bin/python bench/capture.py                  # PostgreSQL (127.0.0.1:5432/test)
    .venv/bin/python bench/capture.py --sqlite
    .venv/bin/python bench/capture.py --captures 2000 --concurrency 32 --single-opt-in

The server (`outreach serve`, one process, embedded scheduler off as in production, where
`outreach worker` processes run the jobs) gets raised limits through its settings (`OUTREACH_CAPTURE_RATE_PER_IP`, `_PER_FORM`,
`_TOKEN_RATE_PER_IP`, a zero `_TOKEN_MIN_FILL_SECONDS`). This process fetches one form token per
capture first (timed separately: tokens/s), then posts what the widget posts: form-encoded email,
consent, token and the empty honeypot, with the allowed Origin, each a new address. Printed:
captures/s and p50/p99 beside a bare endpoint (Starlette under uvicorn, another process) that
reads the same body and returns the same JSON, measured in the same run, with the CPU time each
server process used per request (from /proc: its own cost, whatever else the machine is doing)
and the load generator's (a minimal keep-alive HTTP/1.1 client: httpx cost more CPU per request
than the server under test).

Popup and embedded forms answer once the capture is in the capture inbox: the run then applies
the inbox as the `capture.apply` job does (in this process) and prints how long it took to empty
and the CPU each capture's contact, ledger, tags, confirmation and trigger cost.

Then the rate limit: a second server on the same database with the production per-IP limit
(`--burst-limit`, default 20/minute) takes `--burst` captures at once from one client, each with
a valid token; the count of 200s must equal the limit and the rest must be 429.

`--breakdown` instead profiles one capture after another inside this process (the app over
httpx's ASGI transport, no network): CPU milliseconds and SQL statements per capture, the same for
a request refused at the honeypot (what every request costs before the capture itself), then for
applying them from the inbox, and own time by package under cProfile (`BENCH_TOP=30` adds the
top functions).

Target (issue #9): at least 500 captures/s with p99 under 100 ms on PostgreSQL. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

PG = os.environ.get("OUTREACH_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
ORIGIN = "https://shop.aodaihong.vn"
ANSWER = {
    "status": "pending_confirmation",
    "double_opt_in": True,
    "messenger_url": None,
    "spin": None,
}

BARE = textwrap.dedent(
    """
    from urllib.parse import parse_qs
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    ANSWER = %r
    async def capture(request):
        fields = parse_qs((await request.body()).decode())
        if not fields.get("token"):
            return JSONResponse({"detail": "token"}, status_code=400)
        return JSONResponse(ANSWER, headers={"Access-Control-Allow-Origin": request.headers["origin"],
                                             "Vary": "Origin", "Cache-Control": "no-store"})
    app = Starlette(routes=[Route("/capture/{form_id}", capture, methods=["POST"])])
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            raise SystemExit(f"server exited with {proc.returncode}\n{text}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def serve(env: dict[str, str], cwd: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=20)


CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just what these endpoints answer (a status
    line, headers with Content-Length, a body). httpx cost the load generator about 1.3 ms of
    CPU per request, more than the server under test: on two shared cores the client was the
    bottleneck, for the bare endpoint too."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
            + body
        )
        try:
            answer = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(answer)
            data = await reader.readexactly(int(length.group(1))) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if b"\r\nconnection: close" in answer.lower():
            await self.close()
        return int(answer[9:12]), data

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def fetch_tokens(
    base: str, form_id: str, count: int, concurrency: int
) -> tuple[list[str], float]:
    tokens: list[str] = []
    remaining = iter(range(count))

    async def worker() -> None:
        connection = Connection(base)
        for _ in remaining:
            status, data = await connection.request(
                "GET", f"/f/{form_id}/token", {"Origin": ORIGIN}
            )
            if status != 200:
                raise SystemExit(f"token: {status} {data[:200]!r}")
            tokens.append(json.loads(data)["token"])
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens, time.perf_counter() - started


def body_for(address: str, token: str) -> dict[str, str]:
    return {"email": address, "consent": "true", "token": token, "website": "", "locale": "vi"}


FORM_HEADERS = {
    "Origin": ORIGIN,
    "User-Agent": "Mozilla/5.0 (bench)",
    "Content-Type": "application/x-www-form-urlencoded",
}


async def blast(
    base: str, form_id: str, tokens: list[str], concurrency: int, run: str
) -> tuple[float, list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    first_error: dict[int, str] = {}
    client_cpu = time.process_time()
    work = iter(enumerate(tokens))

    async def worker() -> None:
        connection = Connection(base)
        for i, token in work:
            body = urlencode(body_for(f"khach.{run}.{i}@example.com", token)).encode()
            started = time.perf_counter()
            try:
                status, data = await connection.request(
                    "POST", f"/capture/{form_id}", FORM_HEADERS, body
                )
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                latencies.append(time.perf_counter() - started)
                statuses[0] += 1  # no answer at all
                first_error.setdefault(0, repr(exc))
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if status != 200 and status not in first_error:
                first_error[status] = data[:300].decode(errors="replace")
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    if run in ("bare", "ours"):
        print(
            f"  ({run}: the load generator used {client_cpu / len(tokens) * 1000:.2f} ms CPU/req)"
        )
    for status, text in first_error.items():
        print(f"  {run}: {statuses[status]} x {status}, e.g. {text}")
    return elapsed, latencies, statuses


async def burst(base: str, form_id: str, tokens: list[str]) -> Counter[int]:
    """Every request at once from one client (one IP), each with its own valid token."""

    async def one(i: int, token: str) -> int:
        connection = Connection(base)
        body = urlencode(body_for(f"burst.{i}@example.com", token)).encode()
        status, _ = await connection.request("POST", f"/capture/{form_id}", FORM_HEADERS, body)
        await connection.close()
        return status

    answers = await asyncio.gather(*(one(i, token) for i, token in enumerate(tokens)))
    return Counter(answers)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux): the server's own cost per request,
    whatever else the machine is doing meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    name: str, count: int, elapsed: float, latencies: list[float], cpu: float
) -> tuple[float, float]:
    latencies.sort()
    rate = count / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    print(
        f"{name:<30} {rate:8.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
        f"server CPU {cpu / count * 1000:5.2f} ms/req   ({elapsed:.1f} s)"
    )
    return rate, p99


def create_form(base: str, headers: dict[str, str], single_opt_in: bool) -> str:
    response = httpx.post(
        f"{base}/v1/forms",
        headers=headers,
        json={
            "name": "Bench popup",
            "kind": "popup",
            "allowed_origins": [ORIGIN],
            "tags": ["bench"],
            "consent": {"text": "Tôi đồng ý nhận email ưu đãi.", "version": "bench-1"},
            "double_opt_in": not single_opt_in,
        },
    )
    if response.status_code != 201:
        raise SystemExit(f"form: {response.status_code} {response.text}")
    form_id: str = response.json()["id"]
    return form_id


async def breakdown(database_url: str, count: int) -> None:
    """Where a capture's time goes, in this process (see the module docstring)."""
    import cProfile
    import pstats

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from orchestrator import migrate
    from orchestrator.apikeys import create_api_key
    from orchestrator.app import create_app
    from orchestrator.capture import inbox
    from orchestrator.capture.guard import CaptureSettings
    from orchestrator.db import create_engine
    from orchestrator.resources import build_resources
    from orchestrator.settings import Settings
    from orchestrator.workspaces import create_workspace

    settings = Settings(
        _env_file=None,
        database_url=database_url,
        secret_key="bench-secret-" + "c" * 40,
        public_url="https://outreach.bench",
        embedded_scheduler=False,
        log_level="WARNING",
        capture_token_min_fill_seconds=0,
        capture_rate_per_ip="10000000/minute",
        capture_rate_per_form="10000000/minute",
        capture_token_rate_per_ip="10000000/minute",  # noqa: S106 (a rate)
    )
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session, session.begin():
        workspace = await create_workspace(session, name="bench", now=now)
        issued = await create_api_key(session, workspace_id=workspace.id, now=now)
    statements: Counter[str] = Counter()

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*args: Any) -> None:
        text = re.sub(r"sa_savepoint_\d+", "sa_savepoint_N", " ".join(str(args[2]).split()))
        statements[text[:60]] += 1

    resources = build_resources(settings, engine=engine)
    app = create_app(resources=resources, run_scheduler=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    origin = {"Origin": ORIGIN}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        created = await client.post(
            "/v1/forms",
            headers={"Authorization": f"Bearer {issued.key}"},
            json={
                "name": "Bench popup",
                "kind": "popup",
                "allowed_origins": [ORIGIN],
                "consent": {"text": "Tôi đồng ý.", "version": "1"},
            },
        )
        form_id = created.json()["id"]
        tokens = [
            (await client.get(f"/f/{form_id}/token", headers=origin)).json()["token"]
            for _ in range(count + 250)
        ]

        async def post(i: int, token: str, honeypot: str = "") -> None:
            data = {**body_for(f"khach.{i}@example.com", token), "website": honeypot}
            answer = await client.post(f"/capture/{form_id}", headers=origin, data=data)
            assert answer.status_code == (400 if honeypot else 200), answer.text

        for i in range(50):
            await post(-i - 1, tokens.pop())
        statements.clear()
        cpu = time.process_time()
        for i in range(200):
            await post(i, "x", honeypot="bot")
        refused_ms = (time.process_time() - cpu) / 200 * 1000
        refused_statements = sum(statements.values()) / 200
        statements.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(count):
            await post(i, tokens.pop())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(200):
            await post(count + i, tokens.pop())
        profiler.disable()
        accepted = statements.copy()
        statements.clear()
        apply_cpu = time.process_time()
        applied = await inbox.apply_until_idle(
            resources.sessions, resources.keyring, settings=CaptureSettings.of(settings)
        )
        apply_cpu = time.process_time() - apply_cpu
    await resources.close()
    print(
        f"refused at the honeypot: {refused_ms:.2f} ms CPU, {refused_statements:.1f} statements"
        f"\ncapture (new address, one after another): {cpu / count * 1000:.2f} ms CPU, "
        f"{wall / count * 1000:.2f} ms wall, {sum(accepted.values()) / (count + 200):.1f} statements"
    )
    for statement, n in accepted.most_common():
        print(f"  {n / (count + 200):5.2f}  {statement}")
    print(
        f"applying them (capture.apply, {applied} rows): {apply_cpu / applied * 1000:.2f} ms CPU, "
        f"{sum(statements.values()) / applied:.1f} statements each"
    )
    for statement, n in statements.most_common():
        print(f"  {n / applied:5.2f}  {statement}")
    own: Counter[str] = Counter()
    for (filename, _, _), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        package = (
            filename.split("site-packages/")[1].split("/")[0]
            if "site-packages/" in filename
            else "orchestrator"
            if "/orchestrator/" in filename
            else "builtins and stdlib"
        )
        own[package] += row[2]
    total = sum(own.values())
    print(
        "own time by package (cProfile, 200 more): "
        + ", ".join(f"{k} {v / total:.0%}" for k, v in own.most_common(8))
    )
    if os.environ.get("BENCH_TOP"):
        pstats.Stats(profiler).sort_stats("tottime").print_stats(int(os.environ["BENCH_TOP"]))


async def drain(database_url: str, env: dict[str, str]) -> None:
    """Apply the captures the run left in the inbox, as the `capture.apply` job does (the
    server's embedded scheduler is off): how long until the inbox is empty."""
    from orchestrator.capture import inbox
    from orchestrator.capture.guard import CaptureSettings
    from orchestrator.resources import build_resources
    from orchestrator.settings import Settings

    settings = Settings(
        _env_file=None,
        database_url=database_url,
        secret_key=env["OUTREACH_SECRET_KEY"],
        public_url=env["OUTREACH_PUBLIC_URL"],
        log_level="WARNING",
    )
    resources = build_resources(settings)
    try:
        async with resources.sessions() as session:
            waiting = await inbox.pending(session)
        cpu, wall = time.process_time(), time.perf_counter()
        applied = await inbox.apply_until_idle(
            resources.sessions, resources.keyring, settings=CaptureSettings.of(settings)
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        async with resources.sessions() as session:
            left = await inbox.pending(session)
    finally:
        await resources.close()
    print(
        f"{'inbox drained (capture.apply)':<30} {applied / wall:8.0f} rows/s   "
        f"{waiting} rows in {wall:.1f} s, {cpu / max(applied, 1) * 1000:.2f} ms CPU each, "
        f"{left} left"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captures", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--single-opt-in", action="store_true")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--burst-limit", default="20/minute")
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile")
    parser.add_argument("--breakdown", action="store_true", help="profile in this process")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    schema = None
    if args.sqlite:
        database_url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        schema = "bench_" + secrets.token_hex(4)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type,unused-ignore]
        database_url = f"{PG}?options=-csearch_path%3D{schema}"
    if args.breakdown:
        try:
            asyncio.run(breakdown(database_url, min(args.captures, 1000)))
        finally:
            if schema:
                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type,unused-ignore]
        return
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
        "OUTREACH_DATABASE_URL": database_url,
        "OUTREACH_SECRET_KEY": "bench-secret-" + "c" * 40,
        "OUTREACH_PUBLIC_URL": "https://outreach.bench",
        "OUTREACH_GRAPH_API_URL": "http://127.0.0.1:9",
        "OUTREACH_EMBEDDED_SCHEDULER": "false",
        "OUTREACH_LOG_LEVEL": "warning",
        "OUTREACH_CAPTURE_TOKEN_MIN_FILL_SECONDS": "0",
        "OUTREACH_CAPTURE_RATE_PER_IP": "10000000/minute",
        "OUTREACH_CAPTURE_RATE_PER_FORM": "10000000/minute",
        "OUTREACH_CAPTURE_TOKEN_RATE_PER_IP": "10000000/minute",
    }
    if args.profile:
        env["BENCH_PROFILE"] = str(Path(args.profile).resolve())
    port, bare_port, burst_port = free_port(), free_port(), free_port()
    (tmp / "bare.py").write_text(BARE % (ANSWER,))
    bare = subprocess.Popen(
        [python(), "-m", "uvicorn", "bare:app", "--port", str(bare_port), "--log-level", "warning"],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(tmp)},
    )
    log = tmp / "server.log"
    server = serve_profiled(env, tmp, port, log) if args.profile else serve(env, tmp, port, log)
    limited: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
        found = re.search(r"\b(ok_[0-9a-f]{12}_\S+)", log.read_text())
        if found is None:
            raise SystemExit(f"no API key printed:\n{log.read_text()}")
        headers = {"Authorization": f"Bearer {found.group(1)}"}
        base = f"http://127.0.0.1:{port}"
        form_id = create_form(base, headers, args.single_opt_in)
        engine = "SQLite" if args.sqlite else "PostgreSQL"
        mode = "single" if args.single_opt_in else "double"
        print(
            f"{args.captures} captures ({mode} opt-in, each a new address), "
            f"{args.concurrency} in flight, {engine}, {os.cpu_count()} cores"
        )
        warm, _ = asyncio.run(fetch_tokens(base, form_id, 300, args.concurrency))
        asyncio.run(blast(base, form_id, warm, args.concurrency, "warm"))
        asyncio.run(blast(f"http://127.0.0.1:{bare_port}", form_id, warm, args.concurrency, "w"))
        cpu = cpu_seconds(server.pid)
        tokens, token_elapsed = asyncio.run(
            fetch_tokens(base, form_id, args.captures, args.concurrency)
        )
        cpu = cpu_seconds(server.pid) - cpu
        print(
            f"{'form tokens (GET /f/.../token)':<30} {len(tokens) / token_elapsed:8.0f} req/s"
            f"{'':36}server CPU {cpu / len(tokens) * 1000:5.2f} ms/req"
        )
        cpu = cpu_seconds(bare.pid)
        bare_elapsed, bare_lat, _ = asyncio.run(
            blast(f"http://127.0.0.1:{bare_port}", form_id, tokens, args.concurrency, "bare")
        )
        cpu = cpu_seconds(bare.pid) - cpu
        bare_rate, _ = report("bare endpoint, same JSON", len(tokens), bare_elapsed, bare_lat, cpu)
        cpu = cpu_seconds(server.pid)
        elapsed, latencies, statuses = asyncio.run(
            blast(base, form_id, tokens, args.concurrency, "ours")
        )
        cpu = cpu_seconds(server.pid) - cpu
        rate, p99 = report("POST /capture/{form_id}", len(tokens), elapsed, latencies, cpu)
        print(f"ratio to bare: {rate / bare_rate:.2f}; answers {dict(statuses)}")
        failed = sum(n for status, n in statuses.items() if status != 200)
        verdict = "met" if rate >= 500 and p99 < 100 and not failed else "MISSED"
        print(f"target >= 500 captures/s and p99 < 100 ms: {verdict}")
        asyncio.run(drain(database_url, env))
        stop(server)
        if args.profile:
            print(f"profile written to {args.profile}")

        burst_env = {
            **env,
            "OUTREACH_CAPTURE_RATE_PER_IP": args.burst_limit,
            "OUTREACH_CAPTURE_RATE_PER_FORM": "600/minute",
        }
        burst_env.pop("BENCH_PROFILE", None)
        limited = serve(burst_env, tmp, burst_port, tmp / "burst.log")
        burst_base = f"http://127.0.0.1:{burst_port}"
        burst_tokens, _ = asyncio.run(fetch_tokens(burst_base, form_id, args.burst, 16))
        counts = asyncio.run(burst(burst_base, form_id, burst_tokens))
        allowed = int(args.burst_limit.split("/")[0])
        expected = {200: min(allowed, args.burst), 429: max(0, args.burst - allowed)}
        holds = "holds" if dict(counts) == {k: v for k, v in expected.items() if v} else "BROKEN"
        print(
            f"burst of {args.burst} from one client, limit {args.burst_limit} per IP: "
            f"{counts.get(200, 0)} accepted, {counts.get(429, 0)} x 429, others "
            f"{ {k: v for k, v in counts.items() if k not in (200, 429)} } -> limit {holds}"
        )
    finally:
        stop(server)
        if limited is not None:
            stop(limited)
        stop(bare)
        if schema:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type,unused-ignore]


def python() -> str:
    return sys.executable


PROFILED = """
import cProfile, os, signal, sys
from orchestrator.cli import main
profiler = cProfile.Profile()
def dump(*_):
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])
    os._exit(0)
signal.signal(signal.SIGTERM, dump)  # uvicorn restores it and raises SIGTERM again on exit
sys.argv = ["outreach", "serve", "--port", sys.argv[1]]
profiler.enable()
try:
    main()
finally:
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])
"""


def serve_profiled(env: dict[str, str], cwd: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`outreach serve` under cProfile; the stats are written when it stops."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [python(), "-c", PROFILED, str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


if __name__ == "__main__":
    main()
