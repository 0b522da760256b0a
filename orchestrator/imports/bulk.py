"""Set-based statements over many rows, the fastest way each engine offers through Core.

PostgreSQL gets all rows as one JSON parameter: `INSERT ... SELECT FROM json_to_recordset(...)`
and `UPDATE ... FROM json_to_recordset(...)`, one statement and one round trip whatever the row
count. (psycopg's executemany sends one statement per row, and it serialises array parameters
element by element in Python; the json module's C encoder is several times faster.) Lookups use
`= ANY(array)`. SQLite gets executemany, which runs in the driver's C loop, and IN lists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator.db import UTCDateTime


def _is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def _pg_type(column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
    if isinstance(column.type, UTCDateTime):
        return postgresql.TIMESTAMP(timezone=True)
    if isinstance(column.type, sa.JSON):
        return postgresql.JSONB()
    if isinstance(column.type, sa.Boolean):
        return sa.Boolean()
    if isinstance(column.type, sa.Integer):
        return sa.BigInteger()
    return sa.Text()


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use orchestrator.clock")
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a bulk statement")


def _recordset(table: sa.Table, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> Any:
    document = json.dumps(
        [{name: row[name] for name in names} for row in rows],
        ensure_ascii=False,
        separators=(",", ":"),
        default=_json_value,
    )
    parameter = sa.cast(sa.bindparam(None, document, type_=sa.Text), postgresql.JSON)
    return (
        sa.func.json_to_recordset(parameter)
        .table_valued(*(sa.column(name, _pg_type(table.c[name])) for name in names))
        .render_derived(name="v", with_types=True)
    )


def matches(conn: AsyncConnection, column: sa.Column[Any], values: Sequence[Any]) -> Any:
    """`column IN values`, as one array parameter on PostgreSQL."""
    if _is_postgres(conn):
        return column == sa.func.any(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(_pg_type(column)))
        )
    return column.in_(list(values))


async def insert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts_on: list[str] | None = None,
) -> None:
    """Insert rows that all have the same keys; with `ignore_conflicts_on`, rows that would
    violate that unique key are skipped (ON CONFLICT DO NOTHING), otherwise they fail."""
    if not rows:
        return
    if _is_postgres(conn):
        names = list(rows[0])
        source = _recordset(table, names, rows)
        statement = postgresql.insert(table).from_select(
            names, sa.select(*(source.c[name] for name in names))
        )
        if ignore_conflicts_on:
            statement = statement.on_conflict_do_nothing(index_elements=ignore_conflicts_on)
        await conn.execute(statement)
        return
    if ignore_conflicts_on:
        lite = sqlite.insert(table).on_conflict_do_nothing(index_elements=ignore_conflicts_on)
        await conn.execute(lite, list(rows))
    else:
        await conn.execute(sa.insert(table), list(rows))


async def update_rows(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]], *, key: str = "id"
) -> None:
    """Set each row's other columns on the table row whose `key` matches."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if _is_postgres(conn):
        source = _recordset(table, [key, *names], rows)
        await conn.execute(
            sa.update(table)
            .where(table.c[key] == source.c[key])
            .values({name: source.c[name] for name in names})
        )
        return
    statement = (
        sa.update(table)
        .where(table.c[key] == sa.bindparam(f"k_{key}"))
        .values({name: sa.bindparam(f"k_{name}", type_=table.c[name].type) for name in names})
    )
    await conn.execute(
        statement, [{f"k_{name}": value for name, value in row.items()} for row in rows]
    )
