#!/usr/bin/env python3
"""Copy a whole orchestrator SQLite database into an empty, migrated PostgreSQL database.

    OUTREACH_DATABASE_URL=postgresql://outreach@db/outreach OUTREACH_SECRET_KEY=... outreach migrate
    python deploy/sqlite_to_postgres.py --from sqlite:///./outreach.db \\
        --to postgresql://outreach@db/outreach

Run it with the Python that has the orchestrator installed (its models describe the tables), after
stopping every `outreach serve` and `outreach worker`: rows written after the copy starts are not
copied. The steps, in the order deploy/README.md gives them, are there for a reason:

- Both databases must be at the migration head of the installed code, and hold exactly the tables
  and columns of the models; otherwise a column the models do not know would be left behind.
- Every target table must be empty (`outreach migrate` creates none of the rows; `outreach serve`
  would create a workspace, so do not start the server on the new database before the copy).
- Tables are copied parents first (the foreign-key order of the models' metadata), each streamed
  through SQLAlchemy Core in batches, all inside one PostgreSQL transaction that commits only when
  every table's row count equals the source's: a failure leaves the target empty.
- Times stay timezone-aware UTC (SQLite holds naive UTC; PostgreSQL gets timestamptz). JSON columns
  travel as their stored text, so SQL NULL stays NULL and a JSON `null` stays JSON `null`.
- PostgreSQL enforces the declared text lengths that SQLite ignores; a longer value stops the copy
  with the table, column and row named, before anything is committed.

A SQLite database whose secret key was generated (`outreach.db.secret-key` beside it) needs that
same key as OUTREACH_SECRET_KEY on PostgreSQL: it decrypts the stored Page tokens and app secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

import orchestrator.models  # noqa: F401  (registers every table on SQLModel.metadata)
from orchestrator import migrate
from orchestrator.db import create_engine
from orchestrator.settings import Settings

DEFAULT_BATCH_SIZE: Final = 1000
_ALEMBIC_TABLE: Final = "alembic_version"


class CopyError(Exception):
    """The copy cannot start or did not verify; nothing was committed to the target."""


def _settings(url: str) -> Settings:
    # The application's own URL rules (postgresql:// means psycopg 3, sqlite:// means aiosqlite).
    return Settings(_env_file=None, database_url=url)


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON)


def source_select(table: sa.Table) -> sa.Select[Any]:
    """Every row in primary-key order; JSON columns as their stored text."""
    columns = [
        sa.type_coerce(column, sa.Text).label(column.name) if _is_json(column) else column
        for column in table.columns
    ]
    return sa.select(*columns).order_by(*table.primary_key.columns)


def target_insert(table: sa.Table) -> sa.Insert:
    """An INSERT of every column from parameters named `p_<column>`; JSON text is cast to jsonb
    by PostgreSQL (a NULL parameter stays SQL NULL)."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if _is_json(column):
            values[column.name] = sa.cast(
                sa.bindparam(f"p_{column.name}", type_=sa.Text), postgresql.JSONB
            )
        else:
            values[column.name] = sa.bindparam(f"p_{column.name}", type_=column.type)
    return sa.insert(table).values(values)


Lengths = dict[str, dict[str, int]]
"""Per table, the declared length of each length-limited text column."""


