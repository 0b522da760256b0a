"""deploy/sqlite_to_postgres.py on a real SQLite file and a fresh, migrated PostgreSQL schema.

The SQLite database is filled through the models' own metadata: every table gets rows that honour
its foreign keys and checks, with the values a copy most easily gets wrong (aware times given in
another zone, microseconds, SQL NULL beside JSON null, bytes that are not UTF-8, Vietnamese text).
After the copy every row of every table must read back the same from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import orchestrator.models
from orchestrator import migrate
from orchestrator.db import create_engine
from tests.fixtures.database import create_pg_schema, drop_pg_schema, make_settings, table_count

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "sqlite_to_postgres.py"
ROWS = 7
BATCH = 3  # smaller than ROWS: every table crosses batch boundaries
T0 = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)
HANOI = timezone(timedelta(hours=7))


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqlite_to_postgres", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def allowed_values(table: sa.Table) -> dict[str, list[str]]:
    """The `column IN ('a', 'b')` checks of a table, as the values each column may hold."""
    choices: dict[str, list[str]] = {}
    for constraint in table.constraints:
        if isinstance(constraint, sa.CheckConstraint):
            match = re.fullmatch(r"(\w+) IN \((.*)\)", str(constraint.sqltext))
            if match:
                choices[match[1]] = re.findall(r"'([^']*)'", match[2])
    return choices


def value_for(column: sa.Column[Any], i: int, length: int | None) -> Any:
    kind = column.type
    nullable = column.nullable and not column.primary_key
    if isinstance(kind, sa.JSON):
        # Row 1: SQL NULL where allowed; row 2: JSON null; the others: a document.
        if i == 1 and nullable:
            return sa.null()
        if i == 2:
            return None
        return {"tên": "Áo dài hồng", "n": i, "list": [1, None, True, "ư"], "nested": {"a": []}}
    if nullable and i == 1:
        return None
    if isinstance(kind, orchestrator.db.UTCDateTime):
        moment = T0 + timedelta(days=i, microseconds=i)
        return moment.astimezone(HANOI) if i % 2 else moment
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.BigInteger):
        return 2**40 + i
    if isinstance(kind, sa.Integer):
        return i + 1
    if isinstance(kind, sa.LargeBinary):
        return bytes([0, 255, i]) + "ư\n".encode()
    if length is not None:
        return f"{i}-{column.table.name}.{column.name}-ư"[:length]
    return f"{i} Chào {column.table.name}.{column.name}: 'quote' \"dq\" \\ 🙂\nline two"


def synthetic_rows(
    table: sa.Table, written: dict[str, list[dict[str, Any]]], lengths: dict[str, int | None]
) -> list[dict[str, Any]]:
    choices = allowed_values(table)
    rows = []
    for i in range(ROWS):
        row: dict[str, Any] = {}
        for column in table.columns:
            foreign = next(iter(column.foreign_keys), None)
            if foreign is not None:
                parents = written[foreign.column.table.name]
                row[column.name] = parents[i % len(parents)][foreign.column.name]
            elif column.name in choices:
                row[column.name] = choices[column.name][i % len(choices[column.name])]
            else:
                row[column.name] = value_for(column, i, lengths[column.name])
        rows.append(row)
    return rows


def declared_lengths(sync: sa.Connection) -> dict[str, dict[str, int | None]]:
    """varchar(n) as the migrations declared it (the models do not always say)."""
    inspector = sa.inspect(sync)
    return {
        table: {c["name"]: getattr(c["type"], "length", None) for c in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


async def fill(engine: AsyncEngine) -> None:
    written: dict[str, list[dict[str, Any]]] = {}
    async with engine.begin() as conn:
        lengths = await conn.run_sync(declared_lengths)
        for table in SQLModel.metadata.sorted_tables:
            rows = synthetic_rows(table, written, lengths[table.name])
            for row in rows:  # one by one: sa.null() is a value only in single executes
                await conn.execute(table.insert().values(row))
            written[table.name] = rows


def json_text(column: sa.Column[Any], dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.cast(column, sa.Text).label(column.name)
    return sa.type_coerce(column, sa.Text).label(column.name)


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table; JSON as (is SQL NULL, parsed value), sorted in Python because the
    two engines collate strings differently."""
    dialect = engine.dialect.name
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            columns = [
                json_text(c, dialect) if isinstance(c.type, sa.JSON) else c for c in table.columns
            ]
            result = await conn.execute(sa.select(*columns))
            rows = []
            for row in result:
                rows.append(
                    tuple(
                        (value is None, None if value is None else json.loads(value))
                        if isinstance(column.type, sa.JSON)
                        else value
                        for column, value in zip(table.columns, row, strict=True)
                    )
                )
            tables[table.name] = sorted(rows, key=repr)
    return tables


