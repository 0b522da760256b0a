"""Step timing for one contact: delays, window-relative steps, send windows, DST and midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.campaigns.planning import (
    Due,
    contact_send_window,
    first_due,
    fit_send_window,
    next_due,
    replan_on_interaction,
)
from orchestrator.campaigns.spec import SendWindowSpec, Step
from orchestrator.policy.send_window import SendWindow

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: spring forward Mar 29 02:00, fall back Oct 25 03:00
SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")  # UTC+7, no DST


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def after(duration: str) -> Step:
    return Step.model_validate(
        {"delay": {"after": duration}, "messenger": {"text": "x"}, "fallback": "skip"}
    )


def before_close(margin: str) -> Step:
    return Step.model_validate(
        {
            "delay": {"before_window_closes": margin},
            "messenger": {"text": "x"},
            "fallback": "wait_for_window",
        }
    )


def window(start: str, end: str, zone: str = "Asia/Ho_Chi_Minh") -> SendWindow:
    return SendWindow.parse(start=start, end=end, zone=zone)


# --- first_due and fixed delays -------------------------------------------------------------------


def test_first_due_fixed_delay_counts_from_run_start_in_utc() -> None:
    start = local(SAIGON, 2026, 12, 1, 9)
    assert first_due(after("90m"), run_started_at=start) == utc(2026, 12, 1, 3, 30)


def test_first_due_window_relative_is_eligible_at_run_start() -> None:
    start = local(SAIGON, 2026, 12, 1, 9)
    assert first_due(before_close("1h"), run_started_at=start) == utc(2026, 12, 1, 2)


def test_fixed_delay_counts_from_previous_final_state() -> None:
    due = next_due(
        after("2h"),
        previous_final_at=utc(2026, 5, 1, 10),
        last_window_event_at=None,
        now=utc(2026, 5, 1, 10),
    )
    assert due == Due(utc(2026, 5, 1, 12), "delay")
    assert not due.fallback_applies


def test_fixed_delay_ignores_window_and_may_be_past() -> None:
    due = next_due(
        after("1h"),
        previous_final_at=utc(2026, 5, 1, 10),
        last_window_event_at=utc(2026, 5, 1, 9),
        now=utc(2026, 5, 2),
    )
    assert due.due_at == utc(2026, 5, 1, 11)


def test_one_day_delay_across_spring_forward_is_24_real_hours() -> None:
    previous = local(BERLIN, 2026, 3, 28, 12)  # CET, 11:00 UTC
    due = next_due(after("1d"), previous_final_at=previous, last_window_event_at=None, now=previous)
    assert due.due_at == utc(2026, 3, 29, 11)
    assert due.due_at.astimezone(BERLIN).hour == 13  # wall clock moved an hour


def test_one_day_delay_across_fall_back_is_24_real_hours() -> None:
    previous = local(BERLIN, 2026, 10, 24, 12)  # CEST, 10:00 UTC
    due = next_due(after("1d"), previous_final_at=previous, last_window_event_at=None, now=previous)
    assert due.due_at == utc(2026, 10, 25, 10)
    assert due.due_at.astimezone(BERLIN).hour == 11


# --- window-relative steps ------------------------------------------------------------------------

EVENT = utc(2026, 6, 1, 8)


def plan(margin: str, now: datetime, event: datetime | None = EVENT) -> Due:
    return next_due(
        before_close(margin), previous_final_at=EVENT, last_window_event_at=event, now=now
    )


def test_window_relative_due_at_window_end_minus_margin() -> None:
    assert plan("1h", now=EVENT) == Due(utc(2026, 6, 2, 7), "window_end")


def test_window_relative_inside_margin_is_due_at_once_on_messenger() -> None:
    now = utc(2026, 6, 2, 7, 30)
    due = plan("1h", now=now)
    assert due == Due(now, "window_closing")
    assert not due.fallback_applies


def test_window_relative_exactly_at_end_minus_margin_is_closing() -> None:
    now = utc(2026, 6, 2, 7)
    assert plan("1h", now=now) == Due(now, "window_closing")


def test_window_relative_just_before_close_is_still_open() -> None:
    now = utc(2026, 6, 2, 8) - timedelta(microseconds=1)
    assert plan("1h", now=now).reason == "window_closing"


def test_window_relative_exactly_at_close_has_no_window() -> None:
    now = utc(2026, 6, 2, 8)
    due = plan("1h", now=now)
    assert due == Due(now, "no_window")
    assert due.fallback_applies


def test_window_relative_without_any_event_falls_back_at_once() -> None:
    now = utc(2026, 6, 5)
    assert plan("1h", now=now, event=None) == Due(now, "no_window")


def test_window_relative_across_spring_forward_in_utc() -> None:
    event = local(BERLIN, 2026, 3, 28, 20)  # 19:00 UTC; closes 19:00 UTC = 21:00 CEST
    due = plan("1h", now=event, event=event)
    assert due.due_at == utc(2026, 3, 29, 18)
    assert due.due_at.astimezone(BERLIN).hour == 20


def test_window_relative_across_fall_back_in_utc() -> None:
    event = local(BERLIN, 2026, 10, 24, 20)  # 18:00 UTC
    due = plan("30m", now=event, event=event)
    assert due.due_at == utc(2026, 10, 25, 17, 30)
    assert due.due_at.astimezone(BERLIN).hour == 18


def test_replan_moves_window_relative_step_to_new_window() -> None:
    current = plan("1h", now=EVENT)
    new_event = utc(2026, 6, 2, 6)
    moved = replan_on_interaction(
        before_close("1h"), current=current, new_window_event_at=new_event, now=new_event
    )
    assert moved == Due(utc(2026, 6, 3, 5), "window_end")


def test_replan_gives_a_window_back_to_a_step_that_had_none() -> None:
    current = plan("2h", now=utc(2026, 6, 9), event=None)
    new_event = utc(2026, 6, 9, 1)
    moved = replan_on_interaction(
        before_close("2h"), current=current, new_window_event_at=new_event, now=new_event
    )
    assert moved == Due(utc(2026, 6, 9, 23), "window_end")
    assert not moved.fallback_applies


def test_replan_keeps_a_fixed_delay() -> None:
    current = Due(utc(2026, 6, 3), "delay")
    kept = replan_on_interaction(
        after("2d"), current=current, new_window_event_at=utc(2026, 6, 2), now=utc(2026, 6, 2)
    )
    assert kept is current


# --- send windows ---------------------------------------------------------------------------------


def test_contact_send_window_defaults_to_saigon() -> None:
    spec = SendWindowSpec(start="08:00", end="21:00")
    default = contact_send_window(spec)
    assert default is not None and default.zone == SAIGON
    berlin = contact_send_window(spec, zone="Europe/Berlin")
    assert berlin is not None and berlin.zone == BERLIN
    assert contact_send_window(None, zone="Europe/Berlin") is None


def test_no_send_window_keeps_due_time_in_utc() -> None:
    due = local(SAIGON, 2026, 6, 1, 23)
    assert fit_send_window(due, None, window_relative=True, now=due) == utc(2026, 6, 1, 16)


def test_inside_send_window_keeps_due_time() -> None:
    due = local(SAIGON, 2026, 6, 1, 8)  # start is inclusive
    result = fit_send_window(due, window("08:00", "21:00"), window_relative=False, now=due)
    assert result == due


def test_fixed_delay_outside_is_deferred_to_next_opening() -> None:
    due = local(SAIGON, 2026, 6, 1, 22)
    result = fit_send_window(due, window("08:00", "21:00"), window_relative=False, now=due)
    assert result == local(SAIGON, 2026, 6, 2, 8)


def test_fixed_delay_exactly_at_end_is_deferred() -> None:
    due = local(SAIGON, 2026, 6, 1, 21)  # end is exclusive
    result = fit_send_window(due, window("08:00", "21:00"), window_relative=False, now=due)
    assert result == local(SAIGON, 2026, 6, 2, 8)


def test_fixed_delay_deferred_into_window_across_midnight() -> None:
    due = local(SAIGON, 2026, 6, 1, 12)
    result = fit_send_window(due, window("21:00", "06:00"), window_relative=False, now=due)
    assert result == local(SAIGON, 2026, 6, 1, 21)


def test_fixed_delay_start_in_spring_forward_gap_opens_at_the_jump() -> None:
    due = utc(2026, 3, 29, 0, 30)  # 01:30 CET
    send = window("02:30", "05:00", "Europe/Berlin")
    result = fit_send_window(due, send, window_relative=False, now=due)
    assert result == utc(2026, 3, 29, 1)  # 03:00 CEST


def fit_relative(
    due: datetime,
    send: SendWindow,
    *,
    now: datetime,
    closes: datetime | None = None,
) -> datetime | None:
    return fit_send_window(
        due,
        send,
        window_relative=True,
        now=now,
        messenger_window_closes_at=closes or due + timedelta(hours=1),
    )


def test_window_relative_moves_to_last_allowed_minute() -> None:
    due = local(SAIGON, 2026, 6, 1, 23)
    result = fit_relative(due, window("08:00", "21:00"), now=local(SAIGON, 2026, 6, 1, 9))
    assert result == local(SAIGON, 2026, 6, 1, 20, 59)


def test_window_relative_exactly_at_end_moves_one_minute_back() -> None:
    due = local(SAIGON, 2026, 6, 1, 21)
    result = fit_relative(due, window("08:00", "21:00"), now=local(SAIGON, 2026, 6, 1, 9))
    assert result == local(SAIGON, 2026, 6, 1, 20, 59)


def test_window_relative_with_seconds_moves_to_whole_minute() -> None:
    due = local(SAIGON, 2026, 6, 1, 21) + timedelta(seconds=30)
    result = fit_relative(due, window("08:00", "21:00"), now=local(SAIGON, 2026, 6, 1, 9))
    assert result == local(SAIGON, 2026, 6, 1, 20, 59)


def test_window_relative_early_morning_moves_to_previous_evening() -> None:
    due = local(SAIGON, 2026, 6, 2, 3)
    result = fit_relative(due, window("08:00", "21:00"), now=local(SAIGON, 2026, 6, 1, 9))
    assert result == local(SAIGON, 2026, 6, 1, 20, 59)


def test_window_relative_across_midnight_window() -> None:
    due = local(SAIGON, 2026, 6, 2, 7)
    result = fit_relative(due, window("21:00", "06:00"), now=local(SAIGON, 2026, 6, 1, 22))
    assert result == local(SAIGON, 2026, 6, 2, 5, 59)


def test_window_relative_last_minute_passed_but_now_inside_sends_now() -> None:
    now = local(
        SAIGON,
        2026,
        6,
        1,
        20,
        59,
    ) + timedelta(seconds=30)
    due = local(SAIGON, 2026, 6, 1, 22)
    assert fit_relative(due, window("08:00", "21:00"), now=now) == now


def test_window_relative_last_minute_exactly_now_is_kept() -> None:
    now = local(SAIGON, 2026, 6, 1, 20, 59)
    due = local(SAIGON, 2026, 6, 1, 22)
    assert fit_relative(due, window("08:00", "21:00"), now=now) == now


def test_window_relative_last_minute_passed_and_now_outside_falls_back() -> None:
    now = local(SAIGON, 2026, 6, 1, 21, 30)
    due = local(SAIGON, 2026, 6, 1, 22)
    assert fit_relative(due, window("08:00", "21:00"), now=now) is None


def test_window_relative_last_minute_after_messenger_close_falls_back() -> None:
    due = local(SAIGON, 2026, 6, 1, 23)
    closes = local(SAIGON, 2026, 6, 1, 20, 59)  # exclusive bound
    result = fit_relative(
        due, window("08:00", "21:00"), now=local(SAIGON, 2026, 6, 1, 9), closes=closes
    )
    assert result is None


def test_window_relative_without_messenger_window_falls_back() -> None:
    due = local(SAIGON, 2026, 6, 1, 23)
    send = window("08:00", "21:00")
    assert fit_send_window(due, send, window_relative=True, now=due) is None


def test_window_relative_inside_send_window_is_kept() -> None:
    due = local(SAIGON, 2026, 6, 1, 20, 59)
    assert fit_relative(due, window("08:00", "21:00"), now=due) == due


def test_window_relative_spring_forward_day_in_berlin() -> None:
    due = local(BERLIN, 2026, 3, 29, 6)  # CEST, 04:00 UTC
    send = window("02:30", "05:00", "Europe/Berlin")
    result = fit_relative(due, send, now=utc(2026, 3, 28, 12))
    assert result == utc(2026, 3, 29, 2, 59)  # 04:59 CEST


def test_window_relative_repeated_hour_on_fall_back_day_in_berlin() -> None:
    # 02:00-03:00 happens twice on 2026-10-25; the second 02:00 (CET) reopens [00:00, 02:30).
    due = utc(2026, 10, 25, 2)  # 03:00 CET
    send = window("00:00", "02:30", "Europe/Berlin")
    result = fit_relative(due, send, now=utc(2026, 10, 24, 12))
    assert result == utc(2026, 10, 25, 1, 29)  # 02:29 CET, the second one


@pytest.mark.parametrize("zone", ["Asia/Ho_Chi_Minh", "Europe/Berlin"])
def test_last_allowed_minute_is_inside_the_window(zone: str) -> None:
    send = window("08:00", "21:00", zone)
    due = datetime(2026, 3, 29, 22, tzinfo=ZoneInfo(zone))
    result = fit_relative(due, send, now=due - timedelta(hours=20))
    assert result is not None
    assert send.contains(result)
    assert not send.contains(result + timedelta(minutes=1))
