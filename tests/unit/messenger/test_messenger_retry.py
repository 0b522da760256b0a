from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.messenger.errors import (
    MessengerError,
    RateLimited,
    SendTimedOut,
    TemporaryFailure,
    WindowClosed,
)
from channels.messenger.retry import NO_RETRY, RetryPolicy, call_with_retry


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def top() -> float:
    """A `random()` at the top of its range, so a delay equals its ceiling."""
    return 1.0


@given(
    attempt=st.integers(min_value=1, max_value=60),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_full_jitter_stays_between_zero_and_the_capped_exponential(
    attempt: int, draw: float
) -> None:
    policy = RetryPolicy(base=0.5, multiplier=2.0, cap=30.0)
    delay = policy.backoff(attempt, lambda: draw)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (attempt - 1))


def test_backoff_ceilings_grow_then_cap() -> None:
    policy = RetryPolicy(base=1.0, multiplier=4.0, cap=20.0)
    assert [policy.backoff(n, top) for n in (1, 2, 3, 4)] == [1.0, 4.0, 16.0, 20.0]
    assert policy.backoff(3, lambda: 0.25) == 4.0


def test_delay_after_stops_on_final_errors_and_exhaustion() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay_after(1, WindowClosed("closed", code=10, subcode=2018278), top) is None
    assert policy.delay_after(1, MessengerError("unknown"), top) is None
    assert policy.delay_after(2, RateLimited("slow down", code=613), top) == 1.0
    assert policy.delay_after(3, RateLimited("slow down", code=613), top) is None
    assert NO_RETRY.delay_after(1, TemporaryFailure("boom"), top) is None


def test_delay_after_honours_retry_after_but_gives_up_beyond_max_delay() -> None:
    policy = RetryPolicy(max_delay=60.0)
    assert policy.delay_after(1, RateLimited("x", retry_after=45.0), top) == 45.0
    assert policy.delay_after(1, RateLimited("x", retry_after=120.0), top) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base": -1.0}, {"cap": -1.0}, {"multiplier": 0.5}, {"max_delay": -1.0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_call_with_retry_retries_retryable_errors_then_succeeds() -> None:
    failures: list[MessengerError] = [RateLimited("613", code=613), TemporaryFailure("5xx")]
    sleeps = Sleeps()

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "m_ok"

    outcome = await call_with_retry(call, policy=RetryPolicy(), random=top, sleep=sleeps)
    assert outcome.value == "m_ok"
    assert outcome.attempts == 3
    assert outcome.already_sent_mid is None
    assert sleeps.calls == [0.5, 1.0]


async def test_call_with_retry_raises_final_errors_at_once() -> None:
    sleeps = Sleeps()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise WindowClosed("closed", code=10, subcode=2018278)

    with pytest.raises(WindowClosed):
        await call_with_retry(call, policy=RetryPolicy(), random=top, sleep=sleeps)
    assert calls == 1
    assert sleeps.calls == []


async def test_call_with_retry_raises_the_last_error_when_exhausted() -> None:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise RateLimited(f"attempt {calls}", code=613)

    with pytest.raises(RateLimited, match="attempt 4"):
        await call_with_retry(call, policy=RetryPolicy(max_attempts=4), random=top, sleep=Sleeps())
    assert calls == 4


async def test_already_sent_is_asked_after_the_wait_and_stops_the_resend() -> None:
    events: list[str] = []

    async def sleep(seconds: float) -> None:
        events.append("sleep")

    async def already_sent() -> str | None:
        events.append("already_sent")
        return "m_from_echo"

    async def call() -> str:
        events.append("call")
        raise SendTimedOut("ReadTimeout", maybe_delivered=True)

    outcome = await call_with_retry(
        call, policy=RetryPolicy(), random=top, sleep=sleep, already_sent=already_sent
    )
    assert outcome.value is None
    assert outcome.already_sent_mid == "m_from_echo"
    assert events == ["call", "sleep", "already_sent"]


async def test_already_sent_not_asked_when_nothing_can_have_been_delivered() -> None:
    asked = 0
    failures: list[MessengerError] = [
        SendTimedOut("ConnectTimeout", maybe_delivered=False),
        RateLimited("613", code=613),
    ]

    async def already_sent() -> str | None:
        nonlocal asked
        asked += 1
        return "m_x"

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "m_ok"

    outcome = await call_with_retry(
        call, policy=RetryPolicy(), random=top, sleep=Sleeps(), already_sent=already_sent
    )
    assert outcome.value == "m_ok"
    assert asked == 0


async def test_already_sent_none_means_resend() -> None:
    failures: list[MessengerError] = [TemporaryFailure("1200", code=1200, maybe_delivered=True)]

    async def already_sent() -> str | None:
        return None

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "m_ok"

    outcome = await call_with_retry(
        call, policy=RetryPolicy(), random=top, sleep=Sleeps(), already_sent=already_sent
    )
    assert (outcome.value, outcome.attempts) == ("m_ok", 2)
