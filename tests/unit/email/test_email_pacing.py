"""MessagePacer with a fake clock: spacing, burst, FIFO, no sleeping when under the rate."""

from __future__ import annotations

import asyncio

import pytest

from channels.email.pacing import MessagePacer


class FakeTime:
    """A clock that moves only when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def grants(pacer: MessagePacer, time: FakeTime, count: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        times.append(time.now)

    await asyncio.gather(*(one() for _ in range(count)))
    return times


async def test_spaces_grants_at_the_rate() -> None:
    time = FakeTime()
    pacer = MessagePacer(10, clock=time.clock, sleep=time.sleep)
    times = await grants(pacer, time, 5)
    assert times == pytest.approx([100.0, 100.1, 100.2, 100.3, 100.4])


async def test_burst_then_pace() -> None:
    time = FakeTime()
    pacer = MessagePacer(4, burst=3, clock=time.clock, sleep=time.sleep)
    times = await grants(pacer, time, 6)
    assert times[:3] == [100.0, 100.0, 100.0]
    assert times[3:] == pytest.approx([100.25, 100.5, 100.75])


async def test_no_wait_when_slower_than_the_rate() -> None:
    time = FakeTime()
    pacer = MessagePacer(2, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await pacer.acquire()
        time.now += 1.0
    assert time.sleeps == []


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="per_second"):
        MessagePacer(0)
    with pytest.raises(ValueError, match="burst"):
        MessagePacer(1, burst=0)


@pytest.mark.parametrize(
    ("rate", "burst", "count"), [(1, 1, 5), (7, 1, 40), (50, 5, 200), (300, 20, 400), (3, 10, 30)]
)
async def test_never_more_than_burst_plus_rate_times_span(
    rate: int, burst: int, count: int
) -> None:
    time = FakeTime()
    pacer = MessagePacer(rate, burst=burst, clock=time.clock, sleep=time.sleep)
    times = await grants(pacer, time, count)
    assert times == sorted(times)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - start) + 1e-6
    # And it is not slower than it must be: the last grant comes when the rate allows it.
    assert times[-1] - times[0] == pytest.approx(max(0, count - burst) / rate)
