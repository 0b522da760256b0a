"""Messages-per-second pacing for one SMTP relay.

Relays and ESPs cap how fast an account may submit (per second or per minute), and a burst
above the cap is answered with 421/451/454 and throttling. `MessagePacer` spaces grants
`1 / per_second` apart with up to `burst` at once (a GCRA: it keeps the theoretical arrival time of
the next grant), so over any span of T seconds at most `burst + per_second * T` messages start.
Waiters are served in arrival order (an `asyncio.Lock` is FIFO) and only the head sleeps. The clock
and the sleep are injected.

This is a per-process limit: with several workers the relay's budget holds only while one of them
holds the relay's send lease (DESIGN section 8), or when each gets its share of the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class MessagePacer:
    def __init__(
        self,
        per_second: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.per_second = per_second
        self._interval = 1.0 / per_second
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._tat: float | None = None  # theoretical arrival time of the next grant
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Return when one more message may start."""
        async with self._lock:
            now = self._clock()
            tat = now if self._tat is None else max(self._tat, now)
            ready = tat - self._tolerance
            if ready > now:
                await self._sleep(ready - now)
            self._tat = tat + self._interval