def target_parameters(
    table: sa.Table, rows: Sequence[sa.Row[Any]], lengths: dict[str, int]
) -> list[dict[str, Any]]:
    """The rows as `p_<column>` parameters, refusing a text longer than the target allows."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        mapping = row._mapping
        for name, limit in lengths.items():
            value = mapping[name]
            if isinstance(value, str) and len(value) > limit:
                key = {c.name: mapping[c.name] for c in table.primary_key.columns}
                raise CopyError(
                    f"{table.name}.{name} of the row {key} has {len(value)} characters; "
                    f"PostgreSQL allows {limit}. Shorten it in the SQLite database and run again."
                )
        batch.append({f"p_{name}": mapping[name] for name in mapping})
    return batch


async def _count(conn: AsyncConnection, table: sa.Table) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def check_schema(
    conn: AsyncConnection, tables: Sequence[sa.Table], *, name: str, url: str
) -> Lengths:
    """The database is at this code's migration head and holds exactly the models' tables and
    columns; returns the text lengths its schema declares (the migrations', which SQLite ignores
    and PostgreSQL enforces)."""
    revision = await conn.run_sync(
        lambda sync: MigrationContext.configure(sync).get_current_revision()
    )
    head = migrate.head_revision()
    if revision != head:
        raise CopyError(
            f"the {name} database is at migration {revision}, this code at {head}: run "
            f"`outreach migrate` with OUTREACH_DATABASE_URL={url} first"
        )

    def reflect(sync: sa.Connection) -> dict[str, dict[str, int | None]]:
        inspector = sa.inspect(sync)
        return {
            table: {
                column["name"]: getattr(column["type"], "length", None)
                for column in inspector.get_columns(table)
            }
            for table in inspector.get_table_names()
            if table != _ALEMBIC_TABLE
        }

    reflected = await conn.run_sync(reflect)
    found = {table: set(columns) for table, columns in reflected.items()}
    expected = {table.name: {column.name for column in table.columns} for table in tables}
    if found != expected:
        differences = sorted(
            f"{table}: {sorted(found.get(table, set()) ^ expected.get(table, set())) or 'missing'}"
            for table in found.keys() | expected.keys()
            if found.get(table) != expected.get(table)
        )
        raise CopyError(
            f"the {name} database's tables differ from the models: {'; '.join(differences)}"
        )
    return {
        table: {column: length for column, length in columns.items() if length is not None}
        for table, columns in reflected.items()
    }


async def _check_target(conn: AsyncConnection, tables: Sequence[sa.Table]) -> None:
    not_empty = [table.name for table in tables if await _count(conn, table) > 0]
    if not_empty:
        raise CopyError(
            "the PostgreSQL database already holds rows in "
            f"{', '.join(not_empty)}; copy only into a freshly migrated database"
        )
    # Ids are strings and composite keys; a serial column would need its sequence moved past the
    # copied values, which this script does not do.
    sequences = (
        await conn.execute(
            sa.text(
                "SELECT count(*) FROM information_schema.sequences "
                "WHERE sequence_schema = current_schema()"
            )
        )
    ).scalar_one()
    if sequences:
        raise CopyError("the schema has sequences; this script does not advance them")


async def copy_table(
    source: AsyncConnection,
    target: AsyncConnection,
    table: sa.Table,
    *,
    lengths: dict[str, int],
    batch_size: int,
) -> int:
    insert = target_insert(table)
    result = await source.stream(source_select(table).execution_options(yield_per=batch_size))
    copied = 0
    async for rows in result.partitions(batch_size):
        await target.execute(insert, target_parameters(table, rows, lengths))
        copied += len(rows)
    return copied


async def copy_engines(
    source: AsyncEngine,
    target: AsyncEngine,
    *,
    source_url: str,
    target_url: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report: Callable[[str], None] = print,
) -> dict[str, int]:
    """Copy every table of the models; returns the rows per table, equal on both sides."""
    if source.dialect.name != "sqlite" or target.dialect.name != "postgresql":
        raise CopyError("copy from a sqlite:// database to a postgresql:// one")
    tables = list(SQLModel.metadata.sorted_tables)
    # One source transaction: a single snapshot, and on SQLite (BEGIN IMMEDIATE, orchestrator.db)
    # it holds the write lock, so nothing changes the source while it is read.
    async with source.connect() as src, src.begin(), target.connect() as dst:
        await check_schema(src, tables, name="SQLite", url=source_url)
        lengths = await check_schema(dst, tables, name="PostgreSQL", url=target_url)
        await dst.commit()  # the checks' implicit transaction; the copy gets its own below
        async with dst.begin():
            await _check_target(dst, tables)
            copied: dict[str, int] = {}
            for table in tables:
                started = time.monotonic()
                copied[table.name] = await copy_table(
                    src, dst, table, lengths=lengths[table.name], batch_size=batch_size
                )
                report(
                    f"{table.name}: {copied[table.name]} rows ({time.monotonic() - started:.1f} s)"
                )
            mismatched = []
            for table in tables:
                in_source = await _count(src, table)
                in_target = await _count(dst, table)
                if not in_source == in_target == copied[table.name]:
                    mismatched.append(
                        f"{table.name}: {in_source} in SQLite, {in_target} in PostgreSQL"
                    )
            if mismatched:
                raise CopyError("row counts differ: " + "; ".join(mismatched))
    report(f"copied {sum(copied.values())} rows in {len(tables)} tables; every count matches")
    return copied


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report: Callable[[str], None] = print,
) -> dict[str, int]:
    source_settings = _settings(source_url)
    target_settings = _settings(target_url)
    path = source_settings.sqlite_path
    if not source_settings.is_sqlite or path is None:
        raise CopyError(f"--from must name a SQLite database file, not {source_url}")
    if not path.is_file():
        # SQLite would create an empty database there instead of failing.
        raise CopyError(f"no SQLite database at {path}")
    if target_settings.is_sqlite:
        raise CopyError(f"--to must be a postgresql:// URL, not {target_url}")
    source = create_engine(source_settings)
    target = create_engine(target_settings, pool_size=1)
    try:
        copied = await copy_engines(
            source,
            target,
            source_url=source_url,
            # Shown in messages: never the password.
            target_url=sa.make_url(target_url).render_as_string(hide_password=True),
            batch_size=batch_size,
            report=report,
        )
    finally:
        await source.dispose()
        await target.dispose()
    key_file = path.with_name(path.name + ".secret-key")
    if key_file.exists():
        report(
            f"this database's secret key was generated: set OUTREACH_SECRET_KEY to the contents "
            f"of {key_file} wherever the orchestrator now runs on PostgreSQL"
        )
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--from", dest="source", required=True, help="sqlite:///path/to/file.db")
    parser.add_argument(
        "--to", dest="target", required=True, help="postgresql://user@host:port/database"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per INSERT batch (default {DEFAULT_BATCH_SIZE})",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        asyncio.run(copy_database(args.source, args.target, batch_size=args.batch_size))
    except CopyError as exc:
        print(f"error: {exc}; nothing was written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
