"""Pure Messenger window arithmetic. Every bound is exclusive: at exactly +24h the window is closed.

Times are timezone-aware datetimes; the caller passes `now`. Lengths are added in UTC: Python adds a
timedelta to an aware datetime as wall-clock time, which across a daylight-saving jump would make
"24 hours" last 23 or 25.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Reference §1, [S1][S2]: a Page may message a person for 24 hours after their last qualifying action.
STANDARD_WINDOW = timedelta(hours=24)
# Reference §2 tag table, [S3]: HUMAN_AGENT up to 7 days after the person's message.
HUMAN_AGENT_WINDOW = timedelta(days=7)


def window_closes_at(
    last_window_event_at: datetime | None, *, length: timedelta = STANDARD_WINDOW
) -> datetime | None:
    if last_window_event_at is None:
        return None
    return last_window_event_at.astimezone(UTC) + length


def window_open(
    last_window_event_at: datetime | None,
    now: datetime,
    *,
    length: timedelta = STANDARD_WINDOW,
) -> bool:
    return still_before(now, window_closes_at(last_window_event_at, length=length))


def human_agent_until(
    last_user_message_at: datetime | None, *, length: timedelta = HUMAN_AGENT_WINDOW
) -> datetime | None:
    if last_user_message_at is None:
        return None
    return last_user_message_at.astimezone(UTC) + length


def human_agent_open(
    last_user_message_at: datetime | None,
    now: datetime,
    *,
    length: timedelta = HUMAN_AGENT_WINDOW,
) -> bool:
    return still_before(now, human_agent_until(last_user_message_at, length=length))


def still_before(now: datetime, deadline: datetime | None) -> bool:
    """True while `now` is strictly before `deadline`; a missing deadline has always passed."""
    return deadline is not None and now < deadline
