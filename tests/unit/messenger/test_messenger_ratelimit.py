from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.messenger.ratelimit import RateLimiter, SlidingWindowLimiter


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(time: FakeTime, rate: int, **kwargs: Any) -> SlidingWindowLimiter:
    """The cap alone unless the test asks for pacing."""
    kwargs.setdefault("burst", None)
    return SlidingWindowLimiter(rate, clock=time.clock, sleep=time.sleep, **kwargs)


def busiest_window(times: Sequence[float], period: float = 1.0) -> int:
    """Most grants in any half-open window [t, t + period); the worst window starts at a grant."""
    ordered = sorted(times)
    return max(
        (bisect_left(ordered, start + period) - index for index, start in enumerate(ordered)),
        default=0,
    )


class NaiveBucket:
    """The token bucket the module docstring warns about: capacity = rate, refill = rate/s."""

    def __init__(self, time: FakeTime, rate: int) -> None:
        self.time, self.rate = time, rate
        self.tokens, self.updated = float(rate), time.now

    async def acquire(self, key: str) -> None:
        now = self.time.now
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            await self.time.sleep((1 - self.tokens) / self.rate)
            self.tokens, self.updated = 1.0, self.time.now
        self.tokens -= 1


async def hammer(bucket: RateLimiter, time: FakeTime, *, start: float, until: float) -> list[float]:
    """Acquire back to back from `start` until the clock passes `until`; the grant times."""
    time.now = start
    grants: list[float] = []
    while time.now < until:
        await bucket.acquire("page")
        grants.append(time.now)
    return grants


async def test_a_naive_bucket_allows_about_twice_the_rate_in_one_second() -> None:
    time = FakeTime()
    grants = await hammer(NaiveBucket(time, 300), time, start=0.99, until=3.0)
    assert busiest_window(grants) >= 590


async def test_ours_never_exceeds_the_rate_in_any_one_second_window() -> None:
    time = FakeTime()
    grants = await hammer(limiter(time, 300), time, start=0.99, until=4.0)
    assert busiest_window(grants) == 300
    # And it is not slower than the rate allows: 300 per second of the run, the first burst at once.
    assert grants[:300] == [0.99] * 300
    assert sum(1 for grant in grants if grant < 4.0) == 1200
    assert grants[300] == pytest.approx(1.99)


async def test_first_rate_grants_are_immediate_then_the_next_waits_a_full_period() -> None:
    time = FakeTime(10.0)
    bucket = limiter(time, 3)
    for _ in range(3):
        await bucket.acquire("p")
    assert time.now == 10.0
    time.now = 10.4
    await bucket.acquire("p")
    assert time.now == pytest.approx(11.0)
    assert time.sleeps == [pytest.approx(0.6)]


async def test_keys_are_independent_and_rates_configurable() -> None:
    time = FakeTime()
    bucket = limiter(time, 2, rates={"slow": 1})
    assert bucket.rate_for("slow") == 1
    assert bucket.rate_for("other") == 2
    await bucket.acquire("a")
    await bucket.acquire("a")
    await bucket.acquire("b")
    await bucket.acquire("b")
    await bucket.acquire("slow")
    assert time.now == 0.0
    await bucket.acquire("slow")
    assert time.now == 1.0


async def test_concurrent_waiters_are_served_in_order_within_the_limit() -> None:
    time = FakeTime()
    bucket = limiter(time, 10)
    order: list[int] = []
    grants: list[float] = []

    async def one(index: int) -> None:
        await bucket.acquire("page")
        order.append(index)
        grants.append(time.now)

    await asyncio.gather(*(one(index) for index in range(95)))
    assert order == list(range(95))
    assert busiest_window(grants) == 10
    assert grants[-1] == pytest.approx(9.0)


