"""Claims by several workers at once on PostgreSQL (DESIGN section 8): never two due rows of
one contact, never one row twice. Real connections, claimers running at the same time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orchestrator import migrate
from orchestrator.db import session_factory, transaction
from orchestrator.dispatch import claim_due
from orchestrator.ids import new_id
from orchestrator.models import Contact, Delivery, Workspace, table_of
from tests.fixtures.api import T0

CONTACTS = 150
ROWS_PER_CONTACT = 3
CLAIMERS = 6


@pytest.fixture
async def engine(fresh_pg_schema: tuple[str, str]) -> AsyncIterator[AsyncEngine]:
    _schema, url = fresh_pg_schema
    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=CLAIMERS + 2
    )
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


async def test_concurrent_claims_never_take_two_rows_of_one_contact(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(
            sa.insert(table_of(Workspace)).values(
                id="ws_claims", name="claims", created_at=T0, updated_at=T0
            )
        )
        contact_ids = [new_id("ct") for _ in range(CONTACTS)]
        await session.execute(
            sa.insert(table_of(Contact)),
            [
                {"id": c, "workspace_id": "ws_claims", "created_at": T0, "updated_at": T0}
                for c in contact_ids
            ],
        )
        await session.execute(
            sa.insert(table_of(Delivery)),
            [
                {
                    "id": new_id("dl"),
                    "workspace_id": "ws_claims",
                    "kind": "human_reply",
                    "contact_id": contact_id,
                    "purpose": "human_reply",
                    "state": "pending",
                    "due_at": T0 - timedelta(seconds=n),
                    "content": {},
                    "attempts": 0,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for contact_id in contact_ids
                for n in range(ROWS_PER_CONTACT)
            ],
        )

    async def claimer(worker: int) -> list[str]:
        claimed: list[str] = []
        for _ in range(4):
            async with transaction(sessions) as session:
                claimed += await claim_due(
                    session,
                    worker_id=f"wk_{worker}",
                    now=T0,
                    limit=20,
                    lease=timedelta(minutes=5),
                )
        return claimed

    results = await asyncio.gather(*(claimer(n) for n in range(CLAIMERS)))
    every = [row for rows in results for row in rows]
    assert len(every) == len(set(every))  # never one row twice
    deliveries = table_of(Delivery)
    async with sessions() as session:
        claimed_rows = (
            await session.execute(
                sa.select(deliveries.c.id, deliveries.c.contact_id).where(
                    deliveries.c.state == "claimed"
                )
            )
        ).all()
    assert sorted(r.id for r in claimed_rows) == sorted(every)
    per_contact = Counter(r.contact_id for r in claimed_rows)
    assert max(per_contact.values()) == 1
    # Each contact's one claimable row went to someone: the claims did not starve each other.
    assert len(per_contact) == CONTACTS
