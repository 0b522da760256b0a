"""Pausing a whole channel (today: email through the configured SMTP relay).

A relay that refuses our credentials, refuses to relay, or rejects on policy will refuse every
message the same way (RFC 5321 4.2.1: 5yz is permanent for the transaction, not the recipient), so
sending stops, `/readyz` says why, and deliveries wait until `outreach email resume`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.db import insert_ignoring_conflicts, rows_affected
from orchestrator.models import ChannelPause, table_of

EMAIL = "email"


async def pause(session: AsyncSession, *, channel: str, reason: str, now: datetime) -> None:
    await session.execute(
        insert_ignoring_conflicts(session, table_of(ChannelPause), ["channel"]).values(
            channel=channel, reason=reason[:500], paused_at=now
        )
    )


async def paused_reason(session: AsyncSession, *, channel: str) -> str | None:
    table = table_of(ChannelPause)
    return (
        await session.execute(sa.select(table.c.reason).where(table.c.channel == channel))
    ).scalar_one_or_none()


async def resume(session: AsyncSession, *, channel: str) -> bool:
    table = table_of(ChannelPause)
    result = await session.execute(sa.delete(table).where(table.c.channel == channel))
    return bool(rows_affected(result))
