"""The embedded scheduler: APScheduler 3.x interval jobs, each a few lines (DESIGN section 8).

What is due lives in the database, so any number of processes may run these jobs together.
Later issues register more jobs (claim due deliveries, apply the webhook inbox, ...).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import dispatch as dispatcher
from orchestrator import idempotency, inbound, send_budgets, sweeps
from orchestrator.campaigns import runs as campaign_runs
from orchestrator.capture import capture, inbox
from orchestrator.capture.guard import CaptureSettings
from orchestrator.db import rows_affected, transaction
from orchestrator.ids import new_id
from orchestrator.imports import processing as imports_processing
from orchestrator.logs import log_context
from orchestrator.models import WorkerHeartbeat, table_of
from orchestrator.resources import Resources
from orchestrator.send_budgets import Budget

log = logging.getLogger(__name__)

# How long one dispatch job keeps claiming full batches before it yields to the other jobs.
DISPATCH_BUDGET_SECONDS = 10.0

Job = Callable[[AsyncSession, datetime], Awaitable[None]]


@dataclass(frozen=True)
class WorkerIdentity:
    """Who this process is; it also names lease owners."""

    id: str
    hostname: str
    pid: int
    kind: str

    @classmethod
    def of_this_process(cls, kind: str) -> WorkerIdentity:
        return cls(new_id("wk"), socket.gethostname()[:200], os.getpid(), kind)


async def record_heartbeat(
    session: AsyncSession, *, worker: WorkerIdentity, now: datetime, forget_after: timedelta
) -> None:
    """Upsert this process's heartbeat and forget processes silent for `forget_after`."""
    table = table_of(WorkerHeartbeat)
    updated = await session.execute(
        sa.update(table).where(table.c.id == worker.id).values(seen_at=now)
    )
    if rows_affected(updated) == 0:
        await session.execute(
            sa.insert(table).values(
                id=worker.id,
                hostname=worker.hostname,
                pid=worker.pid,
                kind=worker.kind,
                started_at=now,
                seen_at=now,
            )
        )
    await session.execute(
        sa.delete(WorkerHeartbeat).where(col(WorkerHeartbeat.seen_at) < now - forget_after)
    )


