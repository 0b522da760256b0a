"""Per-process defences of the public capture endpoints: rate limits and rejection tallies.

Rate limits use the maintained `limits` library with its async moving window in process memory.
That is exact for one process (the SQLite default, `outreach serve`). A deployment with several
API workers would give each worker its own window; it would use `limits`' Redis or Memcached
storage (`limits.aio.storage.RedisStorage`, same strategy, same calls) or a database counter.

Rejections are tallied here and written to `capture_counters` at most every
`capture_counter_flush_seconds`: a flood of refused requests must not become a flood of writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import limits
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

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
    """Named limit groups (`capture:ip`, `capture:form`, `token:ip`) over one moving window."""

    def __init__(self, groups: dict[str, str]) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._groups = {name: limits.parse_many(spec) for name, spec in groups.items()}

    async def hit(self, group: str, key: str) -> int | None:
        """Count one request; None when allowed, else the seconds to wait (for Retry-After).

        The wait is the window's length: an upper bound that needs no clock of ours (the library
        keeps its own), and a moving window never frees a slot later than that."""
        for item in self._groups[group]:
            if not await self._limiter.hit(item, group, key):
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
                }
            ),
            proxies=TrustedProxies.parse(settings.trusted_proxies),
        )
