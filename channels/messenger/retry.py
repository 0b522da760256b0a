"""Retry schedule and wrapper for Send API calls, kept apart from the client.

`RetryPolicy.delay_after(attempt, error, random)` is pure: it says how long to wait before the next
attempt, or None to stop. The dispatcher can use it to record a next-attempt time on the delivery
row; `call_with_retry` uses it to wait in-process instead. Backoff is exponential with full jitter
(delay drawn uniformly from [0, min(cap, base * multiplier**(attempt-1))]), so a Page's many
senders hit by one 613 burst do not come back in lockstep.

Duplicates: a failure with `maybe_delivered` (a timeout after the request was written, a dropped
connection, a temporary #1/#2/#1200 or 5xx) may hide an accepted message. Before resending such a
failure, `call_with_retry` awaits the caller's `already_sent()` hook, which should look for the
`message_echoes` event carrying this delivery's id in `message.metadata` and return its mid. The
hook runs after the backoff wait, which gives the echo time to arrive. Without a hook the send is
retried anyway: sends are at-least-once (DESIGN section 8) and a duplicate is counted, not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from channels.messenger.errors import MessengerError

log = logging.getLogger(__name__)

AlreadySent = Callable[[], Awaitable[str | None]]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try; `max_delay` bounds any single wait, including one asked
    for by a rate-limit header (longer waits give up so the caller can reschedule instead)."""

    max_attempts: int = 5
    base: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("base, cap and max_delay must be >= 0 and multiplier >= 1")

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """Full-jitter wait after failed attempt number `attempt` (1-based); `random()` in [0, 1)."""
        ceiling = min(self.cap, self.base * self.multiplier ** (attempt - 1))
        return ceiling * random()

    def delay_after(
        self, attempt: int, error: MessengerError, random: Callable[[], float]
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when the error is final."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, random)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if delay > self.max_delay:
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class RetryOutcome(Generic[T]):
    """What `call_with_retry` got: the call's value, or the mid reported by `already_sent`."""

    value: T | None
    already_sent_mid: str | None
    attempts: int


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    random: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    already_sent: AlreadySent | None = None,
) -> RetryOutcome[T]:
    """Run `call` until it succeeds, the error is final, or the policy gives up (re-raising the
    last error). Before resending after a `maybe_delivered` failure, `already_sent` is consulted;
    if it returns a message id, that is the outcome and nothing is resent."""
    attempt = 1
    while True:
        try:
            return RetryOutcome(value=await call(), already_sent_mid=None, attempts=attempt)
        except MessengerError as error:
            delay = policy.delay_after(attempt, error, random)
            if delay is None:
                raise
            # INFO, not WARNING: a 613 burst retries thousands of sends; the final error is what
            # the caller records.
            log.info(
                "Messenger call failed (%s code=%s subcode=%s), attempt %d, retrying in %.2fs",
                error.error_class.value,
                error.code,
                error.subcode,
                attempt,
                delay,
            )
            await sleep(delay)
            if error.maybe_delivered and already_sent is not None:
                mid = await already_sent()
                if mid is not None:
                    return RetryOutcome(value=None, already_sent_mid=mid, attempts=attempt)
            attempt += 1
