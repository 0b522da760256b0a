"""Global send budgets (DESIGN section 8): grants across processes never exceed a key's cap in a
window; a spent window makes a caller wait for the next one, or give up at its deadline."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.db import transaction
from orchestrator.models import SendBudget, table_of
from orchestrator.send_budgets import Budget, KeyedBudget, SendBudgets, forget_idle, reserve


class WallClock:
    """A wall clock the budgets read and sleep on, moved by hand."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []
        self.woke: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.woke.append(self.now)


def test_rates_become_whole_grants_never_above_the_rate() -> None:
    assert Budget.per_second(14.5) == Budget(14, 1)
    assert Budget.per_second(300) == Budget(300, 1)
    assert Budget.per_second(0.5) == Budget(1, 2)
    assert Budget.per_second(0.3) == Budget(1, 4)
    assert Budget(300).block() == 30
    assert Budget(5).block() == 1
    with pytest.raises(ValueError, match="cap >= 1"):
        Budget(0)
    with pytest.raises(ValueError, match="rate must be > 0"):
        Budget.per_second(0)


async def test_reservations_share_one_cap_per_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    budget = Budget(25)  # blocks of 2
    grants: list[int] = []
    async with transaction(sessions) as session:
        for _ in range(14):
            grants.append(await reserve(session, "campaign:c1", budget=budget, window=100))
    # Twelve blocks of two, then the one grant left, then nothing.
    assert grants == [2] * 12 + [1, 0]
    async with transaction(sessions) as session:
        # The next window starts empty; another key has its own row.
        assert await reserve(session, "campaign:c1", budget=budget, window=101) == 2
        assert await reserve(session, "campaign:c2", budget=budget, window=100) == 2
        rows = {
            row.key: (row.window_index, row.used)
            for row in (await session.execute(sa.select(table_of(SendBudget)))).all()
        }
    assert rows == {"campaign:c1": (101, 2), "campaign:c2": (100, 2)}


async def test_two_processes_never_exceed_the_cap_and_wait_for_the_next_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = WallClock(1_000_000.25)
    first = SendBudgets(sessions, clock=clock, sleep=clock.sleep)
    second = SendBudgets(sessions, clock=clock, sleep=clock.sleep)
    budget = Budget(10)  # blocks of one
    windows: dict[int, int] = {}
    for n in range(35):
        budgets = first if n % 2 == 0 else second
        assert await budgets.acquire("smtp:relay:25", budget)
        windows[int(clock.now)] = windows.get(int(clock.now), 0) + 1
    # Ten grants a second, whichever process asked; a spent second made the asker sleep to the
    # start of the next one.
    assert sorted(windows.values()) == [5, 10, 10, 10]
    assert all(count <= 10 for count in windows.values())
    assert len(clock.woke) == 3
    assert all(woke == int(woke) for woke in clock.woke)


async def test_a_spent_window_past_the_deadline_gives_up_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = WallClock(2_000_000.5)
    budgets = SendBudgets(sessions, clock=clock, sleep=clock.sleep)
    budget = Budget(2)
    assert await budgets.acquire("campaign:c", budget, deadline=clock.now + 0.2)
    assert await budgets.acquire("campaign:c", budget, deadline=clock.now + 0.2)
    assert not await budgets.acquire("campaign:c", budget, deadline=clock.now + 0.2)
    assert clock.slept == []
    # With a later deadline it waits for the next window instead.
    assert await budgets.acquire("campaign:c", budget, deadline=clock.now + 5)
    assert clock.slept == [0.5]


async def test_a_keyed_budget_is_a_rate_limiter_per_page(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = WallClock(3_000_000.0)
    limiter = KeyedBudget(SendBudgets(sessions, clock=clock, sleep=clock.sleep), "page:", Budget(3))
    for _ in range(3):
        await limiter.acquire("P1")
    await limiter.acquire("P2")
    assert clock.slept == []
    await limiter.acquire("P1")
    assert clock.slept == [1.0]


async def test_idle_keys_are_forgotten(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        await reserve(session, "campaign:old", budget=Budget(5), window=1_000)
        await reserve(session, "smtp:slow", budget=Budget(1, 4), window=2_000)  # second 8,000
        await reserve(session, "campaign:new", budget=Budget(5), window=9_000)
        assert await forget_idle(session, epoch_seconds=9_500, idle=2_000) == 1
        keys = set((await session.execute(sa.select(table_of(SendBudget).c.key))).scalars())
    assert keys == {"smtp:slow", "campaign:new"}
