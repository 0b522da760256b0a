"""The delivery sweeps on both engines: only rows whose time has come move, and only once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import sweeps
from orchestrator.ids import new_id
from orchestrator.models import Delivery, table_of
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0

NOW = T0 + timedelta(days=3)


async def add_delivery(
    session: AsyncSession, workspace_id: str, name: str, due_at: datetime = T0, **values: Any
) -> str:
    row = Delivery(
        id=new_id("dl"),
        workspace_id=workspace_id,
        kind="step",
        campaign_id="cp_x",
        campaign_run_id=new_id("run"),
        step_index=0,
        contact_id=f"ct_{name}",
        page_id="104000000000555",
        purpose="promotional",
        due_at=due_at,
        created_at=T0,
        updated_at=T0,
        **values,
    )
    session.add(row)
    await session.flush()
    return row.id


async def rows(session: AsyncSession) -> dict[str, tuple[str, datetime, datetime | None]]:
    table = table_of(Delivery)
    result = await session.execute(
        sa.select(table.c.contact_id, table.c.state, table.c.due_at, table.c.held_until)
    )
    return {r.contact_id[3:]: (r.state, r.due_at, r.held_until) for r in result}


async def test_expire_holds_releases_only_holds_past_their_deadline(session: AsyncSession) -> None:
    ws = (await create_workspace(session, name="acme", now=T0)).id
    reason = "held.until_window"
    await add_delivery(session, ws, "expired", state="held", reason=reason, held_until=NOW)
    await add_delivery(
        session, ws, "waiting", state="held", reason=reason, held_until=NOW + timedelta(seconds=1)
    )
    await add_delivery(session, ws, "no_deadline", state="held", reason=reason)
    await add_delivery(session, ws, "sent", state="sent", held_until=T0, sent_at=T0)
    await add_delivery(session, ws, "pending", state="pending", held_until=T0)

    assert await sweeps.expire_holds(session, now=NOW) == 1
    after = await rows(session)
    # Due now, and the deadline stays: the dispatcher reads it as the hold deadline.
    assert after["expired"] == ("pending", NOW, NOW)
    assert after["waiting"] == ("held", T0, NOW + timedelta(seconds=1))
    assert after["no_deadline"] == ("held", T0, None)
    assert after["sent"] == ("sent", T0, T0)
    assert after["pending"] == ("pending", T0, T0)
    assert await sweeps.expire_holds(session, now=NOW) == 0


async def test_due_deferred_deliveries_are_pending_again(session: AsyncSession) -> None:
    ws = (await create_workspace(session, name="acme", now=T0)).id
    reason = "deferred.send_window"
    await add_delivery(session, ws, "due", state="deferred", reason=reason)
    await add_delivery(
        session, ws, "later", NOW + timedelta(minutes=1), state="deferred", reason=reason
    )
    await add_delivery(session, ws, "held", state="held", reason="held.until_window")

    assert await sweeps.release_due_deferred(session, now=NOW) == 1
    after = await rows(session)
    assert after["due"][0] == "pending"
    assert after["due"][1] == T0  # due since its opening: claimed at once
    assert after["later"][0] == "deferred"
    assert after["held"][0] == "held"
