"""Stopping the embedded scheduler lets running jobs end before the engine can be disposed."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.resources import Resources
from orchestrator.scheduler import EmbeddedScheduler


async def test_stop_waits_for_a_running_job_and_starts_no_other(resources: Resources) -> None:
    scheduler = EmbeddedScheduler(resources, kind="worker")
    started = asyncio.Event()
    finished: list[datetime] = []
    runs = 0

    async def slow(session: AsyncSession, now: datetime) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(0.3)
        finished.append(now)

    scheduler.add_job("test.slow", slow, seconds=0.05)
    await scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    await scheduler.stop(grace_seconds=5)
    assert finished, "stop returned before the running job ended"
    assert not scheduler.running
    runs_at_stop = runs
    await asyncio.sleep(0.2)
    assert runs == runs_at_stop, "a job started after stop"


async def test_stop_cancels_a_job_that_overruns_the_grace_period(resources: Resources) -> None:
    scheduler = EmbeddedScheduler(resources, kind="worker")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(session: AsyncSession, now: datetime) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler.add_job("test.stuck", stuck, seconds=60)
    await scheduler.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    began = time.monotonic()
    await scheduler.stop(grace_seconds=0.2)
    assert cancelled.is_set()
    assert not scheduler.running
    assert time.monotonic() - began < 5
