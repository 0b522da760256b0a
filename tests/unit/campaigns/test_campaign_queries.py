"""The pure parts of the campaign read and write sides: reported status, stats tally, cursors,
trigger keys, and which delivery states a cancel touches."""

from __future__ import annotations

import pytest

from orchestrator.campaigns.control import CANCELLED_FROM, CANCELLED_TO, trigger_index
from orchestrator.campaigns.queries import decode_cursor, encode_cursor, reported_status, tally
from orchestrator.campaigns.spec import CampaignSpec
from orchestrator.delivery_states import State
from orchestrator.errors import ValidationFailed


@pytest.mark.parametrize(
    ("stored", "page_paused", "expected"),
    [
        ("running", False, ("running", None)),
        ("running", True, ("paused", "page_paused: bad token")),
        ("scheduled", True, ("paused", "page_paused: bad token")),
        ("paused", False, ("paused", "operator")),
        ("paused", True, ("paused", "operator")),
        ("draft", True, ("draft", None)),
        ("completed", True, ("completed", None)),
        ("cancelled", True, ("cancelled", None)),
    ],
)
def test_reported_status(stored: str, page_paused: bool, expected: tuple[str, str | None]) -> None:
    assert (
        reported_status(stored, page_paused=page_paused, page_paused_reason="bad token") == expected
    )


def test_tally_has_every_state_and_splits_reasons() -> None:
    counted = tally(
        [
            ("sent", "messenger.window", 3),
            ("sent", "email.window_closed", 2),
            ("skipped", "skipped.unsubscribed", 1),
            ("failed", None, 4),
            ("pending", None, 5),
        ]
    )
    assert counted["by_state"] == {
        "pending": 5, "claimed": 0, "sent": 5, "held": 0, "deferred": 0, "skipped": 1,
        "failed": 4, "cancelled": 0,
    }  # fmt: skip
    assert counted["sent"] == {"messenger.window": 3, "email.window_closed": 2}
    assert counted["skipped"] == {"skipped.unsubscribed": 1}
    assert counted["failed"] == {"unknown": 4}


def test_cursor_round_trip_and_refusals() -> None:
    assert decode_cursor(encode_cursor("2026-11-20T09:00:00+00:00", "cmp_1"), size=2) == [
        "2026-11-20T09:00:00+00:00",
        "cmp_1",
    ]
    for bad in ("", "!!", encode_cursor("only-one"), "bnVsbA"):
        with pytest.raises(ValidationFailed) as caught:
            decode_cursor(bad, size=2)
        assert caught.value.errors[0].field == "query.cursor"


def _spec(trigger: dict[str, str] | None) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "name": "n",
            "page_id": "1",
            "purpose": "promotional",
            "trigger": trigger,
            "steps": [{"delay": {"after": "0s"}, "messenger": {"text": "hi"}, "fallback": "skip"}],
        }
    )


def test_trigger_index() -> None:
    assert trigger_index(_spec(None)) == (None, None)
    assert trigger_index(_spec({"on": "captured", "form_id": "f"})) == ("captured", "f")
    assert trigger_index(_spec({"on": "tag_added", "tag": "vip"})) == ("tag_added", "vip")
    assert trigger_index(_spec({"on": "first_message", "page_id": "9"})) == (
        "first_message",
        "9",
    )


def test_cancel_leaves_claimed_rows_to_the_dispatcher() -> None:
    assert set(CANCELLED_FROM) == {"pending", "held", "deferred"}
    assert CANCELLED_TO is State.CANCELLED
