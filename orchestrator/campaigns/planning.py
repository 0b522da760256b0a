"""When a campaign step is due for one contact (DESIGN section 7). Pure: `now` is passed in.

Every instant returned is in UTC, and every length is added in UTC: Python adds a timedelta to an
aware local datetime as wall-clock time, which across a daylight-saving jump would make "24 hours"
last 23 or 25 (see policy/window.py).

Two kinds of step:
- fixed delay (`{"after": d}`): due `d` after the previous step reached a final state for the
  contact (sent, skipped, failed...); step 1 counts from the run's start.
- window-relative (`{"before_window_closes": m}`): due at (last window-opening event + 24h - m),
  re-planned whenever the person interacts again. With no open window it is due at once and its
  fallback applies. Allowed on step 1 too.

A send window (`fit_send_window`) then defers a fixed-delay step to its next opening, and moves a
window-relative step earlier, to the last allowed minute, or gives up so that the fallback applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from orchestrator.campaigns.spec import DEFAULT_ZONE, SendWindowSpec, Step
from orchestrator.policy.send_window import SendWindow
from orchestrator.policy.window import window_closes_at

_MINUTE = timedelta(minutes=1)
# A send window opens at least once per local day (start != end), so its last open minute before
# any instant lies within a day plus a daylight-saving shift.
_LOOKBACK_MINUTES = 26 * 60

DueReason = Literal["delay", "window_end", "window_closing", "no_window"]


@dataclass(frozen=True)
class Due:
    """When a step is due for one contact, and why.

    - `delay`: a fixed-delay step, `after` past the previous step's final state (or the run start).
    - `window_end`: a window-relative step, at the window's end minus the margin.
    - `window_closing`: a window-relative step planned inside its margin (the window is still
      open but end minus margin has passed): due at once, still on Messenger.
    - `no_window`: a window-relative step for a contact without an open window: due at once,
      and the step's fallback applies (`fallback_applies`).
    """

    due_at: datetime
    reason: DueReason

    @property
    def fallback_applies(self) -> bool:
        return self.reason == "no_window"


def contact_send_window(
    spec: SendWindowSpec | None, *, zone: str | None = None
) -> SendWindow | None:
    """The campaign's send window in the contact's zone (Asia/Ho_Chi_Minh when it has none)."""
    if spec is None:
        return None
    return spec.in_zone(zone or DEFAULT_ZONE)


def first_due(step: Step, *, run_started_at: datetime) -> datetime:
    """The instant step 1 of a run becomes due for a contact, from the run's start.

    For a fixed delay that is the start plus the delay. A window-relative step 1 becomes
    eligible at the run's start; its actual due time depends on the contact's window, so the
    caller then asks `next_due(step, previous_final_at=run_started_at, ...)`.
    """
    start = run_started_at.astimezone(UTC)
    if step.delay.window_relative:
        return start
    return start + step.delay.length


def next_due(
    step: Step,
    *,
    previous_final_at: datetime,
    last_window_event_at: datetime | None,
    now: datetime,
) -> Due:
    """When `step` is due, planned at `now` (for step 1, pass the run's start as
    `previous_final_at`).

    - Fixed delay: `previous_final_at + after`, even if that is already past (a late planner
      sends at once; the caller claims due rows with `due_at <= now`). The window is ignored:
      the policy picks the route at send time.
    - Window-relative, window open at `now` (strictly before event + 24h): due at
      event + 24h - margin; if that is at or before `now` (planned inside the margin) it is due
      at `now`, reason `window_closing`.
    - Window-relative, no window event or the window closed at or before `now` (the bound is
      exclusive): due at `now`, reason `no_window`, and the fallback applies.
    """
    if not step.delay.window_relative:
        return Due(previous_final_at.astimezone(UTC) + step.delay.length, "delay")
    return _window_due(step, last_window_event_at=last_window_event_at, now=now)


def replan_on_interaction(
    step: Step, *, current: Due, new_window_event_at: datetime, now: datetime
) -> Due:
    """The person interacted again (a message, a postback, a referral): the window restarts.

    A window-relative step moves to the new window's end minus its margin (a step that had no
    window, whose fallback was pending, gets a window again). A fixed-delay step keeps `current`:
    its delay counts from the previous step, not from the person. An event older than the window
    `current` was planned from would move the step earlier; the caller passes the latest event.
    """
    if not step.delay.window_relative:
        return current
    return _window_due(step, last_window_event_at=new_window_event_at, now=now)


def _window_due(step: Step, *, last_window_event_at: datetime | None, now: datetime) -> Due:
    now = now.astimezone(UTC)
    closes_at = window_closes_at(last_window_event_at)
    if closes_at is None or closes_at <= now:
        return Due(now, "no_window")
    due_at = closes_at - step.delay.length
    if due_at <= now:
        return Due(now, "window_closing")
    return Due(due_at, "window_end")


def fit_send_window(
    due_at: datetime,
    send_window: SendWindow | None,
    *,
    window_relative: bool,
    now: datetime,
    messenger_window_closes_at: datetime | None = None,
) -> datetime | None:
    """Move `due_at` into the send window, or None when the step's fallback applies instead.

    - No send window, or `due_at` inside it (start inclusive, end exclusive): `due_at`.
    - Fixed-delay step outside it: the next opening (`SendWindow.next_opening`), which on a
      spring-forward day may be the jump itself when `start` falls in the gap.
    - Window-relative step outside it: the last allowed minute before `due_at` (the end of the
      most recent send-window period, minus one minute: "21:00" gives 20:59), provided that is at
      or after `now` and strictly before `messenger_window_closes_at`. If that minute has passed
      but `now` is inside the send window (so before `due_at` and within that same period), `now`.
      Otherwise None: the Messenger window cannot be used inside the send window, and the fallback
      applies. A missing `messenger_window_closes_at` means no window: None.

    The last allowed minute is found on the minute grid in UTC; send-window bounds are whole
    local minutes and real zone offsets are whole minutes, so the grid lines up with wall time.
    """
    due_at = due_at.astimezone(UTC)
    if send_window is None or send_window.contains(due_at):
        return due_at
    if not window_relative:
        return send_window.next_opening(due_at)
    if messenger_window_closes_at is None:
        return None
    candidate = _last_open_minute_before(due_at, send_window)
    if candidate < now:
        if not (send_window.contains(now) and now < due_at):
            return None
        candidate = now.astimezone(UTC)
    return candidate if candidate < messenger_window_closes_at else None


def _last_open_minute_before(at: datetime, send_window: SendWindow) -> datetime:
    minute = at.replace(second=0, microsecond=0)
    # `at` is outside the window and the window's bounds are whole minutes, so the minute `at`
    # falls in is outside too: start one earlier.
    for _ in range(_LOOKBACK_MINUTES):
        minute -= _MINUTE
        if send_window.contains(minute):
            return minute
    raise AssertionError("a send window opens at least once a day")  # pragma: no cover