async def test_pacing_spreads_grants_evenly_a_little_under_the_cap() -> None:
    time = FakeTime()
    bucket = limiter(time, 300, burst=10, headroom=0.03)
    grants = await hammer(bucket, time, start=0.0, until=10.0)
    interval = 1 / (300 * 0.97)
    assert grants[:10] == [0.0] * 10
    assert grants[10] == pytest.approx(interval)
    assert busiest_window(grants) <= 10 + 291
    in_run = [grant for grant in grants if grant < 10.0]
    assert len(in_run) / 10.0 == pytest.approx(291, abs=2)


async def test_pacing_catches_up_after_late_wake_ups() -> None:
    class LateSleeper(FakeTime):
        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds + 0.002)  # every timer fires 2 ms late

    time = LateSleeper()
    bucket = limiter(time, 300, burst=10, headroom=0.03)
    grants = await hammer(bucket, time, start=0.0, until=20.0)
    assert sum(1 for grant in grants if grant < 20.0) / 20.0 == pytest.approx(291, abs=3)
    assert busiest_window(grants) <= 300


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        SlidingWindowLimiter(0)
    with pytest.raises(ValueError, match="period"):
        SlidingWindowLimiter(10, period=0)
    with pytest.raises(ValueError, match="every rate"):
        SlidingWindowLimiter(10, rates={"p": 0})
    with pytest.raises(ValueError, match="burst"):
        SlidingWindowLimiter(10, burst=0)
    with pytest.raises(ValueError, match="headroom"):
        SlidingWindowLimiter(10, headroom=1.0)


def simulate(arrivals: Sequence[float], bucket_args: dict[str, Any]) -> list[float]:
    """Callers arriving at `arrivals` (sorted), each waiting for the previous one (one worker)."""

    async def run() -> list[float]:
        time = FakeTime()
        bucket = limiter(time, **bucket_args)
        grants = []
        for arrival in arrivals:
            time.now = max(time.now, arrival)
            await bucket.acquire("page")
            grants.append(time.now)
        return grants

    return asyncio.run(run())


def reference_grants(
    arrivals: Sequence[float], rate: int, period: float, burst: int | None, headroom: float
) -> list[float]:
    """The specification, written out: each grant at the first instant every rule allows."""
    grants: list[float] = []
    interval = period / (rate * (1 - headroom))
    tolerance = 0.0 if burst is None else (burst - 1) * interval
    tat: float | None = None
    for arrival in arrivals:
        ready = max(arrival, grants[-1] if grants else arrival)
        if len(grants) >= rate:
            ready = max(ready, grants[-rate] + period)
        if burst is not None and tat is not None:
            ready = max(ready, tat - tolerance)
        grants.append(ready)
        if burst is not None:
            tat = max(tat if tat is not None else ready, ready) + interval
    return grants


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=12),
    period=st.sampled_from([0.25, 1.0, 2.5]),
    burst=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
    headroom=st.sampled_from([0.0, 0.03, 0.2]),
    gaps=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1.5)), min_size=1, max_size=120
    ),
)
def test_any_arrival_pattern_stays_within_the_limit_and_is_not_delayed_needlessly(
    rate: int, period: float, burst: int | None, headroom: float, gaps: list[float]
) -> None:
    arrivals: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        arrivals.append(now)
    args = {"rate": rate, "period": period, "burst": burst, "headroom": headroom}
    grants = simulate(arrivals, args)
    # Safety: grants `rate` apart are a full period apart, so no window holds more than `rate`.
    for earlier, later in zip(grants, grants[rate:], strict=False):
        assert earlier + period <= later
    assert busiest_window(grants, period) <= rate
    if burst is not None:
        # Pacing: beyond the first `burst`, grants come no faster than the paced rate.
        interval = period / (rate * (1 - headroom))
        for index in range(burst, len(grants)):
            assert grants[index] - grants[index - burst] >= interval - 1e-8
    # Liveness: each grant happens at the first instant the order and the rules allow.
    expected = reference_grants(arrivals, rate, period, burst, headroom)
    assert grants == pytest.approx(expected, abs=1e-8)