class EmbeddedScheduler:
    """APScheduler's asyncio scheduler, knowing which of its jobs are running so that stopping
    lets them end.

    APScheduler's `shutdown(wait=False)` leaves running jobs to be cancelled when the loop
    closes, possibly inside a transaction after the engine was disposed; an aiosqlite
    connection left open then keeps its non-daemon thread alive and the process never exits
    (seen as a worker hanging on SIGTERM)."""

    def __init__(self, resources: Resources, *, kind: str, heartbeat_seconds: float = 10.0) -> None:
        self._resources = resources
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self.running: set[asyncio.Task[None]] = set()
        self.worker = WorkerIdentity.of_this_process(kind)
        self._heartbeat_seconds = heartbeat_seconds
        self.add_job("workers.heartbeat", self._heartbeat, seconds=heartbeat_seconds)

    async def _heartbeat(self, session: AsyncSession, now: datetime) -> None:
        await record_heartbeat(
            session,
            worker=self.worker,
            now=now,
            forget_after=timedelta(seconds=self._heartbeat_seconds * 30),
        )

    def add_job(self, name: str, job: Job, *, seconds: float) -> None:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                # The whole task, its transaction's end included.
                self.running.add(task)
                task.add_done_callback(self.running.discard)
            with log_context(job=name, worker_id=self.worker.id):
                try:
                    async with transaction(self._resources.sessions) as session:
                        await job(session, self._resources.clock.now())
                except Exception:
                    log.exception("job failed", extra={"job": name})

        self._scheduler.add_job(
            run,
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now().astimezone(),
        )

    async def start(self) -> None:
        self._scheduler.start()

    async def stop(self, *, grace_seconds: float = 15.0) -> None:
        """Start no more jobs, let the running ones finish (at most `grace_seconds`; an idle tick
        takes milliseconds, a dispatch round its budget), then cancel what is left and wait for
        its rollback, so the caller may dispose of the engine."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        deadline = time.monotonic() + grace_seconds
        while self.running and time.monotonic() < deadline:
            await asyncio.wait(set(self.running), timeout=deadline - time.monotonic())
        # Cancels the jobs still running (APScheduler's asyncio executor does), then waits for
        # their rollback.
        self._scheduler.shutdown(wait=False)
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace_seconds)


def register_jobs(scheduler: EmbeddedScheduler, resources: Resources) -> None:
    """The interval jobs every scheduler process runs (DESIGN section 8); each is thin."""
    settings = resources.settings

    async def apply_inbox(session: AsyncSession, now: datetime) -> None:
        await inbound.apply_pending(session, resources.keyring, now=now)

    async def expire_idempotency(session: AsyncSession, now: datetime) -> None:
        await idempotency.expire(session, now=now)

    async def dispatch(_session: AsyncSession, now: datetime) -> None:
        # The dispatcher opens its own short transactions around each provider call; full
        # batches mean more is due, so it keeps going within a budget (a tick missed meanwhile
        # is skipped) and then lets this process's other jobs have their turn.
        await dispatcher.dispatch_until_idle(
            resources.sessions,
            resources.keyring,
            resources.messenger,
            worker_id=scheduler.worker.id,
            clock=resources.clock.now,
            settings=dispatcher.DispatchSettings(
                lease=timedelta(seconds=settings.lease_seconds),
                takeover_quiet=timedelta(seconds=settings.takeover_quiet_seconds),
                concurrency=settings.dispatch_concurrency,
                max_attempts=settings.retry_max_attempts,
                backoff_base=timedelta(seconds=settings.retry_base_seconds),
                backoff_cap=timedelta(seconds=settings.retry_cap_seconds),
                email=dispatcher.EmailSettings(
                    public_url=settings.public_url,
                    default_from=settings.email_from,
                    unsubscribe_mailto=settings.unsubscribe_mailto,
                    relay_key=f"smtp:{settings.smtp_host}:{settings.smtp_port}",
                    relay_budget=(
                        None
                        if settings.smtp_max_per_second is None
                        else Budget.per_second(settings.smtp_max_per_second)
                    ),
                ),
                budgets=resources.send_budgets,
            ),
            email=resources.email,
            rounds=settings.dispatch_rounds,
            budget=DISPATCH_BUDGET_SECONDS,
        )

    async def process_imports(_session: AsyncSession, _now: datetime) -> None:
        # Imports commit batch by batch in their own transactions (and read the clock per batch).
        await imports_processing.process_pending(
            resources.sessions, resources.keyring, resources.clock
        )

    async def start_runs(session: AsyncSession, now: datetime) -> None:
        await campaign_runs.start_due_runs(session, now=now)

    async def plan_runs(_session: AsyncSession, _now: datetime) -> None:
        # Planning commits batch by batch in its own transactions.
        await campaign_runs.plan_pending_runs(resources.sessions, clock=resources.clock.now)

    async def complete_runs(session: AsyncSession, now: datetime) -> None:
        await campaign_runs.complete_finished(session, now=now)

    async def expire_holds(session: AsyncSession, now: datetime) -> None:
        await sweeps.expire_holds(session, now=now)

    async def expire_tokens(session: AsyncSession, now: datetime) -> None:
        await sweeps.expire_tokens(session, now=now)

    async def forget_send_budgets(session: AsyncSession, _now: datetime) -> None:
        # Budget windows are wall-clock seconds, not the application clock (send_budgets).
        await send_budgets.forget_idle(session, epoch_seconds=time.time())

    async def forget_capture_tokens(session: AsyncSession, now: datetime) -> None:
        await capture.forget_used_tokens(session, now=now)

    async def apply_captures(_session: AsyncSession, _now: datetime) -> None:
        # Batches commit in their own transactions, each capture at its own time.
        await inbox.apply_until_idle(
            resources.sessions,
            resources.keyring,
            settings=CaptureSettings.of(settings),
            budget=DISPATCH_BUDGET_SECONDS,
        )

    scheduler.add_job("capture.apply", apply_captures, seconds=settings.inbox_interval_seconds)
    scheduler.add_job("capture.forget_tokens", forget_capture_tokens, seconds=3600)
    scheduler.add_job("deliveries.expire_holds", expire_holds, seconds=30)
    scheduler.add_job("tokens.expire", expire_tokens, seconds=3600)
    scheduler.add_job("send_budgets.forget", forget_send_budgets, seconds=3600)
    scheduler.add_job(
        "campaigns.start_runs", start_runs, seconds=settings.dispatch_interval_seconds
    )
    scheduler.add_job("campaigns.plan_runs", plan_runs, seconds=settings.dispatch_interval_seconds)
    scheduler.add_job("campaigns.complete", complete_runs, seconds=5)
    scheduler.add_job("webhooks.apply", apply_inbox, seconds=settings.inbox_interval_seconds)
    scheduler.add_job("deliveries.dispatch", dispatch, seconds=settings.dispatch_interval_seconds)
    scheduler.add_job("idempotency.expire", expire_idempotency, seconds=3600)
    scheduler.add_job("imports.process", process_imports, seconds=5)
