"""The store on both engines: aware UTC times, UTF-8 JSON, constraints, rollback on failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.crypto import KeyRing
from orchestrator.db import transaction
from orchestrator.ids import new_id
from orchestrator.models import Contact, Delivery, MessengerApp, Page
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0
from tests.fixtures.database import TEST_SECRET, table_count

ICT = timezone(timedelta(hours=7))


async def _workspace(session: AsyncSession, name: str = "acme") -> str:
    return (await create_workspace(session, name=name, now=T0)).id


async def test_datetimes_come_back_aware_utc_whatever_zone_went_in(session: AsyncSession) -> None:
    ws = await _workspace(session)
    local = datetime(2026, 11, 25, 21, 30, 15, 123456, tzinfo=ICT)
    session.add(Contact(id="ct_1", workspace_id=ws, created_at=local, updated_at=local))
    await session.flush()
    session.expunge_all()
    row = (await session.execute(sa.select(Contact.__table__.c.created_at))).scalar_one()
    assert row.tzinfo is not None
    assert row.utcoffset() == timedelta(0)
    assert row == datetime(2026, 11, 25, 14, 30, 15, 123456, tzinfo=UTC)


async def test_naive_datetimes_are_refused(session: AsyncSession) -> None:
    ws = await _workspace(session)
    naive = datetime(2026, 1, 1)  # noqa: DTZ001
    session.add(Contact(id="ct_2", workspace_id=ws, created_at=naive, updated_at=naive))
    with pytest.raises(StatementError, match="naive datetime"):
        await session.flush()


async def test_json_attributes_keep_vietnamese_text(session: AsyncSession) -> None:
    ws = await _workspace(session)
    attributes = {"tên": "Nguyễn Thị Hồng Nhung", "city": "Đà Nẵng", "emoji": "🎁", "n": [1, 2]}
    session.add(
        Contact(
            id="ct_3",
            workspace_id=ws,
            name="Trần Văn Đức",
            attributes=attributes,
            created_at=T0,
            updated_at=T0,
        )
    )
    await session.flush()
    session.expunge_all()
    stored = await session.get(Contact, "ct_3")
    assert stored is not None
    assert stored.attributes == attributes
    assert stored.name == "Trần Văn Đức"


async def _app_and_page(session: AsyncSession, ws: str, page_id: str, app_id: str) -> None:
    ring = KeyRing(TEST_SECRET)
    app = MessengerApp(
        id=new_id("app"),
        workspace_id=ws,
        app_id=app_id,
        app_secret_enc=ring.encrypt("s", context="app"),
        verify_token_enc=ring.encrypt("v", context="app"),
        created_at=T0,
        updated_at=T0,
    )
    session.add(app)
    await session.flush()
    session.add(
        Page(
            id=new_id("pg"),
            workspace_id=ws,
            page_id=page_id,
            messenger_app_id=app.id,
            username="shop",
            access_token_enc=ring.encrypt("t", context="page"),
            graph_api_version="v25.0",
            created_at=T0,
            updated_at=T0,
        )
    )
    await session.flush()


async def test_a_page_belongs_to_one_workspace(session: AsyncSession) -> None:
    first = await _workspace(session, "first")
    second = await _workspace(session, "second")
    await _app_and_page(session, first, "104000000000001", "900001")
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            await _app_and_page(session, second, "104000000000001", "900002")


async def test_delivery_state_is_constrained_and_steps_are_unique(session: AsyncSession) -> None:
    ws = await _workspace(session)

    def delivery(**overrides: object) -> Delivery:
        values: dict[str, object] = {
            "id": new_id("dl"),
            "workspace_id": ws,
            "kind": "campaign",
            "campaign_run_id": "run_1",
            "step_index": 0,
            "contact_id": "ct_1",
            "purpose": "promotional",
            "due_at": T0,
            "created_at": T0,
            "updated_at": T0,
        }
        values.update(overrides)
        return Delivery(**values)  # type: ignore[arg-type]

    session.add(delivery())
    await session.flush()
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            session.add(delivery())
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            session.add(delivery(step_index=1, state="delivered"))


async def test_a_failing_transaction_leaves_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = 0
    async with sessions() as s:
        before = await table_count(s, "workspaces")
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as s:
            await create_workspace(s, name="half-written", now=T0)
            await s.flush()
            raise RuntimeError("boom after the write")
    async with sessions() as s:
        assert await table_count(s, "workspaces") == before
