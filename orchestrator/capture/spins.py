"""Lucky-wheel spins: drawn on the server at capture, once per address and form; a prize is
reserved only after confirmation (at capture for a single opt-in form).

Stock holds under concurrency because a reservation takes it with one conditional update,
`awarded = awarded + 1 WHERE awarded < stock`: on PostgreSQL the row lock makes concurrent
reservations queue and re-check the condition on the row the previous one committed; on SQLite
writers are serialised (BEGIN IMMEDIATE). A code is then taken the same way, and a spin is
reserved at most once (`reserved_at IS NULL`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.capture import wheel
from orchestrator.capture.forms import prizes_of
from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.models import (
    SPIN_STATUSES,
    CapturePrize,
    CapturePrizeCode,
    CaptureSpin,
    table_of,
)

_HASH_PURPOSE = "capture-spin"


@dataclass(frozen=True)
class SpinView:
    id: str
    segment_id: str | None
    label: str | None
    status: str
    code: str | None


def address_hashes(keyring: KeyRing, *, form_id: str, address: str) -> tuple[str, ...]:
    return keyring.keyed_hashes(f"{form_id}:{address}", purpose=_HASH_PURPOSE)


async def _view(session: AsyncSession, spin_id: str) -> SpinView:
    spins = table_of(CaptureSpin)
    prizes = table_of(CapturePrize)
    row = (
        await session.execute(
            sa.select(spins.c.id, spins.c.prize_id, spins.c.status, spins.c.code, prizes.c.label)
            .select_from(spins.outerjoin(prizes, prizes.c.id == spins.c.prize_id))
            .where(spins.c.id == spin_id)
        )
    ).one()
    return SpinView(row.id, row.prize_id, row.label, row.status, row.code)


async def _find(session: AsyncSession, form_id: str, hashes: tuple[str, ...]) -> str | None:
    spins = table_of(CaptureSpin)
    return (
        await session.execute(
            sa.select(spins.c.id)
            .where(spins.c.form_id == form_id, spins.c.address_hash.in_(hashes))
            .limit(1)
        )
    ).scalar_one_or_none()


async def spin(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    form_id: str,
    address: str,
    contact_id: str,
    r: float,
    now: datetime,
) -> tuple[SpinView, bool]:
    """The address's spin on this form, drawn now if it has none; True when drawn now."""
    hashes = address_hashes(keyring, form_id=form_id, address=address)
    existing = await _find(session, form_id, hashes)
    if existing is not None:
        return await _view(session, existing), False
    drawn = wheel.draw([p.segment() for p in await prizes_of(session, form_id)], r)
    spin_id = new_id("sp")
    try:
        async with session.begin_nested():
            await session.execute(
                sa.insert(table_of(CaptureSpin)).values(
                    id=spin_id,
                    workspace_id=workspace_id,
                    form_id=form_id,
                    address_hash=hashes[0],
                    contact_id=contact_id,
                    prize_id=drawn.id if drawn else None,
                    # Nothing left to land on: the wheel shows no prize and nothing is reserved.
                    status="pending" if drawn else "out_of_stock",
                    created_at=now,
                )
            )
    except IntegrityError:
        # The same address spun in a concurrent request, which committed first.
        existing = await _find(session, form_id, hashes)
        assert existing is not None
        return await _view(session, existing), False
    return await _view(session, spin_id), True


async def spin_of_contact(session: AsyncSession, *, form_id: str, contact_id: str) -> str | None:
    spins = table_of(CaptureSpin)
    return (
        await session.execute(
            sa.select(spins.c.id)
            .where(spins.c.form_id == form_id, spins.c.contact_id == contact_id)
            .order_by(spins.c.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()


async def reserve(session: AsyncSession, *, spin_id: str, now: datetime) -> SpinView:
    """Give the drawn prize if stock (and a code) is left; idempotent per spin."""
    spins = table_of(CaptureSpin)
    claimed = (
        await session.execute(
            sa.update(spins)
            .where(
                spins.c.id == spin_id,
                spins.c.status == "pending",
                spins.c.reserved_at.is_(None),
            )
            .values(reserved_at=now)
            .returning(spins.c.prize_id)
        )
    ).first()
    if claimed is None:
        return await _view(session, spin_id)  # reserved before, or never reservable
    status, code = await _take_prize(session, prize_id=claimed.prize_id, spin_id=spin_id, now=now)
    await session.execute(
        sa.update(spins).where(spins.c.id == spin_id).values(status=status, code=code)
    )
    return await _view(session, spin_id)


async def _take_prize(
    session: AsyncSession, *, prize_id: str | None, spin_id: str, now: datetime
) -> tuple[str, str | None]:
    prizes = table_of(CapturePrize)
    prize = (
        await session.execute(sa.select(prizes.c.losing).where(prizes.c.id == prize_id))
    ).first()
    if prize is None or prize.losing:
        return "lost", None
    taken = (
        await session.execute(
            sa.update(prizes)
            .where(
                prizes.c.id == prize_id,
                prizes.c.active.is_(True),
                sa.or_(prizes.c.stock.is_(None), prizes.c.awarded < prizes.c.stock),
            )
            .values(awarded=prizes.c.awarded + 1)
            .returning(prizes.c.id)
        )
    ).first()
    if taken is None:
        return "out_of_stock", None
    codes = table_of(CapturePrizeCode)
    has_codes = (
        await session.execute(sa.select(codes.c.id).where(codes.c.prize_id == prize_id).limit(1))
    ).first()
    if has_codes is None:
        return "won", None
    free = (
        sa.select(codes.c.id)
        .where(codes.c.prize_id == prize_id, codes.c.spin_id.is_(None))
        .order_by(codes.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    code = (
        await session.execute(
            sa.update(codes)
            .where(codes.c.id == free, codes.c.spin_id.is_(None))
            .values(spin_id=spin_id, assigned_at=now)
            .returning(codes.c.code)
        )
    ).scalar_one_or_none()
    if code is None:
        # Stock said yes but the codes ran out: give the unit back.
        await session.execute(
            sa.update(prizes).where(prizes.c.id == prize_id).values(awarded=prizes.c.awarded - 1)
        )
        return "out_of_stock", None
    return "won", code


async def counts(session: AsyncSession, *, form_id: str) -> dict[str, int]:
    spins = table_of(CaptureSpin)
    found = dict.fromkeys(SPIN_STATUSES, 0)
    for status, count in await session.execute(
        sa.select(spins.c.status, sa.func.count())
        .where(spins.c.form_id == form_id)
        .group_by(spins.c.status)
    ):
        found[status] = int(count)
    return found
