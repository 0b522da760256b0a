"""The `Decision` value: its route follows its reason, its fields agree, `as_dict` is the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.policy import Decision, MessagingType, Reason, Route


def test_as_dict_has_the_reachability_and_preview_shape() -> None:
    decision = Decision(
        Reason.MESSENGER_HUMAN_AGENT, messaging_type=MessagingType.MESSAGE_TAG, tag="HUMAN_AGENT"
    )
    assert decision.as_dict() == {
        "route": "messenger",
        "reason": "messenger.human_agent",
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "token_id": None,
        "due_at": None,
        "refused_tag": None,
    }


def test_as_dict_of_a_deferral() -> None:
    due = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    assert Decision(Reason.DEFERRED_SEND_WINDOW, due_at=due).as_dict() == {
        "route": "none",
        "reason": "deferred.send_window",
        "messaging_type": None,
        "tag": None,
        "token_id": None,
        "due_at": "2026-06-02T01:00:00+00:00",
        "refused_tag": None,
    }


def test_route_follows_the_reason() -> None:
    assert Decision(Reason.EMAIL_HOLD_EXPIRED).route is Route.EMAIL
    assert Decision(Reason.HELD_UNTIL_WINDOW).route is Route.NONE


@pytest.mark.parametrize(
    "fields",
    [
        {"messaging_type": MessagingType.UPDATE},
        {"tag": "HUMAN_AGENT", "messaging_type": MessagingType.MESSAGE_TAG},
        {"token_id": "t1"},
    ],
)
def test_messenger_fields_only_on_messenger_routes(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Messenger's"):
        Decision(Reason.EMAIL_WINDOW_CLOSED, **fields)


def test_tag_needs_message_tag_type() -> None:
    with pytest.raises(ValueError, match="MESSAGE_TAG"):
        Decision(Reason.MESSENGER_TAG, messaging_type=MessagingType.UPDATE, tag="ACCOUNT_UPDATE")
    with pytest.raises(ValueError, match="MESSAGE_TAG"):
        Decision(Reason.MESSENGER_TAG, messaging_type=MessagingType.MESSAGE_TAG)


def test_due_at_only_on_a_deferral() -> None:
    with pytest.raises(ValueError, match="due_at"):
        Decision(Reason.DEFERRED_SEND_WINDOW)
    with pytest.raises(ValueError, match="due_at"):
        Decision(Reason.HELD_UNTIL_WINDOW, due_at=datetime(2026, 1, 1, tzinfo=UTC))
