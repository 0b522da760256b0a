"""Per-form outcome counters (`capture_counters`): `captured`, `duplicate`, `confirmed` and
`rejected.<reason>`. Accepted outcomes are counted in their own transaction; rejections come
from the in-memory tally (`guard.RejectionTally`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.capture.guard import RejectionTally
from orchestrator.models import CaptureCounter, table_of

CAPTURED = "captured"
DUPLICATE = "duplicate"
CONFIRMED = "confirmed"
REJECTED = "rejected."


async def bump_many(session: AsyncSession, counts: Mapping[tuple[str, str, str], int]) -> None:
    """Add to counters keyed by (workspace, form, outcome), creating them as needed."""
    if not counts:
        return
    table = table_of(CaptureCounter)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    statement = insert.on_conflict_do_update(
        index_elements=["form_id", "outcome"], set_={"count": table.c.count + insert.excluded.count}
    )
    # One statement per key, in a fixed order: concurrent flushes lock rows in the same order.
    for (workspace_id, form_id, outcome), count in sorted(counts.items()):
        await session.execute(
            statement.values(
                workspace_id=workspace_id, form_id=form_id, outcome=outcome, count=count
            )
        )


async def bump(session: AsyncSession, *, workspace_id: str, form_id: str, outcome: str) -> None:
    await bump_many(session, {(workspace_id, form_id, outcome): 1})


async def flush(session: AsyncSession, tally: RejectionTally, *, now: datetime) -> None:
    await bump_many(session, tally.drain(now))


async def read(session: AsyncSession, *, form_id: str) -> dict[str, int]:
    table = table_of(CaptureCounter)
    rows = await session.execute(
        sa.select(table.c.outcome, table.c.count).where(table.c.form_id == form_id)
    )
    return {outcome: int(count) for outcome, count in rows}
