"""The moving-window rate limits of the public capture endpoints (guard.RateLimits, over the
`limits` library's in-memory storage), on a placed clock: the storage reads `time.time()`."""

from __future__ import annotations

import limits.storage.memory
import pytest

from orchestrator.capture.guard import RateLimits


class Clock:
    """Stands in for the `time` module the library's storage reads."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    placed = Clock()
    monkeypatch.setattr(limits.storage.memory, "time", placed)
    return placed


def test_a_window_allows_its_amount_then_refuses_with_its_length_until_the_oldest_hit_leaves(
    clock: Clock,
) -> None:
    limits = RateLimits({"capture:ip": "3/minute"})
    for _ in range(3):
        assert limits.hit("capture:ip", "203.0.113.5") is None
        clock.now += 10
    assert limits.hit("capture:ip", "203.0.113.5") == 60
    assert limits.hit("capture:ip", "198.51.100.7") is None  # another key, its own window
    clock.now = 1000.0 + 60.5  # the first hit (at 1000) left the window, the others have not
    assert limits.hit("capture:ip", "203.0.113.5") is None
    assert limits.hit("capture:ip", "203.0.113.5") == 60


def test_refused_requests_are_not_counted(clock: Clock) -> None:
    limits = RateLimits({"g": "1/second"})
    assert limits.hit("g", "k") is None
    for _ in range(50):  # a flood while limited does not push the window forward
        clock.now += 0.01
        assert limits.hit("g", "k") == 1
    clock.now = 1001.01  # a hit exactly a window old still counts (the library's edge)
    assert limits.hit("g", "k") is None


def test_several_windows_in_one_group_all_hold_and_a_refusal_counts_in_none(
    clock: Clock,
) -> None:
    limits = RateLimits({"g": "2/second;3/minute"})
    assert limits.hit("g", "k") is None
    assert limits.hit("g", "k") is None
    assert limits.hit("g", "k") == 1  # the per-second window is full
    clock.now += 1.01
    assert limits.hit("g", "k") is None  # third of the minute
    clock.now += 1
    assert limits.hit("g", "k") == 60  # the minute is full; the second had room
    clock.now = 1000.0 + 60.5  # the first two hits left the minute
    assert limits.hit("g", "k") is None
    assert limits.hit("g", "k") is None
