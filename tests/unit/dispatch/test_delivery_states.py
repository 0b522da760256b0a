from __future__ import annotations

import itertools

import pytest

from orchestrator.delivery_states import (
    FINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    sources_of,
    transition,
)


@pytest.mark.parametrize(
    ("state", "event", "target"), [(s, e, t) for (s, e), t in TRANSITIONS.items()]
)
def test_every_legal_transition(state: State, event: Event, target: State) -> None:
    assert transition(state, event) is target
    assert transition(state.value, event) is target


def test_everything_else_raises() -> None:
    illegal = [(s, e) for s, e in itertools.product(State, Event) if (s, e) not in TRANSITIONS]
    assert len(illegal) == len(State) * len(Event) - len(TRANSITIONS)
    for state, event in illegal:
        with pytest.raises(
            IllegalTransition, match=f"a {state.value} delivery cannot {event.value}"
        ):
            transition(state, event)


def test_final_states_never_move() -> None:
    for state in FINAL:
        assert not [e for e in Event if (state, e) in TRANSITIONS]


def test_a_sent_delivery_can_never_be_sent_again() -> None:
    with pytest.raises(IllegalTransition):
        transition(State.SENT, Event.RETRY)
    assert State.SENT not in sources_of(Event.CLAIM)


def test_sources_of_events() -> None:
    assert sources_of(Event.CANCEL) == {State.PENDING, State.CLAIMED, State.HELD, State.DEFERRED}
    assert sources_of(Event.CLAIM) == {State.PENDING}
    assert sources_of(Event.RELEASE) == {State.HELD}


def test_unknown_state_names_are_refused() -> None:
    with pytest.raises(ValueError, match="delivered"):
        transition("delivered", Event.SEND)
