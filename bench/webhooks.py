"""Webhook benchmark: 10,000 signed events posted from this process to the server in another.

Prints acknowledged events/s and p50/p99 acknowledgement latency for our endpoint (signature
check, inbox insert, commit) beside a bare endpoint that only checks the signature, measured in the
same run; then the time until the embedded scheduler has applied every event.

    .venv/bin/python bench/webhooks.py                  # PostgreSQL (127.0.0.1:5432/test)
    .venv/bin/python bench/webhooks.py --sqlite
    .venv/bin/python bench/webhooks.py --events 2000 --concurrency 32

Target (issue "Messenger II"): at least 0.5 of the bare endpoint's rate, p99 under 500 ms, on
PostgreSQL. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "990000000000001"
SECRET = "bench-app-secret-0123456789"
PAGE_ID = "104000000000999"
PG = os.environ.get("OUTREACH_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")

BARE = (
    textwrap.dedent(
        """
    import hashlib, hmac
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    SECRET = %r
    async def hook(request):
        raw = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
            return Response(status_code=403)
        return JSONResponse({"stored": 1, "duplicates": 0})
    app = Starlette(routes=[Route("/webhooks/messenger/{app_id}", hook, methods=["POST"])])
    """
    )
    % SECRET
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def body_for(i: int, run: str) -> bytes:
    ts = 1_764_000_000_000 + i
    event = {
        "sender": {"id": str(7_000_000_000_000_000 + i % 500)},
        "recipient": {"id": PAGE_ID},
        "timestamp": ts,
        "message": {"mid": f"m_{run}_{i}", "text": f"Chào shop, đơn số {i} còn hàng không?"},
    }
    envelope = {"object": "page", "entry": [{"id": PAGE_ID, "time": ts, "messaging": [event]}]}
    return json.dumps(envelope, ensure_ascii=True, separators=(",", ":")).encode()


def sign(raw: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def blast(base: str, events: int, concurrency: int, run: str) -> tuple[float, list[float]]:
    bodies = [body_for(i, run) for i in range(events)]
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                raw = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(
                    f"/webhooks/messenger/{APP_ID}",
                    content=raw,
                    headers={"X-Hub-Signature-256": sign(raw), "Content-Type": "application/json"},
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"unexpected {response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def report(name: str, events: int, elapsed: float, latencies: list[float]) -> float:
    latencies.sort()
    rate = events / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"{name:<28} {rate:9.0f} events/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   ({elapsed:.1f} s)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    schema = None
    if args.sqlite:
        database_url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        schema = "bench_" + secrets.token_hex(4)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        database_url = f"{PG}?options=-csearch_path%3D{schema}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
        "OUTREACH_DATABASE_URL": database_url,
        "OUTREACH_SECRET_KEY": "bench-secret-" + "b" * 40,
        "OUTREACH_GRAPH_API_URL": "http://127.0.0.1:9",  # no Graph calls matter here
        "OUTREACH_INBOX_INTERVAL_SECONDS": os.environ.get("BENCH_INBOX_INTERVAL", "1.0"),
        "OUTREACH_LOG_LEVEL": "warning",
    }
    port, bare_port = free_port(), free_port()
    (tmp / "bare.py").write_text(BARE)
    bare = subprocess.Popen(
        [python, "-m", "uvicorn", "bare:app", "--port", str(bare_port), "--log-level", "warning"],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(tmp)},
    )
    server = subprocess.Popen(
        [python, "-m", "orchestrator", "serve", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", server)
        wait_ready(f"http://127.0.0.1:{bare_port}/", bare)
        key = run_setup(python, env, tmp)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        httpx.post(
            f"{base}/v1/messenger-apps",
            headers=headers,
            json={"app_id": APP_ID, "app_secret": SECRET, "verify_token": "bench-verify"},
        ).raise_for_status()
        httpx.post(
            f"{base}/v1/pages",
            headers=headers,
            json={
                "page_id": PAGE_ID,
                "app_id": APP_ID,
                "username": "bench",
                "access_token": "EAAB-bench",
            },
        ).raise_for_status()
        engine = "SQLite" if args.sqlite else "PostgreSQL"
        print(
            f"{args.events} events, {args.concurrency} in flight, {engine}, {os.cpu_count()} cores"
        )
        asyncio.run(blast(f"http://127.0.0.1:{bare_port}", 500, args.concurrency, "warm"))
        bare_elapsed, bare_lat = asyncio.run(
            blast(f"http://127.0.0.1:{bare_port}", args.events, args.concurrency, "bare")
        )
        bare_rate = report("bare signature check", args.events, bare_elapsed, bare_lat)
        started = time.perf_counter()
        elapsed, latencies = asyncio.run(blast(base, args.events, args.concurrency, "ours"))
        rate = report("outreach webhook (inbox)", args.events, elapsed, latencies)
        print(f"ratio to bare: {rate / bare_rate:.2f}  (target >= 0.5)")
        applied_after = wait_applied(database_url, schema, args.events)
        print(
            f"all {args.events} applied {applied_after - (started + elapsed) + elapsed:.1f} s after the first post"
            f" ({time.perf_counter() - started - elapsed:.1f} s after the last ack)"
        )
    finally:
        server.terminate()
        bare.terminate()
        server.wait(timeout=20)
        bare.wait(timeout=20)
        if schema:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


def run_setup(python: str, env: dict[str, str], cwd: Path) -> str:
    subprocess.run(
        [python, "-m", "orchestrator", "workspace", "create", "bench"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [python, "-m", "orchestrator", "apikey", "create", "bench"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def wait_applied(database_url: str, schema: str | None, events: int) -> float:
    query = "SELECT count(*) FROM webhook_inbox WHERE status = 'pending'"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if schema:
            with psycopg.connect(PG) as conn:
                conn.execute(f"SET search_path TO {schema}")  # type: ignore[arg-type]
                pending = conn.execute(query).fetchone()[0]  # type: ignore[index]
        else:
            import sqlite3

            with sqlite3.connect(database_url.split("///", 1)[1]) as conn:
                pending = conn.execute(query).fetchone()[0]
        if pending == 0:
            return time.perf_counter()
        time.sleep(0.2)
    raise SystemExit("events were not all applied within 10 minutes")


if __name__ == "__main__":
    main()
