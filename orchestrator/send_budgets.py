"""Global send budgets: at most `cap` sends per key in each window of `period` seconds, however
many processes send (DESIGN section 8: "limits are global, not per process").

Keys are a campaign's throttle (`campaign:<id>`), an SMTP relay's rate (`smtp:<host>:<port>`) and
a Page's Send API budget (`page:<id>`, on top of the Page's send lease, which already makes one
worker its only sender: the budget also covers the moments a lease changes hands while the old
holder still finishes its batch).

One row per key holds the current window (an integer count of periods since the epoch) and the
grants taken in it. A process reserves a block of grants with one atomic conditional `UPDATE`
(both engines evaluate every `SET` expression on the old row, so the grant is computed and
recorded in the same statement), spends the block locally, and reserves again; when the window
is spent it sleeps until the next one. A block is a tenth of the cap, so a round trip serves
several sends and no process can hoard a window; grants reserved and not spent when the window
ends are lost, which only errs on the side of sending less.

Windows are fixed (calendar seconds on every worker's wall clock, which NTP keeps within
milliseconds), not sliding: the cap holds in each window, so any sliding window of one period
holds at most twice the cap. Where the receiver counts in sliding windows (Meta's 300/s) the
process also paces itself locally (channels.messenger.ratelimit), and the budget is the global
backstop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.db import insert_ignoring_conflicts, rows_affected, transaction
from orchestrator.models import SendBudget, table_of

PAGE_BUDGET_PREFIX = "page:"
CAMPAIGN_BUDGET_PREFIX = "campaign:"
# A reservation takes this share of a window's cap (at least one grant).
BLOCK_SHARE = 0.1


@dataclass(frozen=True)
class Budget:
    """`cap` sends per `period` whole seconds."""

    cap: int
    period: int = 1

    def __post_init__(self) -> None:
        if self.cap < 1 or self.period < 1:
            raise ValueError("a budget needs cap >= 1 and period >= 1")

    @classmethod
    def per_second(cls, rate: float) -> Budget:
        """A rate such as 14.5/s as whole grants per whole seconds: 14 per second; below one a
        second, one per ceil(1 / rate) seconds. Never above the rate."""
        if not rate > 0:
            raise ValueError("rate must be > 0")
        if rate >= 1:
            return cls(math.floor(rate))
        return cls(1, math.ceil(1 / rate))

    def window_of(self, epoch_seconds: float) -> int:
        return math.floor(epoch_seconds / self.period)

    def block(self) -> int:
        return max(1, math.floor(self.cap * BLOCK_SHARE))


def reserve_statement(key: str, *, window: int, want: int, budget: Budget) -> sa.Update:
    """Take up to `want` grants of `window` for `key`, never more than `cap` in the window.

    The row's window moves forward (a new window starts empty); a row already at its cap in this
    window matches nothing, so no row comes back. Returns the grant."""
    table = table_of(SendBudget)
    cap = budget.cap
    same = table.c.window_index == window
    fits = table.c.used + want <= cap
    return (
        sa.update(table)
        .where(table.c.key == key, sa.or_(~same, table.c.used < cap))
        .values(
            granted=sa.case((same, sa.case((fits, want), else_=cap - table.c.used)), else_=want),
            used=sa.case((same, sa.case((fits, table.c.used + want), else_=cap)), else_=want),
            window_index=window,
            period_seconds=budget.period,
        )
        .returning(table.c.granted)
    )


async def reserve(session: AsyncSession, key: str, *, budget: Budget, window: int) -> int:
    """Grants reserved for `key` in `window` (0: the window is spent)."""
    want = min(budget.block(), budget.cap)
    statement = reserve_statement(key, window=window, want=want, budget=budget)
    granted = (await session.execute(statement)).scalar_one_or_none()
    if granted is not None:
        return int(granted)
    table = table_of(SendBudget)
    inserted = await session.execute(
        insert_ignoring_conflicts(session, table, ["key"])
        .values(key=key, window_index=window, period_seconds=budget.period, used=want, granted=want)
        .returning(table.c.granted)
    )
    if inserted.scalar_one_or_none() is not None:
        return want
    # Another process created the row meanwhile: take from it as from any other.
    granted = (await session.execute(statement)).scalar_one_or_none()
    return 0 if granted is None else int(granted)


async def forget_idle(session: AsyncSession, *, epoch_seconds: float, idle: int = 3600) -> int:
    """Drop the rows of keys unused for `idle` seconds (finished campaigns, old relays). Windows
    are wall-clock time, like the budgets (not the application clock, which tests freeze)."""
    table = table_of(SendBudget)
    horizon = math.floor(epoch_seconds) - idle
    result = await session.execute(
        sa.delete(table).where(table.c.window_index * table.c.period_seconds < horizon)
    )
    return rows_affected(result)


class _Local:
    __slots__ = ("left", "lock", "spent", "window")

    def __init__(self) -> None:
        self.window: int | None = None
        self.left = 0  # grants reserved in `window` and not used yet
        self.spent = False  # the database said `window` has no grant left
        self.lock = asyncio.Lock()


class SendBudgets:
    """This process's side of the global budgets: reserved blocks, spent one send at a time.

    Waiters for one key queue on a FIFO lock, so one of them at a time reserves or sleeps."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, _Local] = {}

    def now(self) -> float:
        """The wall-clock time budgets count windows in."""
        return self._clock()

    async def acquire(self, key: str, budget: Budget, *, deadline: float | None = None) -> bool:
        """Return True when one more send for `key` fits its budget, or False at once if that
        would be after `deadline` (the clock's time: the caller's claims would expire first)."""
        local = self._keys.get(key)
        if local is None:
            local = self._keys[key] = _Local()
        async with local.lock:
            while True:
                now = self._clock()
                window = budget.window_of(now)
                if local.window == window and local.left > 0:
                    local.left -= 1
                    return True
                if local.window != window or not local.spent:
                    async with transaction(self._sessions) as session:
                        granted = await reserve(session, key, budget=budget, window=window)
                    local.window, local.left, local.spent = window, granted, granted == 0
                    if granted > 0:
                        local.left -= 1
                        return True
                # The window is spent: nothing to ask the database before the next one.
                next_window = (window + 1) * budget.period
                if deadline is not None and next_window > deadline:
                    return False
                await self._sleep(max(0.0, next_window - self._clock()))


@dataclass(frozen=True)
class KeyedBudget:
    """A `RateLimiter` (channels.messenger.ratelimit) over the global budgets: one budget for
    every key, under a prefix (the Page budget the Messenger client asks for by Page id)."""

    budgets: SendBudgets
    prefix: str
    budget: Budget

    async def acquire(self, key: str) -> None:
        await self.budgets.acquire(self.prefix + key, self.budget)
