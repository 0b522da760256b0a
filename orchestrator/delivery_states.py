"""The delivery state machine as one table (DESIGN section 7; h11 style). Pure.

    pending -> claimed -> sent | held | deferred | skipped | failed | cancelled
    held, deferred -> pending       (released, or due again)
    claimed -> pending              (lease expired, or a retryable error scheduled a new attempt)

Delivered, read and clicked are timestamps on the row, not states. Anything not in the table
raises `IllegalTransition`, so a bug cannot move a sent delivery back to pending and send it twice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class State(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    HELD = "held"
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Event(StrEnum):
    CLAIM = "claim"
    SEND = "send"
    HOLD = "hold"
    DEFER = "defer"
    SKIP = "skip"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"
    LEASE_EXPIRED = "lease_expired"
    RELEASE = "release"
    DUE = "due"


TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (State.PENDING, Event.CLAIM): State.CLAIMED,
    (State.PENDING, Event.CANCEL): State.CANCELLED,
    (State.CLAIMED, Event.SEND): State.SENT,
    (State.CLAIMED, Event.HOLD): State.HELD,
    (State.CLAIMED, Event.DEFER): State.DEFERRED,
    (State.CLAIMED, Event.SKIP): State.SKIPPED,
    (State.CLAIMED, Event.FAIL): State.FAILED,
    (State.CLAIMED, Event.CANCEL): State.CANCELLED,
    (State.CLAIMED, Event.RETRY): State.PENDING,
    (State.CLAIMED, Event.LEASE_EXPIRED): State.PENDING,
    (State.HELD, Event.RELEASE): State.PENDING,
    (State.HELD, Event.CANCEL): State.CANCELLED,
    (State.DEFERRED, Event.DUE): State.PENDING,
    (State.DEFERRED, Event.CANCEL): State.CANCELLED,
}
FINAL: Final = frozenset({State.SENT, State.SKIPPED, State.FAILED, State.CANCELLED})


class IllegalTransition(ValueError):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"a {state.value} delivery cannot {event.value}")
        self.state = state
        self.event = event


def transition(state: State | str, event: Event) -> State:
    current = State(state)
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(current, event) from None


def sources_of(event: Event) -> frozenset[State]:
    """The states an event may leave: the `WHERE state IN (...)` of a conditional update."""
    return frozenset(state for (state, ev) in TRANSITIONS if ev is event)
