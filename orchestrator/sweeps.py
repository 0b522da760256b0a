"""Sweeps: interval jobs that move rows whose time has come (DESIGN section 8).

Each sweep is one set-based statement taking `now`, so any number of workers may run it together:
a row another worker already moved no longer matches the `WHERE`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.db import rows_affected
from orchestrator.delivery_states import Event, State, sources_of, transition
from orchestrator.models import Delivery, OptinToken, table_of

# The status of an opt-in token swept past its expiry: its value is erased, the policy reads
# it as unusable.
EXPIRED_STATUS = "expired"


def _rowcount(result: object) -> int:
    return rows_affected(result)


async def expire_holds(session: AsyncSession, *, now: datetime) -> int:
    """Held deliveries whose maximum wait has passed go back to pending, due now, so the
    dispatcher decides again and answers `email.hold_expired` (DESIGN section 5).

    `held_until` stays: the dispatcher passes it to the policy as the hold deadline, and a
    deadline that has passed is what turns `wait_for_window` into the email. A hold without a
    deadline (`max_wait: null`) waits for the window however long it takes."""
    table = table_of(Delivery)
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.state.in_([s.value for s in sources_of(Event.RELEASE)]),
            table.c.held_until.is_not(None),
            table.c.held_until <= now,
        )
        .values(
            state=transition(State.HELD, Event.RELEASE).value,
            due_at=now,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    return _rowcount(result)


async def release_due_deferred(session: AsyncSession, *, now: datetime) -> int:
    """Deferred deliveries (outside the send window when they came up) whose next opening has
    come go back to pending: the dispatcher claims only pending rows, and decides again."""
    table = table_of(Delivery)
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.state.in_([s.value for s in sources_of(Event.DUE)]),
            table.c.due_at <= now,
        )
        .values(state=transition(State.DEFERRED, Event.DUE).value, updated_at=now)
    )
    return _rowcount(result)


async def expire_tokens(session: AsyncSession, *, now: datetime) -> int:
    """Opt-in tokens past their expiry lose their value (data minimisation): the encrypted token
    is erased and the status becomes `expired`.

    The row is kept rather than deleted: its keyed hash still recognises the same token if Meta
    sends it again, so a redelivered opt-in is not stored as a fresh active token, and a late
    STOP/RESUME for it changes nothing (`inbound._token_status` moves only active and stopped
    tokens). The policy never reads the value, only kind, topic, expiry, use and status
    (`reachability.token_state`); an expired token fails `now < expires_at` and reads as stopped,
    so it is never picked and the dispatcher never decrypts the erased value. Reachability lists
    active tokens only, so an expired one disappears from it."""
    table = table_of(OptinToken)
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.expires_at.is_not(None),
            table.c.expires_at <= now,
            table.c.status != EXPIRED_STATUS,
        )
        .values(token_enc="", status=EXPIRED_STATUS, status_changed_at=now)
    )
    return _rowcount(result)