@pytest.fixture
async def sqlite_source(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outreach.db'}"
    engine = create_engine(make_settings(url))
    await migrate.upgrade(engine)
    await fill(engine)
    await engine.dispose()
    return url


@pytest.fixture
async def pg_target() -> AsyncIterator[str]:
    schema, url = create_pg_schema()
    engine = create_engine(make_settings(url), pool_size=1)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    drop_pg_schema(schema)


async def run_script(*args: str) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_copy_reproduces_every_row_of_every_table(
    sqlite_source: str, pg_target: str
) -> None:
    source = create_engine(make_settings(sqlite_source))
    target = create_engine(make_settings(pg_target), pool_size=1)
    try:
        before = await snapshot(source)
        assert all(len(rows) == ROWS for rows in before.values())
        # The source really holds both kinds of null in a nullable JSON column.
        async with source.connect() as conn:
            nulls = (
                await conn.execute(
                    sa.text(
                        "SELECT sum(last_error IS NULL), sum(last_error = 'null') FROM deliveries"
                    )
                )
            ).one()
        assert tuple(nulls) == (1, 1)

        code, out, err = await run_script(
            "--from", sqlite_source, "--to", pg_target, "--batch-size", str(BATCH)
        )
        assert code == 0, err
        tables = SQLModel.metadata.sorted_tables
        assert f"copied {ROWS * len(tables)} rows in {len(tables)} tables" in out
        # Parents before children: every table's line comes after those it refers to.
        order = [line.split(":")[0] for line in out.splitlines()[: len(tables)]]
        for table in tables:
            for foreign in table.foreign_keys:
                assert order.index(foreign.column.table.name) < order.index(table.name)

        after = await snapshot(target)
        assert after == before
        async with target.connect() as conn:
            # Stored as UTC instants: 09:30:15.123456 UTC, whatever zone it was given in.
            stored = (
                await conn.execute(
                    sa.text("SELECT min(created_at) AT TIME ZONE 'UTC' FROM workspaces")
                )
            ).scalar_one()
        assert stored == T0.replace(tzinfo=None)

        # A second run finds the target full and changes nothing.
        code, _, err = await run_script("--from", sqlite_source, "--to", pg_target)
        assert code == 1
        assert "already holds rows in" in err
        assert await snapshot(target) == before
    finally:
        await source.dispose()
        await target.dispose()


async def test_a_value_too_long_for_postgresql_stops_the_copy_and_leaves_the_target_empty(
    sqlite_source: str, pg_target: str
) -> None:
    source = create_engine(make_settings(sqlite_source))
    target = create_engine(make_settings(pg_target), pool_size=1)
    script = load_script()
    try:
        async with source.begin() as conn:
            # SQLite stores it; PostgreSQL's varchar(200) would refuse it.
            await conn.execute(sa.text("UPDATE workspaces SET from_name = :v"), {"v": "x" * 201})
        with pytest.raises(script.CopyError, match=r"workspaces\.from_name .* 201 characters"):
            await script.copy_database(
                sqlite_source, pg_target, batch_size=BATCH, report=lambda _: None
            )
        async with target.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                assert await table_count(conn, table.name) == 0, table.name
    finally:
        await source.dispose()
        await target.dispose()


async def test_the_copy_refuses_an_unmigrated_target_and_a_missing_source(
    tmp_path: Path, sqlite_source: str
) -> None:
    script = load_script()
    schema, url = create_pg_schema()
    try:
        with pytest.raises(script.CopyError, match=r"at migration None.*run `outreach migrate`"):
            await script.copy_database(sqlite_source, url, report=lambda _: None)
    finally:
        drop_pg_schema(schema)
    missing = tmp_path / "nothing-here.db"
    with pytest.raises(script.CopyError, match="no SQLite database"):
        await script.copy_database(f"sqlite:///{missing}", url, report=lambda _: None)
    assert not missing.exists()
