"""Properties of step timing, over zones with and without daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.campaigns.planning import fit_send_window, next_due
from orchestrator.campaigns.spec import Step
from orchestrator.policy.send_window import SendWindow
from orchestrator.policy.window import STANDARD_WINDOW

# Minutes since 2025-01-01 UTC, through 2028: several DST transitions in every sampled zone.
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=4 * 366 * 24 * 3600).map(
    lambda seconds: _EPOCH + timedelta(seconds=seconds)
)
zones = st.sampled_from(["Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York"])
wall_minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


def hh_mm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def send_windows(draw: st.DrawFn) -> SendWindow:
    start = draw(wall_minutes)
    end = draw(wall_minutes.filter(lambda value: value != start))
    return SendWindow.parse(start=hh_mm(start), end=hh_mm(end), zone=draw(zones))


@settings(max_examples=200, deadline=None)
@given(
    event=instants,
    margin=st.integers(min_value=1, max_value=24 * 60 - 1),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=30)),
)
def test_window_relative_due_is_inside_the_window(
    event: datetime, margin: int, elapsed: timedelta
) -> None:
    step = Step.model_validate(
        {
            "delay": {"before_window_closes": f"{margin}m"},
            "messenger": {"text": "x"},
            "fallback": "wait_for_window",
        }
    )
    now = event + elapsed
    due = next_due(step, previous_final_at=event, last_window_event_at=event, now=now)
    assert due.due_at >= now
    if due.fallback_applies:
        assert now >= event + STANDARD_WINDOW
    else:
        assert event <= due.due_at < event + STANDARD_WINDOW


@settings(max_examples=150, deadline=None)
@given(send=send_windows(), due=instants)
def test_deferred_fixed_delay_is_inside_and_not_earlier(send: SendWindow, due: datetime) -> None:
    result = fit_send_window(due, send, window_relative=False, now=due)
    assert result is not None
    assert result >= due
    assert send.contains(result)


@settings(max_examples=150, deadline=None)
@given(
    send=send_windows(),
    due=instants,
    lead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=23)),
)
def test_moved_window_relative_is_inside_and_before_due(
    send: SendWindow, due: datetime, lead: timedelta
) -> None:
    now = due - lead
    closes = due + timedelta(hours=1)
    result = fit_send_window(
        due, send, window_relative=True, now=now, messenger_window_closes_at=closes
    )
    if result is not None:
        assert send.contains(result)
        assert now <= result <= due
        assert result < closes
