"""Literal-input tests for `decide`: every reason it can give and every branch that leads there."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.policy import (
    Decision,
    EmailStatus,
    Fallback,
    MessagingType,
    OptInTokenState,
    Purpose,
    Reason,
    Route,
    SendContext,
    SendWindow,
    TokenKind,
    decide,
)
from tests.unit.policy.policy_scenarios import (
    DAY,
    HOUR,
    MS,
    NOW,
    closed_identity,
    context,
    human_reply,
    message,
    one_time_token,
    open_identity,
)

# 12:00 UTC is 19:00 in Ho Chi Minh City.
EVENING_ONLY = SendWindow.parse(start="20:00", end="22:00", zone="Asia/Ho_Chi_Minh")
DAYTIME = SendWindow.parse(start="08:00", end="21:00", zone="Asia/Ho_Chi_Minh")


# --- inside the 24h window ------------------------------------------------------------------------


def test_open_window_sends_on_messenger_as_update() -> None:
    decision = decide(context(messenger=open_identity()))
    assert decision == Decision(Reason.MESSENGER_WINDOW, messaging_type=MessagingType.UPDATE)
    assert decision.route is Route.MESSENGER


def test_a_reply_inside_the_window_is_a_response() -> None:
    decision = decide(context(messenger=open_identity(), msg=message(is_reply=True)))
    assert decision == Decision(Reason.MESSENGER_WINDOW, messaging_type=MessagingType.RESPONSE)


@pytest.mark.parametrize("profile", ["meta-2026-04", "meta-2020-03"])
def test_promotional_content_is_fine_inside_the_window_in_every_profile(profile: str) -> None:
    decision = decide(context(messenger=open_identity(), profile=profile))
    assert decision.reason is Reason.MESSENGER_WINDOW
    assert decision.tag is None


def test_window_open_one_millisecond_before_24h() -> None:
    identity = open_identity(last_window_event_at=NOW - 24 * HOUR + MS)
    assert decide(context(messenger=identity)).reason is Reason.MESSENGER_WINDOW


def test_window_closed_at_exactly_24h() -> None:
    identity = open_identity(last_window_event_at=NOW - 24 * HOUR)
    assert decide(context(messenger=identity)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_window_needs_a_window_event() -> None:
    identity = open_identity(last_window_event_at=None)
    assert decide(context(messenger=identity)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_retired_tag_purpose_inside_the_window_goes_untagged() -> None:
    # Reference §0: the retired tags fail with error 100 even inside the window, so never send one.
    ctx = context(messenger=open_identity(), msg=message(Purpose.EVENT_UPDATE))
    assert decide(ctx) == Decision(Reason.MESSENGER_WINDOW, messaging_type=MessagingType.UPDATE)


# --- HUMAN_AGENT ----------------------------------------------------------------------------------


def human_agent_context(**overrides: Any) -> SendContext:
    base = context(messenger=closed_identity(), msg=human_reply(), human_agent_enabled=True)
    return replace(base, **overrides)


def test_person_written_reply_outside_the_window_uses_human_agent() -> None:
    assert decide(human_agent_context()) == Decision(
        Reason.MESSENGER_HUMAN_AGENT, messaging_type=MessagingType.MESSAGE_TAG, tag="HUMAN_AGENT"
    )


@pytest.mark.parametrize("profile", ["meta-2026-04", "meta-2020-03"])
def test_human_agent_exists_in_both_profiles(profile: str) -> None:
    ctx = human_agent_context(page=replace(human_agent_context().page, profile=profile))
    assert decide(ctx).reason is Reason.MESSENGER_HUMAN_AGENT


def test_human_agent_one_millisecond_before_7_days() -> None:
    identity = closed_identity(last_user_message_at=NOW - 7 * DAY + MS)
    assert decide(human_agent_context(messenger=identity)).tag == "HUMAN_AGENT"


def test_human_agent_closed_at_exactly_7_days() -> None:
    identity = closed_identity(last_user_message_at=NOW - 7 * DAY)
    assert decide(human_agent_context(messenger=identity)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_agent_counts_from_the_persons_message_not_the_window_event() -> None:
    # A reaction 25 hours ago was the last window event; the person last wrote 8 days ago.
    identity = closed_identity(
        last_window_event_at=NOW - 25 * HOUR, last_user_message_at=NOW - 8 * DAY
    )
    assert decide(human_agent_context(messenger=identity)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_agent_needs_a_message_from_the_person() -> None:
    identity = closed_identity(last_user_message_at=None)
    assert decide(human_agent_context(messenger=identity)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_agent_never_carries_an_automated_message() -> None:
    ctx = human_agent_context(message=human_reply(written_by_person=False))
    assert decide(ctx).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_agent_is_only_for_human_replies() -> None:
    ctx = human_agent_context(message=message(Purpose.TRANSACTIONAL, written_by_person=True))
    assert decide(ctx).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_agent_needs_the_page_feature() -> None:
    ctx = human_agent_context(page=replace(human_agent_context().page, human_agent_enabled=False))
    assert decide(ctx).reason is Reason.EMAIL_WINDOW_CLOSED


def test_human_reply_inside_the_window_uses_the_window() -> None:
    ctx = human_agent_context(messenger=open_identity())
    assert decide(ctx) == Decision(Reason.MESSENGER_WINDOW, messaging_type=MessagingType.RESPONSE)


# --- tags (meta-2020-03 only) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "tag"),
    [
        (Purpose.EVENT_UPDATE, "CONFIRMED_EVENT_UPDATE"),
        (Purpose.POST_PURCHASE_UPDATE, "POST_PURCHASE_UPDATE"),
        (Purpose.ACCOUNT_UPDATE, "ACCOUNT_UPDATE"),
    ],
)
def test_2020_profile_tags_each_purpose_with_its_own_tag(purpose: Purpose, tag: str) -> None:
    ctx = context(messenger=closed_identity(), msg=message(purpose), profile="meta-2020-03")
    assert decide(ctx) == Decision(
        Reason.MESSENGER_TAG, messaging_type=MessagingType.MESSAGE_TAG, tag=tag
    )


@pytest.mark.parametrize("purpose", [Purpose.PROMOTIONAL, Purpose.TRANSACTIONAL])
def test_2020_profile_has_no_tag_for_other_purposes(purpose: Purpose) -> None:
    ctx = context(messenger=closed_identity(), msg=message(purpose), profile="meta-2020-03")
    assert decide(ctx) == Decision(Reason.EMAIL_WINDOW_CLOSED)


@pytest.mark.parametrize(
    ("purpose", "tag"),
    [
        (Purpose.EVENT_UPDATE, "CONFIRMED_EVENT_UPDATE"),
        (Purpose.POST_PURCHASE_UPDATE, "POST_PURCHASE_UPDATE"),
        (Purpose.ACCOUNT_UPDATE, "ACCOUNT_UPDATE"),
    ],
)
def test_2026_profile_refuses_the_retired_tags_locally(purpose: Purpose, tag: str) -> None:
    ctx = context(messenger=closed_identity(), msg=message(purpose))
    assert decide(ctx) == Decision(Reason.EMAIL_WINDOW_CLOSED, refused_tag=tag)


def test_2020_tag_is_preferred_to_spending_a_one_time_token() -> None:
    ctx = context(
        messenger=closed_identity(tokens=(one_time_token(),)),
        msg=message(Purpose.ACCOUNT_UPDATE),
        profile="meta-2020-03",
        otn_enabled=True,
    )
    assert decide(ctx).reason is Reason.MESSENGER_TAG


# --- one-time tokens ------------------------------------------------------------------------------


def token_context(
    *tokens: OptInTokenState, topic: str | None = "sale", **overrides: Any
) -> SendContext:
    base = context(
        messenger=closed_identity(tokens=tokens), msg=message(topic=topic), otn_enabled=True
    )
    return replace(base, **overrides)


def test_a_valid_one_time_token_for_the_topic_carries_a_promotional_message() -> None:
    assert decide(token_context(one_time_token("t1"))) == Decision(
        Reason.MESSENGER_ONE_TIME_TOKEN, token_id="t1"
    )


@pytest.mark.parametrize("profile", ["meta-2026-04", "meta-2020-03"])
def test_one_time_tokens_work_in_both_profiles(profile: str) -> None:
    ctx = token_context(one_time_token(), page=replace(token_context().page, profile=profile))
    assert decide(ctx).reason is Reason.MESSENGER_ONE_TIME_TOKEN


def test_one_time_token_needs_the_page_feature() -> None:
    ctx = token_context(one_time_token(), page=replace(token_context().page, otn_enabled=False))
    assert decide(ctx).reason is Reason.EMAIL_WINDOW_CLOSED


@pytest.mark.parametrize(
    "token",
    [
        one_time_token(topic="other"),
        one_time_token(used=True),
        one_time_token(stopped=True),
        one_time_token(expires_at=NOW),
        one_time_token(kind=TokenKind.RECURRING),
    ],
    ids=["other-topic", "used", "stopped", "expired-at-now", "recurring"],
)
def test_unusable_tokens_are_no_legal_basis(token: OptInTokenState) -> None:
    assert decide(token_context(token)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_token_valid_until_one_millisecond_before_expiry() -> None:
    ctx = token_context(one_time_token(expires_at=NOW + MS))
    assert decide(ctx).reason is Reason.MESSENGER_ONE_TIME_TOKEN


def test_a_message_without_topic_matches_no_token() -> None:
    assert decide(token_context(one_time_token(), topic=None)).reason is Reason.EMAIL_WINDOW_CLOSED


def test_the_token_expiring_first_is_spent_first() -> None:
    ctx = token_context(
        one_time_token("late", expires_at=NOW + 9 * DAY),
        one_time_token("early", expires_at=NOW + 2 * DAY),
        one_time_token("used", expires_at=NOW + DAY, used=True),
    )
    assert decide(ctx).token_id == "early"


def test_human_agent_is_preferred_to_spending_a_one_time_token() -> None:
    ctx = context(
        messenger=closed_identity(tokens=(one_time_token(topic="support"),)),
        msg=human_reply(topic="support"),
        human_agent_enabled=True,
        otn_enabled=True,
    )
    assert decide(ctx).reason is Reason.MESSENGER_HUMAN_AGENT


def test_window_is_preferred_to_spending_a_one_time_token() -> None:
    ctx = context(messenger=open_identity(tokens=(one_time_token(),)), otn_enabled=True)
    assert decide(ctx).reason is Reason.MESSENGER_WINDOW


def test_token_send_for_a_retired_tag_purpose_names_the_refused_tag() -> None:
    ctx = token_context(one_time_token(), message=message(Purpose.ACCOUNT_UPDATE))
    assert decide(ctx) == Decision(
        Reason.MESSENGER_ONE_TIME_TOKEN, token_id="tok-1", refused_tag="ACCOUNT_UPDATE"
    )


# --- no Messenger identity on the Page ------------------------------------------------------------


def test_no_identity_falls_back_to_an_invitation_email() -> None:
    assert decide(context(messenger=None)) == Decision(Reason.EMAIL_NO_MESSENGER)


def test_no_identity_and_skip_fallback() -> None:
    ctx = context(messenger=None, msg=message(fallback=Fallback.SKIP))
    assert decide(ctx).reason is Reason.SKIPPED_NO_REACHABLE_CHANNEL


def test_no_identity_and_wait_fallback_holds() -> None:
    ctx = context(messenger=None, msg=message(fallback=Fallback.WAIT_FOR_WINDOW))
    assert decide(ctx) == Decision(Reason.HELD_UNTIL_WINDOW)


def test_no_identity_and_no_email_reaches_nobody() -> None:
    assert decide(context(messenger=None, email=None)).reason is (
        Reason.SKIPPED_NO_REACHABLE_CHANNEL
    )


# --- window closed: the step's fallback -----------------------------------------------------------


def test_closed_window_falls_back_to_email() -> None:
    assert decide(context(messenger=closed_identity())) == Decision(Reason.EMAIL_WINDOW_CLOSED)


def test_closed_window_with_skip_fallback() -> None:
    ctx = context(messenger=closed_identity(), msg=message(fallback=Fallback.SKIP))
    assert decide(ctx) == Decision(Reason.SKIPPED_NO_REACHABLE_CHANNEL)


def test_closed_window_with_wait_fallback_holds() -> None:
    ctx = context(messenger=closed_identity(), msg=message(fallback=Fallback.WAIT_FOR_WINDOW))
    assert decide(ctx) == Decision(Reason.HELD_UNTIL_WINDOW)


def test_held_message_is_still_held_one_millisecond_before_its_deadline() -> None:
    msg = message(fallback=Fallback.WAIT_FOR_WINDOW, hold_deadline=NOW + MS)
    assert decide(context(messenger=closed_identity(), msg=msg)).reason is (
        Reason.HELD_UNTIL_WINDOW
    )


def test_held_message_goes_by_email_at_its_deadline() -> None:
    msg = message(fallback=Fallback.WAIT_FOR_WINDOW, hold_deadline=NOW)
    assert decide(context(messenger=closed_identity(), msg=msg)) == Decision(
        Reason.EMAIL_HOLD_EXPIRED
    )


def test_held_message_is_released_on_messenger_when_the_window_reopens() -> None:
    msg = message(fallback=Fallback.WAIT_FOR_WINDOW, hold_deadline=NOW - DAY)
    assert decide(context(messenger=open_identity(), msg=msg)).reason is Reason.MESSENGER_WINDOW


def test_expired_hold_still_respects_email_consent() -> None:
    msg = message(fallback=Fallback.WAIT_FOR_WINDOW, hold_deadline=NOW - HOUR)
    ctx = context(messenger=closed_identity(), msg=msg, email=EmailStatus.UNSUBSCRIBED)
    assert decide(ctx).reason is Reason.SKIPPED_UNSUBSCRIBED


# --- email consent --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (EmailStatus.UNSUBSCRIBED, Reason.SKIPPED_UNSUBSCRIBED),
        (EmailStatus.BOUNCED, Reason.SKIPPED_BOUNCED),
        (EmailStatus.COMPLAINED, Reason.SKIPPED_COMPLAINED),
        (EmailStatus.UNCONFIRMED, Reason.SKIPPED_UNCONFIRMED),
        (None, Reason.SKIPPED_NO_REACHABLE_CHANNEL),
    ],
)
def test_email_only_to_subscribed_addresses(status: EmailStatus | None, reason: Reason) -> None:
    assert decide(context(messenger=closed_identity(), email=status)) == Decision(reason)


def test_transactional_to_unconfirmed_where_the_workspace_allows_it() -> None:
    ctx = context(
        messenger=closed_identity(),
        msg=message(Purpose.TRANSACTIONAL),
        email=EmailStatus.UNCONFIRMED,
        transactional_to_unconfirmed=True,
    )
    assert decide(ctx) == Decision(Reason.EMAIL_WINDOW_CLOSED)


def test_transactional_to_unconfirmed_refused_without_the_workspace_setting() -> None:
    ctx = context(
        messenger=closed_identity(),
        msg=message(Purpose.TRANSACTIONAL),
        email=EmailStatus.UNCONFIRMED,
    )
    assert decide(ctx).reason is Reason.SKIPPED_UNCONFIRMED


@pytest.mark.parametrize(
    "purpose", [Purpose.PROMOTIONAL, Purpose.HUMAN_REPLY, Purpose.ACCOUNT_UPDATE]
)
def test_only_transactional_purpose_may_reach_unconfirmed(purpose: Purpose) -> None:
    ctx = context(
        messenger=closed_identity(),
        msg=message(purpose, written_by_person=purpose is Purpose.HUMAN_REPLY),
        email=EmailStatus.UNCONFIRMED,
        transactional_to_unconfirmed=True,
    )
    assert decide(ctx).reason is Reason.SKIPPED_UNCONFIRMED


def test_messenger_does_not_depend_on_email_consent() -> None:
    ctx = context(messenger=open_identity(), email=EmailStatus.COMPLAINED)
    assert decide(ctx).reason is Reason.MESSENGER_WINDOW


# --- stopped ----------------------------------------------------------------------------------------


def test_stopped_contact_gets_no_messenger_even_inside_the_window() -> None:
    ctx = context(messenger=open_identity(stopped=True))
    assert decide(ctx) == Decision(Reason.EMAIL_WINDOW_CLOSED)


def test_stopped_contact_with_wait_fallback_is_skipped() -> None:
    ctx = context(
        messenger=open_identity(stopped=True), msg=message(fallback=Fallback.WAIT_FOR_WINDOW)
    )
    assert decide(ctx) == Decision(Reason.SKIPPED_MESSENGER_STOPPED)


def test_stopped_contact_with_skip_fallback_says_why() -> None:
    ctx = context(messenger=open_identity(stopped=True), msg=message(fallback=Fallback.SKIP))
    assert decide(ctx) == Decision(Reason.SKIPPED_MESSENGER_STOPPED)


def test_stopped_contact_gets_no_human_agent_or_token_either() -> None:
    ctx = context(
        messenger=closed_identity(stopped=True, tokens=(one_time_token(topic="help"),)),
        msg=human_reply(topic="help", fallback=Fallback.SKIP),
        human_agent_enabled=True,
        otn_enabled=True,
    )
    assert decide(ctx).reason is Reason.SKIPPED_MESSENGER_STOPPED


# --- human takeover -------------------------------------------------------------------------------


def test_takeover_stops_automated_messenger_and_email() -> None:
    ctx = context(messenger=open_identity(takeover_until=NOW + HOUR))
    assert decide(ctx) == Decision(Reason.SKIPPED_HUMAN_TAKEOVER)


def test_takeover_stops_automated_sends_whatever_the_fallback() -> None:
    for fallback in Fallback:
        ctx = context(
            messenger=closed_identity(takeover_until=NOW + MS), msg=message(fallback=fallback)
        )
        assert decide(ctx).reason is Reason.SKIPPED_HUMAN_TAKEOVER


def test_takeover_ends_when_the_quiet_period_ends() -> None:
    ctx = context(messenger=open_identity(takeover_until=NOW))
    assert decide(ctx).reason is Reason.MESSENGER_WINDOW


def test_person_written_reply_under_takeover_goes_by_email_not_messenger() -> None:
    ctx = context(
        messenger=open_identity(takeover_until=NOW + HOUR),
        msg=human_reply(),
        human_agent_enabled=True,
    )
    assert decide(ctx) == Decision(Reason.EMAIL_WINDOW_CLOSED)


@pytest.mark.parametrize("fallback", [Fallback.WAIT_FOR_WINDOW, Fallback.SKIP])
def test_person_written_reply_under_takeover_without_email_is_skipped(fallback: Fallback) -> None:
    ctx = context(
        messenger=open_identity(takeover_until=NOW + HOUR), msg=human_reply(fallback=fallback)
    )
    assert decide(ctx) == Decision(Reason.SKIPPED_HUMAN_TAKEOVER)


def test_stopped_outranks_takeover_for_a_person_written_reply() -> None:
    ctx = context(
        messenger=open_identity(stopped=True, takeover_until=NOW + HOUR),
        msg=human_reply(fallback=Fallback.SKIP),
    )
    assert decide(ctx).reason is Reason.SKIPPED_MESSENGER_STOPPED


# --- recipient unavailable ------------------------------------------------------------------------


def test_unavailable_contact_gets_the_email_fallback() -> None:
    ctx = context(messenger=open_identity(unavailable_until=NOW + DAY))
    assert decide(ctx) == Decision(Reason.EMAIL_RECIPIENT_UNAVAILABLE)


def test_unavailable_contact_with_wait_fallback_is_held() -> None:
    ctx = context(
        messenger=open_identity(unavailable_until=NOW + DAY),
        msg=message(fallback=Fallback.WAIT_FOR_WINDOW),
    )
    assert decide(ctx).reason is Reason.HELD_UNTIL_WINDOW


def test_unavailable_contact_with_skip_fallback() -> None:
    ctx = context(
        messenger=open_identity(unavailable_until=NOW + DAY), msg=message(fallback=Fallback.SKIP)
    )
    assert decide(ctx).reason is Reason.SKIPPED_NO_REACHABLE_CHANNEL


def test_unavailable_mark_ends_at_its_time() -> None:
    ctx = context(messenger=open_identity(unavailable_until=NOW))
    assert decide(ctx).reason is Reason.MESSENGER_WINDOW


# --- cancelled and misconfigured ------------------------------------------------------------------


def test_cancelled_beats_everything() -> None:
    ctx = context(messenger=open_identity(), cancelled=True, profile="nope", paused=True)
    assert decide(ctx) == Decision(Reason.SKIPPED_CANCELLED)


def test_unknown_profile_is_a_misconfigured_channel() -> None:
    ctx = context(messenger=open_identity(takeover_until=NOW + HOUR), profile="meta-1999-01")
    assert decide(ctx) == Decision(Reason.FAILED_CHANNEL_MISCONFIGURED)


# --- gates: send window, paused Page, frequency cap -----------------------------------------------


def test_outside_the_send_window_a_messenger_send_is_deferred_to_its_next_start() -> None:
    decision = decide(context(messenger=open_identity(), send_window=EVENING_ONLY))
    assert decision == Decision(
        Reason.DEFERRED_SEND_WINDOW, due_at=datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    )
    assert decision.route is Route.NONE


def test_outside_the_send_window_an_email_is_deferred_too() -> None:
    decision = decide(context(messenger=None, send_window=EVENING_ONLY))
    assert decision.reason is Reason.DEFERRED_SEND_WINDOW


def test_inside_the_send_window_nothing_is_deferred() -> None:
    assert decide(context(messenger=None, send_window=DAYTIME)).reason is (
        Reason.EMAIL_NO_MESSENGER
    )


def test_send_window_does_not_defer_a_hold_or_a_skip() -> None:
    held = context(
        messenger=None, msg=message(fallback=Fallback.WAIT_FOR_WINDOW), send_window=EVENING_ONLY
    )
    skipped = context(messenger=None, email=EmailStatus.BOUNCED, send_window=EVENING_ONLY)
    assert decide(held).reason is Reason.HELD_UNTIL_WINDOW
    assert decide(skipped).reason is Reason.SKIPPED_BOUNCED


def test_paused_page_fails_a_messenger_send() -> None:
    ctx = context(messenger=open_identity(), paused=True)
    assert decide(ctx) == Decision(Reason.FAILED_PAGE_PAUSED)


def test_paused_page_fails_the_email_that_would_lead_into_it() -> None:
    assert decide(context(messenger=None, paused=True)).reason is Reason.FAILED_PAGE_PAUSED


def test_paused_page_keeps_holds_and_skips_as_they_are() -> None:
    held = context(
        messenger=closed_identity(), msg=message(fallback=Fallback.WAIT_FOR_WINDOW), paused=True
    )
    skipped = context(messenger=None, email=EmailStatus.UNSUBSCRIBED, paused=True)
    assert decide(held).reason is Reason.HELD_UNTIL_WINDOW
    assert decide(skipped).reason is Reason.SKIPPED_UNSUBSCRIBED


def test_send_window_deferral_comes_before_the_pause() -> None:
    ctx = context(messenger=open_identity(), paused=True, send_window=EVENING_ONLY)
    assert decide(ctx).reason is Reason.DEFERRED_SEND_WINDOW


def test_frequency_cap_skips_a_send() -> None:
    ctx = context(messenger=open_identity(), frequency_cap_reached=True)
    assert decide(ctx) == Decision(Reason.SKIPPED_FREQUENCY_CAP)


def test_pause_comes_before_the_frequency_cap() -> None:
    ctx = context(messenger=open_identity(), frequency_cap_reached=True, paused=True)
    assert decide(ctx).reason is Reason.FAILED_PAGE_PAUSED


def test_frequency_cap_leaves_a_consent_skip_alone() -> None:
    ctx = context(messenger=None, email=EmailStatus.COMPLAINED, frequency_cap_reached=True)
    assert decide(ctx).reason is Reason.SKIPPED_COMPLAINED


def test_gates_keep_the_refused_tag() -> None:
    ctx = context(messenger=closed_identity(), msg=message(Purpose.ACCOUNT_UPDATE), paused=True)
    assert decide(ctx) == Decision(Reason.FAILED_PAGE_PAUSED, refused_tag="ACCOUNT_UPDATE")


# --- the context itself ---------------------------------------------------------------------------


def test_context_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        context(messenger=None, now=datetime(2026, 6, 1, 12, 0))  # noqa: DTZ001


def test_decide_is_deterministic() -> None:
    ctx = context(messenger=closed_identity(tokens=(one_time_token(),)), otn_enabled=True)
    assert decide(ctx) == decide(ctx)
