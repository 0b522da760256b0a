"""Sliding one-second send budget per Page (reference §7, [S7]: 300 calls/s, 10/s for audio/video)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = timedelta(seconds=1)


class SlidingWindowLimiter:
    """Admits at most `limit` calls in any window (now - 1 s, now]. Takes `now`; reads no clock."""

    def __init__(self, limit: int, window: timedelta = WINDOW) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._admitted: deque[datetime] = deque()

    def admit(self, now: datetime) -> bool:
        """Count this call and return True, or return False (not counted) when over budget."""
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if len(self._admitted) >= self.limit:
            return False
        self._admitted.append(now)
        return True

    def in_window(self, now: datetime) -> int:
        return sum(1 for at in self._admitted if at > now - self.window)
