"""Who may be messaged when: the per-(Page, PSID) window rules Meta enforces (reference §1, §2).

Pure: a `ThreadState` and `now` in, a new state or a `GraphError | None` out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from channels.sandbox.graph_errors import GraphError, outside_window
from channels.sandbox.send_validation import SendRequest

STANDARD_WINDOW = timedelta(hours=24)  # reference §1, [S1][S2]
HUMAN_AGENT_WINDOW = timedelta(days=7)  # reference §2 tags table, [S3]
CUSTOMER_FEEDBACK_WINDOW = timedelta(days=7)  # reference §2 tags table, [S3][S29]
CLICK_TO_MESSENGER_WINDOW = timedelta(days=7)  # reference §1, [S1] ("may last up to 7 days")


@dataclass(frozen=True)
class ThreadState:
    """What Meta knows about one person's thread with one Page."""

    window_opened_at: datetime | None = None
    last_person_message_at: datetime | None = None
    ad_window_until: datetime | None = None
    person_messages: int = 0


def _later(current: datetime | None, candidate: datetime) -> datetime:
    # Events may arrive out of order (reference §1, [S8]); state only moves forward.
    return candidate if current is None or candidate > current else current


def record_inbound(
    state: ThreadState,
    at: datetime,
    *,
    opens_window: bool,
    is_message: bool,
    from_ad: bool = False,
    click_to_messenger_window: bool = True,
) -> ThreadState:
    """The person did something at `at`; return the thread as Meta would now see it."""
    new = state
    if opens_window:
        new = replace(new, window_opened_at=_later(new.window_opened_at, at))
    if is_message:
        if from_ad and click_to_messenger_window and new.person_messages == 0:
            # reference §1: the first message after a Click-to-Messenger ad opens up to 7 days [S1].
            new = replace(new, ad_window_until=at + CLICK_TO_MESSENGER_WINDOW)
        new = replace(
            new,
            last_person_message_at=_later(new.last_person_message_at, at),
            person_messages=new.person_messages + 1,
        )
    return new


def window_open(state: ThreadState, now: datetime) -> bool:
    """Inside the standard 24 h window (or a Click-to-Messenger 7-day one)."""
    if state.window_opened_at is not None and now < state.window_opened_at + STANDARD_WINDOW:
        return True
    return state.ad_window_until is not None and now < state.ad_window_until


def check_psid_send(state: ThreadState, request: SendRequest, now: datetime) -> GraphError | None:
    """Refusal for a send to a PSID at `now`, or None when Meta would accept it."""
    if request.messaging_type == "MESSAGE_TAG":
        # Validation let only HUMAN_AGENT and CUSTOMER_FEEDBACK through; both count 7 days from the
        # person's last message, not from the last window-opening event (reference §2, [S3]).
        limit = HUMAN_AGENT_WINDOW if request.tag == "HUMAN_AGENT" else CUSTOMER_FEEDBACK_WINDOW
        last = state.last_person_message_at
        if last is not None and now < last + limit:
            return None
        return outside_window()
    if window_open(state, now):
        return None
    return outside_window()
