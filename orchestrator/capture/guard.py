"""Per-process defences of the public capture endpoints: rate limits and rejection tallies.

Rate limits are the `limits` library's moving windows in process memory: exact for one process
(the SQLite default, `outreach serve`). A deployment with several API workers would give each
worker its own window; it would keep the windows in Redis or Memcached (`limits`' RedisStorage
with the same moving-window strategy and calls) or a database counter.

Rejections are tallied here and written to `capture_counters` at most every
`capture_counter_flush_seconds`: a flood of refused requests must not become a flood of writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from orchestrator.capture.client_ip import TrustedProxies
from orchestrator.settings import Settings


@dataclass(frozen=True)
class CaptureSettings:
    public_url: str
    cooling: timedelta
    min_fill: timedelta
    token_max_age: timedelta
    max_body_bytes: int
    flush_every: timedelta

    @classmethod
    def of(cls, settings: Settings) -> CaptureSettings:
        return cls(
            public_url=settings.public_url.rstrip("/"),
            cooling=timedelta(seconds=settings.capture_cooling_seconds),
            min_fill=timedelta(seconds=settings.capture_token_min_fill_seconds),
            token_max_age=timedelta(seconds=settings.capture_token_max_age_seconds),
            max_body_bytes=settings.capture_max_body_bytes,
            flush_every=timedelta(seconds=settings.capture_counter_flush_seconds),
        )


class RateLimits:
    """Named limit groups (`capture:ip`, `capture:form`, `token:ip`), each one or more moving
    windows ("20/minute;100/hour"), per key, with the maintained `limits` library.

    Its synchronous in-memory storage: a hit is a few microseconds under a lock, with no await
    (the async storage hops to a worker thread as it expires keys, which cost more CPU than a
    capture), and it forgets expired keys on its own."""

    def __init__(self, groups: dict[str, str]) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._groups = {name: limits.parse_many(spec) for name, spec in groups.items()}

    def hit(self, group: str, key: str) -> int | None:
        """Count one request; None when allowed, else the seconds to wait (for Retry-After).

        Every window of the group is tested before any counts the request, so a refused request
        counts in none (nothing awaits in between, so no other request interleaves). The wait is
        the window's length: an upper bound (a moving window never frees a slot later)."""
        items = self._groups[group]
        for item in items:
            if not self._limiter.test(item, group, key):
                return int(item.get_expiry())
        for item in items:
            # `test` and `hit` may disagree at a window's exact edge; `hit` decides.
            if not self._limiter.hit(item, group, key):
                return int(item.get_expiry())
        return None


@dataclass
class RejectionTally:
    """Counts of refused requests per (workspace, form, outcome), not yet written."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    flushed_at: datetime | None = None

    def add(self, workspace_id: str, form_id: str, outcome: str) -> None:
        self.counts[(workspace_id, form_id, outcome)] += 1

    def due(self, now: datetime, every: timedelta) -> bool:
        return bool(self.counts) and (self.flushed_at is None or now - self.flushed_at >= every)

    def drain(self, now: datetime) -> dict[tuple[str, str, str], int]:
        drained = dict(self.counts)
        self.counts.clear()
        self.flushed_at = now
        return drained


@dataclass
class CaptureGuard:
    settings: CaptureSettings
    rate_limits: RateLimits
    proxies: TrustedProxies
    tally: RejectionTally = field(default_factory=RejectionTally)

    @classmethod
    def of(cls, settings: Settings) -> CaptureGuard:
        return cls(
            settings=CaptureSettings.of(settings),
            rate_limits=RateLimits(
                {
                    "capture:ip": settings.capture_rate_per_ip,
                    "capture:form": settings.capture_rate_per_form,
                    "token:ip": settings.capture_token_rate_per_ip,
                    "confirm:ip": settings.capture_token_rate_per_ip,
                }
            ),
            proxies=TrustedProxies.parse(settings.trusted_proxies),
        )
