"""Long-lived resources built once per process (STYLE.md rule 8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orchestrator.clock import Clock, SystemClock
from orchestrator.crypto import KeyRing
from orchestrator.db import create_engine, session_factory
from orchestrator.settings import Settings, resolve_secret_keys


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    clock: Clock
    owns_engine: bool = field(default=True)

    async def close(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()


def build_resources(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    clock: Clock | None = None,
) -> Resources:
    """Tests pass their own engine (and a session factory bound to a rolled-back connection)."""
    current, retired = resolve_secret_keys(settings)
    the_engine = engine or create_engine(settings)
    return Resources(
        settings=settings,
        engine=the_engine,
        sessions=sessions or session_factory(the_engine),
        keyring=KeyRing(current, retired),
        clock=clock or SystemClock(settings.clock_offset),
        owns_engine=engine is None,
    )
