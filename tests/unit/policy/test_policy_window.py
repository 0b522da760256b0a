"""Window arithmetic at its exact boundaries (every bound is exclusive)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.policy import (
    HUMAN_AGENT_WINDOW,
    STANDARD_WINDOW,
    human_agent_open,
    human_agent_until,
    window_closes_at,
    window_open,
)
from orchestrator.policy.window import still_before

EVENT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def test_lengths_are_24_hours_and_7_days() -> None:
    assert timedelta(hours=24) == STANDARD_WINDOW
    assert timedelta(days=7) == HUMAN_AGENT_WINDOW


def test_window_open_at_23_59_59_999() -> None:
    assert window_open(EVENT, EVENT + timedelta(hours=23, minutes=59, seconds=59, milliseconds=999))


def test_window_closed_at_24_00_00() -> None:
    assert not window_open(EVENT, EVENT + timedelta(hours=24))


def test_window_open_at_the_event_itself() -> None:
    assert window_open(EVENT, EVENT)


def test_no_event_no_window() -> None:
    assert not window_open(None, EVENT)
    assert window_closes_at(None) is None


def test_window_closes_24_hours_after_the_event() -> None:
    assert window_closes_at(EVENT) == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_window_length_can_come_from_a_profile() -> None:
    assert window_closes_at(EVENT, length=timedelta(days=7)) == EVENT + timedelta(days=7)
    assert window_open(EVENT, EVENT + timedelta(days=2), length=timedelta(days=7))


def test_human_agent_open_one_millisecond_before_7_days() -> None:
    assert human_agent_open(EVENT, EVENT + 7 * timedelta(days=1) - MS)


def test_human_agent_closed_at_exactly_7_days() -> None:
    assert not human_agent_open(EVENT, EVENT + timedelta(days=7))


def test_human_agent_until() -> None:
    assert human_agent_until(EVENT) == datetime(2026, 3, 8, 8, 30, tzinfo=UTC)
    assert human_agent_until(None) is None
    assert not human_agent_open(None, EVENT)


def test_window_arithmetic_is_absolute_time_not_wall_clock() -> None:
    # 24h after 12:00 Berlin on the eve of the spring-forward jump is 13:00 local, not 12:00:
    # aware-datetime arithmetic in Python is wall-clock arithmetic unless done in UTC.
    berlin = ZoneInfo("Europe/Berlin")
    event = datetime(2026, 3, 28, 12, 0, tzinfo=berlin)
    closes = window_closes_at(event)
    assert closes is not None
    assert closes.astimezone(berlin).hour == 13
    assert window_open(event, datetime(2026, 3, 29, 12, 30, tzinfo=berlin))
    assert not window_open(event, datetime(2026, 3, 29, 13, 0, tzinfo=berlin))


def test_human_agent_limit_is_absolute_time_across_a_jump() -> None:
    # 7 days after 12:00 CET on Mar 25 is 13:00 CEST on Apr 1 (Berlin springs forward on Mar 29).
    berlin = ZoneInfo("Europe/Berlin")
    last_message = datetime(2026, 3, 25, 12, 0, tzinfo=berlin)
    assert human_agent_until(last_message) == datetime(2026, 4, 1, 11, 0, tzinfo=UTC)
    assert human_agent_open(last_message, datetime(2026, 4, 1, 12, 59, tzinfo=berlin))
    assert not human_agent_open(last_message, datetime(2026, 4, 1, 13, 0, tzinfo=berlin))


def test_still_before() -> None:
    assert still_before(EVENT, EVENT + MS)
    assert not still_before(EVENT, EVENT)
    assert not still_before(EVENT, None)
