"""Campaign send windows in the contact's zone: midnight crossings and daylight-saving jumps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policy import SendWindow

NEW_YORK = "America/New_York"  # 2026: spring forward Mar 8 02:00, fall back Nov 1 02:00


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def window(start: str, end: str, zone: str = "Asia/Ho_Chi_Minh") -> SendWindow:
    return SendWindow.parse(start=start, end=end, zone=zone)


# --- parsing --------------------------------------------------------------------------------------


def test_parse() -> None:
    parsed = window("08:00", "21:30")
    assert parsed == SendWindow(time(8, 0), time(21, 30), ZoneInfo("Asia/Ho_Chi_Minh"))


@pytest.mark.parametrize("value", ["8:00", "24:00", "08:60", "0800", "08:00:00", "", " 08:00"])
def test_parse_refuses_malformed_times(value: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        window(value, "21:00")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../etc/passwd", ""])
def test_parse_refuses_unknown_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        window("08:00", "21:00", zone)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="start != end"):
        window("08:00", "08:00")


# --- containment ----------------------------------------------------------------------------------


def test_start_is_inside_and_end_is_outside() -> None:
    daytime = window("08:00", "21:00")  # Ho Chi Minh City is UTC+7 all year
    assert daytime.contains(utc(2026, 6, 1, 1, 0))
    assert daytime.contains(utc(2026, 6, 1, 13, 59, 59))
    assert not daytime.contains(utc(2026, 6, 1, 14, 0))
    assert not daytime.contains(utc(2026, 6, 1, 0, 59, 59))


def test_window_crossing_midnight() -> None:
    night = window("21:00", "06:00")
    assert night.contains(utc(2026, 6, 1, 14, 0))  # 21:00 local
    assert night.contains(utc(2026, 6, 1, 17, 0))  # 00:00 local
    assert night.contains(utc(2026, 6, 1, 22, 59))  # 05:59 local
    assert not night.contains(utc(2026, 6, 1, 23, 0))  # 06:00 local
    assert not night.contains(utc(2026, 6, 1, 5, 0))  # 12:00 local


# --- next opening ---------------------------------------------------------------------------------


def test_inside_the_window_the_next_opening_is_now() -> None:
    at = datetime(2026, 6, 1, 10, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert window("08:00", "21:00").next_opening(at) == utc(2026, 6, 1, 3, 0)


def test_before_the_start_it_opens_the_same_day() -> None:
    assert window("08:00", "21:00").next_opening(utc(2026, 6, 1, 0, 0)) == utc(2026, 6, 1, 1, 0)


def test_after_the_end_it_opens_the_next_day() -> None:
    assert window("08:00", "21:00").next_opening(utc(2026, 6, 1, 14, 0)) == utc(2026, 6, 2, 1, 0)


def test_a_midnight_crossing_window_opens_in_the_evening() -> None:
    assert window("21:00", "06:00").next_opening(utc(2026, 6, 1, 5, 0)) == utc(2026, 6, 1, 14, 0)


def test_spring_forward_gap_opens_the_window_at_the_jump() -> None:
    # 02:30 does not exist on Mar 8; from 03:00 EDT (07:00 UTC) the wall clock is past 02:30.
    early = window("02:30", "05:00", NEW_YORK)
    assert early.next_opening(utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 7, 0)


def test_a_window_inside_the_gap_waits_for_the_next_day() -> None:
    lost = window("02:10", "02:40", NEW_YORK)
    assert lost.next_opening(utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 9, 6, 10)


def test_ordinary_start_on_a_spring_forward_day() -> None:
    # 08:00 EDT is 12:00 UTC; the day before it was 13:00 UTC.
    morning = window("08:00", "21:00", NEW_YORK)
    assert morning.next_opening(utc(2026, 3, 7, 2, 0)) == utc(2026, 3, 7, 13, 0)
    assert morning.next_opening(utc(2026, 3, 8, 2, 0)) == utc(2026, 3, 8, 12, 0)


def test_fall_back_repeats_the_hour_and_opens_the_window_again() -> None:
    # 01:15-01:30 happens twice on Nov 1: at 05:15 UTC (EDT) and at 06:15 UTC (EST).
    repeated = window("01:15", "01:30", NEW_YORK)
    assert repeated.next_opening(utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 5, 15)
    assert repeated.next_opening(utc(2026, 11, 1, 5, 40)) == utc(2026, 11, 1, 6, 15)
    assert repeated.next_opening(utc(2026, 11, 1, 6, 40)) == utc(2026, 11, 2, 6, 15)


def test_fall_back_jump_itself_can_open_the_window() -> None:
    # At 06:00 UTC the wall clock falls from 01:59:59 EDT back to 01:00 EST, inside 00:30-01:30.
    small_hours = window("00:30", "01:30", NEW_YORK)
    assert small_hours.next_opening(utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 1, 6, 0)


def test_half_hour_daylight_saving() -> None:
    # Lord Howe Island falls back 30 minutes on 2026-04-05 at 02:00 (+11:00 -> +10:30).
    lord_howe = window("01:40", "01:50", "Australia/Lord_Howe")
    # First 01:40 is 14:40 UTC on Apr 4; after 01:50 (+11) the clock returns to 01:30 (+10:30).
    assert lord_howe.next_opening(utc(2026, 4, 4, 14, 55)) == utc(2026, 4, 4, 15, 10)


# --- against a brute-force oracle -----------------------------------------------------------------

DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]
TRANSITIONS = [
    utc(2026, 3, 8, 7, 0),  # New York spring forward
    utc(2026, 11, 1, 6, 0),  # New York fall back
    utc(2026, 3, 29, 1, 0),  # Berlin spring forward
    utc(2026, 10, 25, 1, 0),  # Berlin fall back
    utc(2026, 4, 4, 15, 0),  # Lord Howe fall back (30 min)
    utc(2026, 10, 3, 15, 30),  # Lord Howe spring forward (30 min)
    utc(2026, 4, 5, 3, 0),  # Santiago fall back (at local midnight)
    utc(2026, 9, 6, 4, 0),  # Santiago spring forward (local midnight does not exist)
]


def brute_force_opening(send_window: SendWindow, at: datetime) -> datetime:
    if send_window.contains(at):
        return at
    # Starts and offsets are whole minutes, so the window can only open on a whole UTC minute.
    candidate = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while not send_window.contains(candidate):
        candidate += timedelta(minutes=1)
    return candidate


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(DST_ZONES),
    start=st.integers(0, 24 * 60 - 1),
    length=st.integers(1, 24 * 60 - 1),
    anchor=st.sampled_from(TRANSITIONS),
    offset=st.integers(-36 * 3600, 36 * 3600),
)
def test_next_opening_matches_a_minute_by_minute_scan(
    zone: str, start: int, length: int, anchor: datetime, offset: int
) -> None:
    end = (start + length) % (24 * 60)
    send_window = SendWindow(
        time(start // 60, start % 60), time(end // 60, end % 60), ZoneInfo(zone)
    )
    at = anchor + timedelta(seconds=offset, microseconds=offset % 7 * 1000)
    opening = send_window.next_opening(at)
    assert opening == brute_force_opening(send_window, at)
    assert opening >= at
    assert send_window.contains(opening)
