"""Schema migrations (Alembic), callable from the CLI, the server start and the tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migrations found")
    return head


async def _run_command(engine: AsyncEngine, name: str, revision: str) -> None:
    # env.py would call asyncio.run() for plain Alembic use; from inside our event loop we hand it
    # a live synchronous connection instead (see migrations/env.py).
    def run(sync_conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_conn
        getattr(command, name)(config, revision)

    async with engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on the engine's database."""
    await _run_command(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run_command(engine, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


def upgrade_sync(engine: AsyncEngine, revision: str = "head") -> None:
    asyncio.run(upgrade(engine, revision))
