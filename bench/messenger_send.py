"""Benchmark: MessengerClient sends through the Graph API emulator on loopback. Not a test.

    .venv/bin/python bench/messenger_send.py [--sends 20000] [--latencies 0,0.1]

For each emulator latency, one emulator process (uvicorn, access log off) serves two Pages whose
people all have open windows. Three runs share it, each of `--sends` messages:
  1. MessengerClient + SlidingWindowLimiter(300/s), one Page;
  2. the same, two Pages (sends interleaved);
  3. a bare httpx loop posting the same bodies to one Page with the same concurrency, no limiter
     and no retry (the emulator answers 613 to what exceeds 300/s: those are counted).
Printed per run: messages/s, p50/p99 of the send call and of the HTTP exchange, 613 answers, and
the highest count per Page in any one-second window, both as sent (client clock) and as received
(emulator clock). Targets: >= 280/s for one Page, never over 300 in a window, >= 2x for two Pages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from channels.messenger.client import MessengerClient, build_http_clients  # noqa: E402
from channels.messenger.payloads import (  # noqa: E402
    MessagingType,
    Recipient,
    build_send_request,
    quick_reply,
    text_message,
)
from channels.messenger.ratelimit import SlidingWindowLimiter  # noqa: E402
from channels.messenger.retry import RetryPolicy  # noqa: E402

VERSION = "v25.0"
PAGES = ("104000000000001", "104000000000002")
PEOPLE_PER_PAGE = 100
RATE = 300


def token_for(page_id: str) -> str:
    return f"bench-token-{page_id}"


# --- the emulator process ----------------------------------------------------------------------


def serve(port: int) -> None:
    """Child process: the emulator behind a tiny recorder of Send API arrivals per Page."""
    import uvicorn

    from channels.sandbox import AfterSend, GraphEmulator

    # No webhook receiver here: building echo and delivery events for nobody only takes CPU from
    # the one emulator process that shares the 2 cores with the client being measured.
    emulator = GraphEmulator(
        send_rate_per_second=RATE, after_send=AfterSend(echo=False, delivery=False)
    )
    inner = emulator.app
    arrivals: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/_bench/stats":
            body = json.dumps({"arrivals": arrivals, "statuses": statuses}).encode()
            arrivals.clear()
            statuses.clear()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        if path.endswith("/messages"):
            page_id = path.strip("/").split("/")[-2]
            arrivals.setdefault(page_id, []).append(time.monotonic())

            async def counting(message: Any) -> None:
                if message["type"] == "http.response.start":
                    key = str(message["status"])
                    statuses[key] = statuses.get(key, 0) + 1
                await send(message)

            await inner(scope, receive, counting)
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_emulator(
    latency: float,
) -> tuple[asyncio.subprocess.Process, str, dict[str, list[str]]]:
    port = free_port()
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
        opened = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        people: dict[str, list[str]] = {}
        for page_id in PAGES:
            page = {
                "page_id": page_id,
                "username": f"bench.{page_id}",
                "access_token": token_for(page_id),
                "app_id": "1000000000000001",
                "app_secret": "bench-secret",
            }
            (await control.post("/_emulator/pages", json=page)).raise_for_status()
            people[page_id] = []
            for _ in range(PEOPLE_PER_PAGE):
                answer = await control.post(
                    "/_emulator/people",
                    json={
                        "page_id": page_id,
                        "window_opened_at": opened,
                        "last_message_at": opened,
                    },
                )
                answer.raise_for_status()
                people[page_id].append(answer.json()["psid"])
        if latency > 0:
            fault = {"kind": "delay", "seconds": latency, "forever": True, "endpoint": "messages"}
            (await control.post("/_emulator/faults", json=fault)).raise_for_status()
    return process, base, people


async def emulator_stats(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as control:
        answer = await control.get("/_bench/stats")
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    in_flight: int
    call_seconds: list[float] = field(default_factory=list)
    http_seconds: list[float] = field(default_factory=list)
    sent_at: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    wall: float = 0.0


def busiest_window(times: Sequence[float], period: float = 1.0) -> int:
    ordered = sorted(times)
    return max(
        (bisect_left(ordered, start + period) - index for index, start in enumerate(ordered)),
        default=0,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class RecordingLimiter(SlidingWindowLimiter):
    """Notes the instant of every grant, per Page: what the client put on the wire, and when."""

    def __init__(self, run: Run) -> None:
        super().__init__(RATE)
        self.run = run

    async def acquire(self, key: str) -> None:
        await super().acquire(key)
        self.run.sent_at.setdefault(key, []).append(time.monotonic())


def hooked_clients(
    run: Run, in_flight: int, *, record_sends: bool
) -> tuple[httpx.AsyncClient, ...]:
    lanes = build_http_clients(max_in_flight=in_flight)

    async def on_request(request: httpx.Request) -> None:
        request.extensions["bench_start"] = time.monotonic()
        if record_sends:
            page_id = request.url.path.strip("/").split("/")[-2]
            run.sent_at.setdefault(page_id, []).append(request.extensions["bench_start"])

    async def on_response(response: httpx.Response) -> None:
        started = response.request.extensions.get("bench_start")
        if started is not None:
            run.http_seconds.append(time.monotonic() - started)

    for lane in lanes:
        lane.event_hooks = {"request": [on_request], "response": [on_response]}
    return lanes


def jobs(
    people: dict[str, list[str]], pages: Sequence[str], sends: int
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for index in range(sends):
        page_id = pages[index % len(pages)]
        psid = people[page_id][(index // len(pages)) % len(people[page_id])]
        message = text_message(
            f"Chào bạn, tin số {index}: lịch hẹn đã được xác nhận.",
            quick_replies=[quick_reply("Đồng ý", "YES"), quick_reply("Đổi lịch", "MOVE")],
        )
        body = build_send_request(
            Recipient.psid(psid),
            message,
            messaging_type=MessagingType.UPDATE,
            metadata=f"dlv_{index}",
        )
        out.append((page_id, body))
    return out


async def run_client(
    base: str, work: list[tuple[str, dict[str, Any]]], in_flight: int, name: str
) -> Run:
    run = Run(name, in_flight)
    lanes = hooked_clients(run, in_flight, record_sends=False)
    client = MessengerClient(
        lanes,
        graph_api_url=base,
        max_in_flight=in_flight,
        rate_limiter=RecordingLimiter(run),
        retry_policy=RetryPolicy(max_attempts=8),
    )
    queue = iter(work)

    async def worker() -> None:
        for page_id, body in queue:
            started = time.monotonic()
            try:
                await client.send(page_id, token_for(page_id), VERSION, body)
            except Exception:
                run.errors += 1
            run.call_seconds.append(time.monotonic() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.wall = time.monotonic() - began
    for lane in lanes:
        await lane.aclose()
    return run


async def run_bare(base: str, work: list[tuple[str, dict[str, Any]]], in_flight: int) -> Run:
    run = Run("bare httpx loop, 1 Page", in_flight)
    # The bare loop gets the same small-lane clients, one worker per connection.
    lanes = hooked_clients(run, in_flight, record_sends=True)
    queue = iter(work)

    async def worker(http: httpx.AsyncClient) -> None:
        for page_id, body in queue:
            started = time.monotonic()
            answer = await http.post(
                f"{base}/{VERSION}/{page_id}/messages",
                json=body,
                headers={"Authorization": f"Bearer {token_for(page_id)}"},
            )
            if answer.status_code != 200:
                run.errors += 1
            run.call_seconds.append(time.monotonic() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker(lanes[index % len(lanes)]) for index in range(in_flight)))
    run.wall = time.monotonic() - began
    for lane in lanes:
        await lane.aclose()
    return run


def report(run: Run, sends: int, stats: dict[str, Any]) -> None:
    arrivals: dict[str, list[float]] = stats["arrivals"]
    statuses: dict[str, int] = stats["statuses"]
    sent_windows = {page[-1]: busiest_window(times) for page, times in sorted(run.sent_at.items())}
    seen_windows = {page[-1]: busiest_window(times) for page, times in sorted(arrivals.items())}
    print(
        f"  {run.name:<34} in-flight {run.in_flight:>3}  {sends / run.wall:7.1f} msg/s  "
        f"call p50/p99 {percentile(run.call_seconds, 0.5) * 1000:6.1f}/"
        f"{percentile(run.call_seconds, 0.99) * 1000:6.1f} ms  "
        f"http p50/p99 {percentile(run.http_seconds, 0.5) * 1000:6.1f}/"
        f"{percentile(run.http_seconds, 0.99) * 1000:6.1f} ms"
    )
    print(
        f"  {'':<34} requests {sum(statuses.values()):>6}  answers {dict(sorted(statuses.items()))}  "
        f"failed sends {run.errors}  "
        f"max per Page in any 1 s: sent {sent_windows} received {seen_windows}"
    )


def in_flight_for(latency: float, pages: int) -> int:
    # Little's law: a Page's 300/s needs 300 x round trip in flight; +20 ms for server stalls,
    # +25 % headroom.
    per_page = max(15, math.ceil(RATE * (latency + 0.02) * 1.25))
    return per_page * pages


async def bench(sends: int, latencies: Sequence[float]) -> None:
    print(
        f"{sends} sends per run; emulator limit {RATE}/s per Page; python {sys.version.split()[0]}"
    )
    for latency in latencies:
        process, base, people = await start_emulator(latency)
        try:
            print(f"\nemulator latency {latency * 1000:.0f} ms ({base})")
            one, two = in_flight_for(latency, 1), in_flight_for(latency, 2)
            runs = [
                ("ours", "MessengerClient, 1 Page", [PAGES[0]], one),
                ("ours", "MessengerClient, 2 Pages", list(PAGES), two),
                ("bare", "", [PAGES[0]], one),
            ]
            for kind, name, pages, in_flight in runs:
                await asyncio.sleep(1.2)  # let the emulator's per-Page windows drain
                await emulator_stats(base)  # and start the arrivals from zero
                work = jobs(people, pages, sends)
                if kind == "ours":
                    run = await run_client(base, work, in_flight, name)
                else:
                    run = await run_bare(base, work, in_flight)
                report(run, sends, await emulator_stats(base))
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=10)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--latencies", default="0,0.1", help="emulator latencies in seconds")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    latencies = [float(item) for item in args.latencies.split(",") if item.strip()]
    asyncio.run(bench(args.sends, latencies))


if __name__ == "__main__":
    main()
