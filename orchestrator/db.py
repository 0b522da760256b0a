"""The store: async engines for SQLite and PostgreSQL, column types, and the session boundary.

Services never commit; `transaction()` (used by the request dependency, the CLI and jobs) owns the
transaction: it commits when the block finishes and rolls back on any error, so a failed request
leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from orchestrator.settings import Settings


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines; SQLite has no zone, so naive values are refused
    on the way in and marked UTC on the way out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use orchestrator.clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _sqlite_pragmas(settings: Settings) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite/aiosqlite open an implicit transaction lazily and break SAVEPOINT; take over
        # BEGIN ourselves (SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers wait on busy_timeout instead of one
    # failing with "database is locked" when it upgrades a read transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: Settings, *, url: str | None = None, **kwargs: Any) -> AsyncEngine:
    target = url or settings.database_url
    if target.startswith("sqlite"):
        path = settings.sqlite_path if url is None else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            target,
            json_serializer=_json_dumps,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            **kwargs,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(settings))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(target, json_serializer=_json_dumps, **kwargs)


def _json_dumps(value: Any) -> str:
    # Keep Vietnamese text readable in the database instead of \u escapes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session, session.begin():
        yield session


def rows_affected(result: object) -> int:
    """Rows an UPDATE or DELETE matched. `execute` is typed as returning a plain `Result`, which
    has no `rowcount`; both drivers' cursor results do."""
    return int(getattr(result, "rowcount", 0) or 0)


def insert_ignoring_conflicts(
    session: AsyncSession, table: sa.Table, index_elements: list[str]
) -> Any:
    """`INSERT ... ON CONFLICT (cols) DO NOTHING` for the session's dialect (both support it)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
