"""Processing imports in this process right after their upload, as asyncio tasks.

The scheduler job (`imports.process`) is the safety net: it resumes whatever a task did not
finish (a restart, a crash); the lease keeps the two from processing one import together.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.imports.processing import process_import
from orchestrator.resources import Resources

log = logging.getLogger(__name__)


class ImportRunner:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, resources: Resources, import_id: str) -> None:
        task = asyncio.create_task(self._run(resources, import_id), name=f"import {import_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(resources: Resources, import_id: str) -> None:
        try:
            await process_import(
                resources.sessions, resources.keyring, resources.clock, import_id=import_id
            )
        except Exception:
            log.exception(
                "import processing failed; the scheduler resumes it", extra={"import_id": import_id}
            )

    async def drain(self) -> None:
        """Wait for every started import (tests wait here instead of sleeping)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
