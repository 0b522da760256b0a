"""The suppression list: keyed hashes of addresses that must never be emailed or re-subscribed
by an import (DESIGN section 4). Keyed with the secret key, so the list leaks no addresses."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.crypto import KeyRing
from orchestrator.models import Suppression, table_of

_PURPOSE = "suppression"


def address_hashes(keyring: KeyRing, *, workspace_id: str, address: str) -> tuple[str, ...]:
    return keyring.keyed_hashes(f"{workspace_id}:{address}", purpose=_PURPOSE)


async def suppressed_reason(
    session: AsyncSession, keyring: KeyRing, *, workspace_id: str, address: str
) -> str | None:
    """Why the address is suppressed (unsubscribed, bounced, complained, erased), or None."""
    table = table_of(Suppression)
    hashes = address_hashes(keyring, workspace_id=workspace_id, address=address)
    found = await session.execute(
        sa.select(table.c.reason)
        .where(table.c.workspace_id == workspace_id, table.c.address_hash.in_(hashes))
        .limit(1)
    )
    reason: str | None = found.scalar_one_or_none()
    return reason


async def is_suppressed(
    session: AsyncSession, keyring: KeyRing, *, workspace_id: str, address: str
) -> bool:
    found = await suppressed_reason(session, keyring, workspace_id=workspace_id, address=address)
    return found is not None


async def suppress(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    address: str,
    reason: str,
    now: datetime,
) -> None:
    if await is_suppressed(session, keyring, workspace_id=workspace_id, address=address):
        return
    current = address_hashes(keyring, workspace_id=workspace_id, address=address)[0]
    await session.execute(
        sa.insert(table_of(Suppression)).values(
            workspace_id=workspace_id, address_hash=current, reason=reason, created_at=now
        )
    )


async def lift(session: AsyncSession, keyring: KeyRing, *, workspace_id: str, address: str) -> None:
    """Only a confirmed double opt-in lifts an unsubscribe (never a complaint or an erasure)."""
    table = table_of(Suppression)
    hashes = address_hashes(keyring, workspace_id=workspace_id, address=address)
    await session.execute(
        sa.delete(table).where(
            table.c.workspace_id == workspace_id,
            table.c.address_hash.in_(hashes),
            table.c.reason == "unsubscribed",
        )
    )
