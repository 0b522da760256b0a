"""Per-Page send rate limiting.

Meta allows 300 Send API calls per second per Page for text, links, reactions and stickers
(reference §7 [S7]). `RateLimiter` is the small interface the client needs; a database-backed
Page send lease (DESIGN section 8) can implement it later so the budget holds across workers.

`SlidingWindowLimiter` is the in-process implementation. Two rules, both per key:

- The cap (a guarantee). A token bucket with burst = rate lets through up to 2 x rate in a sliding
  second (a full bucket spent at the end of one second, then a refill's worth right after). This
  limiter instead keeps the times of its last `rate` grants and grants again only when the oldest
  of them is at least `period` old. So any two grants `rate` apart are at least `period` apart,
  which is exactly "no more than `rate` grants in any half-open window of length `period`".
- The pace (smoothing, optional). A GCRA spaces grants `period / (rate * (1 - headroom))` apart,
  allowing `burst` at once. Without it the cap alone would send `rate` calls in one clump and
  then wait: network jitter can squeeze such a clump, plus the next one, into one second on
  Meta's side. With the pace, any span of L seconds holds at most burst + pace x L grants, so
  calls delayed unevenly by up to J seconds land at most burst + pace x (1 + J) to a receiver's
  second: with the defaults (300/s, burst 3, headroom 6 %: 282/s) that stays under 300 for up to
  ~50 ms of jitter. At 5 % (285/s) the loopback benchmark still saw 301-304 arrivals in some
  receiver seconds (requests bunch between the grant and the server); at 6 % the peak was 300.
  A burst of 1 is worse, not better: late timers then lose slots (231/s measured). The
  GCRA keeps a theoretical arrival time, so a timer that fires up to burst - 1 intervals late is
  caught up rather than lost.

Waiters for one key are served in arrival order (an `asyncio.Lock` is FIFO) and only the head of
the queue sleeps, so there is no thundering herd. The clock and the sleep are injected.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

DEFAULT_PAGE_RATE = 300  # Send API calls per second per Page, reference §7 [S7]
DEFAULT_BURST = 3
DEFAULT_HEADROOM = 0.06
# The pace is smoothing, not a guarantee: a nanosecond of slack stops float error in the running
# arrival time from scheduling needless sub-microsecond sleeps. The cap gets no slack.
_PACE_SLACK = 1e-9


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> None:
        """Return when one more call for `key` (a Page id) may start now."""
        ...


class _Key:
    __slots__ = ("cap", "grants", "interval", "lock", "period", "tat", "tolerance")

    def __init__(self, cap: int, period: float, interval: float | None, tolerance: float) -> None:
        self.cap = cap
        self.period = period
        self.grants: deque[float] = deque(maxlen=cap)
        self.interval = interval
        self.tolerance = tolerance
        self.tat: float | None = None  # GCRA theoretical arrival time of the next grant
        self.lock = asyncio.Lock()


class SlidingWindowLimiter:
    """At most `rate` grants per key in any window of `period` seconds (default 300/s per Page).

    `burst=None` turns the pacing off (the cap alone: clumps of `rate`); otherwise grants are
    spaced at `rate * (1 - headroom)` per `period` with up to `burst` back to back.
    """

    def __init__(
        self,
        rate: int = DEFAULT_PAGE_RATE,
        period: float = 1.0,
        *,
        burst: int | None = DEFAULT_BURST,
        headroom: float = DEFAULT_HEADROOM,
        rates: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate < 1 or period <= 0:
            raise ValueError("rate must be >= 1 and period > 0")
        if rates is not None and any(value < 1 for value in rates.values()):
            raise ValueError("every rate must be >= 1")
        if burst is not None and burst < 1:
            raise ValueError("burst must be >= 1 (or None for no pacing)")
        if not 0 <= headroom < 1:
            raise ValueError("headroom must be in [0, 1)")
        self._rate = rate
        self._rates = dict(rates or {})
        self._period = period
        self._burst = burst
        self._headroom = headroom
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, _Key] = {}

    def rate_for(self, key: str) -> int:
        return self._rates.get(key, self._rate)

    async def acquire(self, key: str) -> None:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = self._new_key(key)
        async with state.lock:
            while True:
                now = self._clock()
                # Compare with the ready time itself (not a computed wait) so float rounding can
                # never leave a positive wait too small to move the clock.
                ready = self._ready_at(state)
                if ready is None or now >= ready:
                    state.grants.append(now)
                    if state.interval is not None:
                        state.tat = max(state.tat if state.tat is not None else now, now)
                        state.tat += state.interval
                    return
                await self._sleep(ready - now)

    def _new_key(self, key: str) -> _Key:
        cap = self.rate_for(key)
        if self._burst is None:
            return _Key(cap, self._period, None, 0.0)
        interval = self._period / (cap * (1.0 - self._headroom))
        return _Key(cap, self._period, interval, (self._burst - 1) * interval)

    @staticmethod
    def _ready_at(state: _Key) -> float | None:
        ready: float | None = None
        if len(state.grants) >= state.cap:
            ready = state.grants[0] + state.period
        if state.tat is not None:
            paced = state.tat - state.tolerance - _PACE_SLACK
            ready = paced if ready is None else max(ready, paced)
        return ready


class AllOf:
    """Every limiter in turn, e.g. a budget shared with other processes, then this process's
    pace within it (so the pace, not the budget's block reservations, times each call)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self._limiters = limiters

    async def acquire(self, key: str) -> None:
        for limiter in self._limiters:
            await limiter.acquire(key)
