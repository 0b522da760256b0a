"""Benchmark: one 100,000-contact campaign on PostgreSQL sent by 1, 2 and 4 `outreach worker`
processes. Not a test.

    .venv/bin/python bench/scale_out.py                    # 100,000 contacts
    .venv/bin/python bench/scale_out.py --quick            # 5,000: a smoke run
    .venv/bin/python bench/scale_out.py --contacts 20000 --workers 1,2

The cluster is tests/scale_out/cluster.py's: per worker count, a fresh schema in the database
`test` at 127.0.0.1:5432 (OUTREACH_TEST_POSTGRES_URL), the Graph API emulator and an SMTP server
(aiosmtpd; each message's Message-ID is parsed and kept) in child processes of their own, and N
real worker processes (`python -m orchestrator worker`) with the production settings: 300
Send API calls per second per Page, 60 s leases, a 1 s dispatch interval, 2 rounds of 32.

Two Pages, each with its own workspace and campaign (bench/campaign.py's one-step campaign,
Messenger with an 11 KB fallback email): half of each Page's contacts have an open window
(Messenger), half only a subscribed address (`email.no_messenger`). The Messenger ceiling is
2 x 300 = 600/s; a Page's send lease (DESIGN section 8) lets one worker at a time send its
Messenger-possible rows, while rows that cannot go out on Messenger (no identity on the Page:
the email half) need no lease, so any worker sends them.

Printed per worker count: sends/s per channel (over each channel's first to last `sent_at`) and
overall (launch to the last row terminal, planning included), the most Send API calls of one
Page arriving at the emulator in any one-second window (must stay <= 300), refused calls, p99
due -> sent, duplicates (a delivery id received twice), peak RSS per worker (VmHWM), and CPU
seconds of the workers, the emulator and the SMTP server beside the machine's busy share, so a
run on a small machine says where the cores went. Ratios compare with the 1-worker run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
for entry in (str(ROOT), str(HERE.parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from tests.scale_out.cluster import (  # noqa: E402
    Cluster,
    ClusterConfig,
    percentile,
    running_cluster,
)

# bench/campaign.py (bench/ is not a package): its campaign and process CPU reading.
campaign_bench: Any = importlib.import_module("campaign")

PAGE_RATE = 300
STEP_HTML_KB = 11  # bench/campaign.py's default: a ~37 KB fallback email


@dataclass
class Run:
    workers: int
    contacts: int
    seconds: float = 0.0
    by_state: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    per_second: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float] = field(default_factory=dict)
    peak_page: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    duplicates: int = 0
    missing: int = 0
    rss_mb: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    claimers: int = 0  # workers seen holding claims (sampled once a second)
    unsent: list[dict[str, Any]] = field(default_factory=list)
    first_sent: float = 0.0  # seconds from launch to the first send (planning the first batch)

    @property
    def overall(self) -> float:
        return sum(self.sent.values()) / self.seconds if self.seconds else 0.0


def campaign(page_id: str) -> dict[str, Any]:
    body: dict[str, Any] = campaign_bench.campaign_body(
        page_id, {"email_status": [], "messenger": "any"}, STEP_HTML_KB
    )
    return body


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def postgres_cpu(
    cluster: Cluster, before: dict[int, float]
) -> tuple[float, dict[int, float]]:
    """CPU seconds the cluster's PostgreSQL backends used since `before` (pools keep their
    connections, so the backends live through the run; one closed meanwhile is missed)."""
    now = {pid: campaign_bench.proc_cpu(pid) for pid in await cluster.backend_pids()}
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items()), now


def cpu_of(cluster: Cluster) -> dict[str, float]:
    services = {"emulator": cluster.graph, "smtp": cluster.smtp}
    found = {
        name: campaign_bench.proc_cpu(service.process.pid)
        for name, service in services.items()
        if service is not None
    }
    for index, worker in enumerate(cluster.workers):
        found[f"worker {index}"] = campaign_bench.proc_cpu(worker.pid)
    return found


async def one_run(workers: int, contacts: int, within: float, logs: Path | None) -> Run:
    messenger = contacts // 4  # per Page: half of its half
    email = contacts // 2 - messenger
    config = ClusterConfig(
        pages=2,
        messenger_per_page=messenger,
        email_per_page=email,
        workers=workers,
        page_send_rate=PAGE_RATE,
        lease_seconds=60,
        dispatch_interval_seconds=1.0,
        campaign=campaign,
    )
    run = Run(workers, config.contacts)
    print(f"\n{workers} worker(s): seeding {config.contacts:,} contacts ...", flush=True)
    workdir = None
    if logs is not None:
        workdir = logs / f"workers-{workers}"
        workdir.mkdir(parents=True, exist_ok=True)
    async with running_cluster(config, workdir=workdir) as cluster:
        cpu_before = cpu_of(cluster)
        _, backends_before = await postgres_cpu(cluster, {})
        busy_before, total_before = machine_ticks()
        started = time.monotonic()
        launched = await cluster.launch()
        states = await cluster.wait_until_done(within=within, poll=1.0)
        run.seconds = time.monotonic() - started
        busy, total = machine_ticks()
        run.machine_busy = (busy - busy_before) / max(total - total_before, 1)
        cpu_after = cpu_of(cluster)
        run.cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
        run.cpu["postgres"], _ = await postgres_cpu(cluster, backends_before)
        run.by_state = dict(states)
        run.claimers = len(cluster.claimers_seen)
        run.unsent = await cluster.unsent()
        ledger = await cluster.ledger()
        spans = await cluster.sent_span()
        due = await cluster.due_to_sent()
        cluster.sample_rss()
        run.rss_mb = [worker.peak_rss_mb for worker in cluster.workers]
    received = ledger.received()
    run.duplicates = ledger.duplicates()
    run.missing = len(set(ledger.rows) - set(received))
    run.refused = sum(1 for row in ledger.messenger if row[3] != 200)
    run.peak_page = ledger.peak_per_page()
    for channel, values in due.items():
        run.sent[channel] = len(values)
        run.p99[channel] = percentile(values, 0.99)
        first, last = spans[channel]
        run.per_second[channel] = len(values) / max(last - first, 1e-9)
    run.first_sent = min(first for first, _last in spans.values()) - launched.timestamp()
    report_run(run)
    return run


def report_run(run: Run) -> None:
    channels = ", ".join(
        f"{channel} {run.sent[channel]:,} at {run.per_second[channel]:,.0f}/s "
        f"(p99 due->sent {run.p99[channel]:.1f} s)"
        for channel in sorted(run.sent)
    )
    print(f"  states {run.by_state}; {run.seconds:.1f} s from launch; {channels}")
    print(
        f"  peak Send API calls per Page in one second: {run.peak_page}; refused {run.refused}; "
        f"duplicates {run.duplicates}; never received {run.missing}; first send "
        f"{run.first_sent:.1f} s after launch; {run.claimers} of {run.workers} worker(s) seen "
        "holding claims"
    )
    for row in run.unsent:
        print(f"  not sent: {row}")
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.cpu.items())
    print(
        f"  CPU: {cpu}; machine {run.machine_busy:.0%} busy of {os.cpu_count()} cores; "
        f"peak RSS per worker {', '.join(f'{mb:.0f}' for mb in run.rss_mb)} MB",
        flush=True,
    )


def report(runs: list[Run]) -> bool:
    base = runs[0]
    print(
        f"\nscale-out, {base.contacts:,} contacts (half Messenger on 2 Pages at {PAGE_RATE}/s "
        f"each, half email), PostgreSQL; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'workers':>7} {'wall s':>7} {'all/s':>7} {'x base':>7} {'msgr/s':>7} {'email/s':>8} "
        f"{'p99 msgr':>9} {'p99 email':>9} {'peak/Page/s':>11} {'dup':>4} {'refused':>7} "
        f"{'RSS MB':>7} {'busy':>5}"
    )
    print(header)
    print("-" * len(header))
    passed = True
    for run in runs:
        peak = max(run.peak_page.values(), default=0)
        ok = (
            peak <= PAGE_RATE
            and run.duplicates == 0
            and run.missing == 0
            and run.by_state == {"sent": run.contacts}
        )
        passed = passed and ok
        print(
            f"{run.workers:>7} {run.seconds:>7.1f} {run.overall:>7,.0f} "
            f"{run.overall / max(base.overall, 1e-9):>7.2f} "
            f"{run.per_second.get('messenger', 0):>7,.0f} {run.per_second.get('email', 0):>8,.0f} "
            f"{run.p99.get('messenger', 0):>9.1f} {run.p99.get('email', 0):>9.1f} "
            f"{peak:>11} {run.duplicates:>4} {run.refused:>7} "
            f"{max(run.rss_mb, default=0):>7.0f} {run.machine_busy:>5.0%}"
            + ("" if ok else "  FAIL")
        )
    print(
        "checks: every delivery sent once (metadata / Message-ID), peak per Page <= "
        f"{PAGE_RATE} in any one-second window of the emulator's arrivals: "
        + ("PASS" if passed else "FAIL")
    )
    return passed


async def bench(args: argparse.Namespace) -> bool:
    runs = []
    for workers in args.workers:
        runs.append(await one_run(workers, args.contacts, args.max_seconds, args.keep_logs))
    return report(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 contacts: a smoke run")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, the first the baseline")
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="seconds one run may take to finish"
    )
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="keep the workers' and services' logs here"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.contacts = 5_000
    args.workers = [int(item) for item in args.workers.split(",") if item.strip()]
    sys.exit(0 if asyncio.run(bench(args)) else 1)


if __name__ == "__main__":
    main()
