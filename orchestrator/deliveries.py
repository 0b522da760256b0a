"""Creating one-off deliveries (DESIGN section 4: no provider call without a delivery row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.delivery_states import State
from orchestrator.ids import new_id
from orchestrator.models import Delivery, table_of


async def insert_one_off(
    session: AsyncSession,
    *,
    workspace_id: str,
    contact_id: str,
    page_id: str | None,
    kind: str,
    purpose: str,
    topic: str | None,
    content: dict[str, Any],
    now: datetime,
    idempotency_key: str | None = None,
) -> Delivery | None:
    """A pending delivery due now. With an idempotency key there is at most one per workspace:
    None when it exists already."""
    if idempotency_key is not None:
        table = table_of(Delivery)
        exists = (
            await session.execute(
                sa.select(table.c.id).where(
                    table.c.workspace_id == workspace_id,
                    table.c.idempotency_key == idempotency_key,
                )
            )
        ).first()
        if exists is not None:
            return None
    delivery = Delivery(
        id=new_id("dl"),
        workspace_id=workspace_id,
        kind=kind,
        idempotency_key=idempotency_key,
        contact_id=contact_id,
        page_id=page_id,
        purpose=purpose,
        topic=topic,
        state=State.PENDING.value,
        due_at=now,
        content=content,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery
