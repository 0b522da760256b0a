"""`decide_after_messenger_failure`: Meta refused a Messenger send; the fallback applies at once."""

from __future__ import annotations

import pytest

from orchestrator.policy import (
    Decision,
    EmailStatus,
    Fallback,
    MessengerFailure,
    Purpose,
    Reason,
    SendWindow,
    decide_after_messenger_failure,
)
from tests.unit.policy.policy_scenarios import (
    HOUR,
    NOW,
    closed_identity,
    context,
    human_reply,
    message,
    open_identity,
)

WINDOW_CLOSED = MessengerFailure.WINDOW_CLOSED
UNAVAILABLE = MessengerFailure.RECIPIENT_UNAVAILABLE


def test_window_closed_reroutes_to_email_even_when_our_record_said_open() -> None:
    # Reference section 6, [S5]: 10/2018278 is never retried on Messenger.
    ctx = context(messenger=open_identity())
    assert decide_after_messenger_failure(ctx, WINDOW_CLOSED) == Decision(
        Reason.EMAIL_WINDOW_CLOSED
    )


def test_recipient_unavailable_reroutes_to_email() -> None:
    ctx = context(messenger=open_identity())
    assert decide_after_messenger_failure(ctx, UNAVAILABLE) == Decision(
        Reason.EMAIL_RECIPIENT_UNAVAILABLE
    )


def test_recipient_unavailable_after_the_identity_was_dropped() -> None:
    # 100/2018001 "no matching user" drops the PSID; the reason still says what Meta answered.
    assert decide_after_messenger_failure(context(messenger=None), UNAVAILABLE).reason is (
        Reason.EMAIL_RECIPIENT_UNAVAILABLE
    )


@pytest.mark.parametrize("failure", list(MessengerFailure))
def test_wait_fallback_holds_after_a_failure(failure: MessengerFailure) -> None:
    ctx = context(messenger=open_identity(), msg=message(fallback=Fallback.WAIT_FOR_WINDOW))
    assert decide_after_messenger_failure(ctx, failure) == Decision(Reason.HELD_UNTIL_WINDOW)


def test_wait_fallback_past_its_deadline_emails() -> None:
    msg = message(fallback=Fallback.WAIT_FOR_WINDOW, hold_deadline=NOW - HOUR)
    ctx = context(messenger=open_identity(), msg=msg)
    assert decide_after_messenger_failure(ctx, WINDOW_CLOSED).reason is Reason.EMAIL_HOLD_EXPIRED


@pytest.mark.parametrize("failure", list(MessengerFailure))
def test_skip_fallback_after_a_failure(failure: MessengerFailure) -> None:
    ctx = context(messenger=open_identity(), msg=message(fallback=Fallback.SKIP))
    assert decide_after_messenger_failure(ctx, failure).reason is (
        Reason.SKIPPED_NO_REACHABLE_CHANNEL
    )


def test_reroute_respects_email_consent() -> None:
    ctx = context(messenger=open_identity(), email=EmailStatus.BOUNCED)
    assert decide_after_messenger_failure(ctx, UNAVAILABLE).reason is Reason.SKIPPED_BOUNCED


def test_a_stop_recorded_meanwhile_explains_more_than_the_failure() -> None:
    ctx = context(
        messenger=open_identity(stopped=True), msg=message(fallback=Fallback.WAIT_FOR_WINDOW)
    )
    assert decide_after_messenger_failure(ctx, UNAVAILABLE).reason is (
        Reason.SKIPPED_MESSENGER_STOPPED
    )


def test_a_takeover_recorded_meanwhile_stops_an_automated_reroute() -> None:
    ctx = context(messenger=open_identity(takeover_until=NOW + HOUR))
    assert decide_after_messenger_failure(ctx, WINDOW_CLOSED).reason is (
        Reason.SKIPPED_HUMAN_TAKEOVER
    )


def test_a_person_written_reply_under_takeover_follows_its_fallback() -> None:
    taken_over = closed_identity(takeover_until=NOW + HOUR)
    by_email = context(messenger=taken_over, msg=human_reply())
    waiting = context(messenger=taken_over, msg=human_reply(fallback=Fallback.WAIT_FOR_WINDOW))
    assert decide_after_messenger_failure(by_email, UNAVAILABLE).reason is (
        Reason.EMAIL_WINDOW_CLOSED
    )
    assert decide_after_messenger_failure(waiting, UNAVAILABLE).reason is (
        Reason.SKIPPED_HUMAN_TAKEOVER
    )


def test_reroute_keeps_cancel_and_misconfiguration_first() -> None:
    cancelled = context(messenger=open_identity(), cancelled=True)
    unknown = context(messenger=open_identity(), profile="meta-2030-01")
    assert decide_after_messenger_failure(cancelled, WINDOW_CLOSED).reason is (
        Reason.SKIPPED_CANCELLED
    )
    assert decide_after_messenger_failure(unknown, WINDOW_CLOSED).reason is (
        Reason.FAILED_CHANNEL_MISCONFIGURED
    )


def test_reroute_passes_the_gates() -> None:
    evening = SendWindow.parse(start="20:00", end="22:00", zone="Asia/Ho_Chi_Minh")
    paused = context(messenger=open_identity(), paused=True)
    capped = context(messenger=open_identity(), frequency_cap_reached=True)
    outside = context(messenger=open_identity(), send_window=evening)
    assert decide_after_messenger_failure(paused, UNAVAILABLE).reason is Reason.FAILED_PAGE_PAUSED
    assert decide_after_messenger_failure(capped, UNAVAILABLE).reason is (
        Reason.SKIPPED_FREQUENCY_CAP
    )
    assert decide_after_messenger_failure(outside, UNAVAILABLE).reason is (
        Reason.DEFERRED_SEND_WINDOW
    )


def test_reroute_names_a_refused_tag() -> None:
    ctx = context(messenger=closed_identity(), msg=message(Purpose.EVENT_UPDATE))
    assert decide_after_messenger_failure(ctx, WINDOW_CLOSED) == Decision(
        Reason.EMAIL_WINDOW_CLOSED, refused_tag="CONFIRMED_EVENT_UPDATE"
    )
