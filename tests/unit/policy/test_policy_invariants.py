"""Property tests: DESIGN section 5's "never" rules hold for random histories, consent and clocks.

The oracles below are written from the rules, in UTC, independently of the policy's own helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policy import (
    Decision,
    EmailStatus,
    Fallback,
    MessagingType,
    MessengerFailure,
    MessengerState,
    Purpose,
    Reason,
    ReasonKind,
    Route,
    SendContext,
    TokenKind,
    decide,
    decide_after_messenger_failure,
)
from tests.unit.policy.policy_strategies import (
    ALL_TILTS,
    blocked_tilt,
    boundary_tilt,
    dst_tilt,
    fallback_tilt,
    focused,
    gate_tilt,
    human_agent_tilt,
    tilted,
    token_tilt,
)

PROPERTY = settings(max_examples=100, deadline=None)
MODEL = settings(max_examples=150, deadline=None)
RETIRED = {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"}
EMAIL_SKIPS = {
    Reason.SKIPPED_UNSUBSCRIBED: EmailStatus.UNSUBSCRIBED,
    Reason.SKIPPED_UNCONFIRMED: EmailStatus.UNCONFIRMED,
    Reason.SKIPPED_BOUNCED: EmailStatus.BOUNCED,
    Reason.SKIPPED_COMPLAINED: EmailStatus.COMPLAINED,
}
TAG_PURPOSE = {
    "CONFIRMED_EVENT_UPDATE": Purpose.EVENT_UPDATE,
    "POST_PURCHASE_UPDATE": Purpose.POST_PURCHASE_UPDATE,
    "ACCOUNT_UPDATE": Purpose.ACCOUNT_UPDATE,
}


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def before(ctx: SendContext, deadline: datetime | None) -> bool:
    return deadline is not None and utc(ctx.now) < utc(deadline)


def window_is_open(ctx: SendContext) -> bool:
    m = ctx.messenger
    return (
        m is not None
        and m.last_window_event_at is not None
        and utc(ctx.now) - utc(m.last_window_event_at) < timedelta(hours=24)
    )


def human_agent_is_legal(ctx: SendContext) -> bool:
    m = ctx.messenger
    return (
        m is not None
        and ctx.message.purpose is Purpose.HUMAN_REPLY
        and ctx.message.written_by_person
        and ctx.page.human_agent_enabled
        and m.last_user_message_at is not None
        and utc(ctx.now) - utc(m.last_user_message_at) < timedelta(days=7)
    )


def usable_token_ids(ctx: SendContext) -> set[str]:
    m = ctx.messenger
    if m is None or not ctx.page.otn_enabled or ctx.message.topic is None:
        return set()
    return {
        t.id
        for t in m.tokens
        if t.kind is TokenKind.ONE_TIME
        and t.topic == ctx.message.topic
        and not t.used
        and not t.stopped
        and before(ctx, t.expires_at)
    }


def tag_is_legal(ctx: SendContext, tag: str) -> bool:
    return ctx.page.profile == "meta-2020-03" and TAG_PURPOSE.get(tag) is ctx.message.purpose


def taken_over(ctx: SendContext) -> bool:
    return ctx.messenger is not None and before(ctx, ctx.messenger.takeover_until)


def messenger_blocked(ctx: SendContext) -> bool:
    m = ctx.messenger
    return m is None or m.stopped or taken_over(ctx) or before(ctx, m.unavailable_until)


def any_messenger_basis(ctx: SendContext) -> bool:
    tag_ok = ctx.page.profile == "meta-2020-03" and ctx.message.purpose in TAG_PURPOSE.values()
    return window_is_open(ctx) or human_agent_is_legal(ctx) or tag_ok or bool(usable_token_ids(ctx))


def email_is_legal(ctx: SendContext) -> bool:
    status = ctx.email.status
    return status is EmailStatus.SUBSCRIBED or (
        status is EmailStatus.UNCONFIRMED
        and ctx.message.purpose is Purpose.TRANSACTIONAL
        and ctx.email.transactional_to_unconfirmed
    )


def gated(ctx: SendContext) -> bool:
    outside = ctx.send_window is not None and not ctx.send_window.contains(ctx.now)
    return ctx.cancelled or ctx.page.paused or ctx.frequency_cap_reached or outside


def assert_common_invariants(ctx: SendContext, decision: Decision) -> None:
    """The rules that hold for `decide` and for the re-route alike."""
    if decision.tag is not None:
        assert ctx.message.purpose is not Purpose.PROMOTIONAL
    if ctx.page.profile == "meta-2026-04":
        assert decision.tag not in RETIRED
    if decision.route is Route.EMAIL:
        assert email_is_legal(ctx)
        assert not gated(ctx)
    if taken_over(ctx) and not ctx.message.written_by_person:
        assert decision.route is Route.NONE
    if ctx.cancelled:
        assert decision.reason is Reason.SKIPPED_CANCELLED
    if decision.reason is Reason.DEFERRED_SEND_WINDOW:
        assert ctx.send_window is not None
        assert decision.due_at is not None
        assert not ctx.send_window.contains(ctx.now)
        assert utc(decision.due_at) > utc(ctx.now)
        assert ctx.send_window.contains(decision.due_at)


@PROPERTY
@given(focused(human_agent_tilt, token_tilt))
def test_never_promotional_content_under_a_tag(ctx: SendContext) -> None:
    decision = decide(ctx)
    if ctx.message.purpose is Purpose.PROMOTIONAL:
        assert decision.tag is None
    if decision.tag is not None and decision.tag != "HUMAN_AGENT":
        assert TAG_PURPOSE[decision.tag] is ctx.message.purpose


@PROPERTY
@given(focused(human_agent_tilt, dst_tilt))
def test_never_an_automated_message_under_human_agent(ctx: SendContext) -> None:
    decision = decide(ctx)
    if decision.tag == "HUMAN_AGENT":
        assert decision.reason is Reason.MESSENGER_HUMAN_AGENT
        assert human_agent_is_legal(ctx)
    if decision.reason is Reason.MESSENGER_HUMAN_AGENT:
        assert decision.tag == "HUMAN_AGENT"


@PROPERTY
@given(focused(token_tilt, human_agent_tilt, boundary_tilt, dst_tilt))
def test_never_messenger_outside_the_window_without_a_legal_basis(ctx: SendContext) -> None:
    decision = decide(ctx)
    if decision.route is not Route.MESSENGER:
        return
    if decision.reason is Reason.MESSENGER_WINDOW:
        assert window_is_open(ctx)
    elif decision.reason is Reason.MESSENGER_HUMAN_AGENT:
        assert human_agent_is_legal(ctx)
    elif decision.reason is Reason.MESSENGER_TAG:
        assert decision.tag is not None
        assert tag_is_legal(ctx, decision.tag)
    else:
        assert decision.reason is Reason.MESSENGER_ONE_TIME_TOKEN
        assert decision.token_id in usable_token_ids(ctx)


@PROPERTY
@given(focused(boundary_tilt, blocked_tilt, gate_tilt))
def test_never_messenger_to_a_stopped_taken_over_or_unavailable_contact(ctx: SendContext) -> None:
    decision = decide(ctx)
    if decision.route is Route.MESSENGER:
        assert not messenger_blocked(ctx)
        assert not gated(ctx)


@PROPERTY
@given(focused(fallback_tilt, human_agent_tilt))
def test_never_email_to_an_address_that_is_not_subscribed(ctx: SendContext) -> None:
    decision = decide(ctx)
    if decision.route is Route.EMAIL:
        assert email_is_legal(ctx)


@PROPERTY
@given(focused(token_tilt, human_agent_tilt))
def test_2026_profile_never_sends_a_retired_tag_or_a_recurring_token(ctx: SendContext) -> None:
    decision = decide(ctx)
    if ctx.page.profile == "meta-2026-04":
        assert decision.tag in (None, "HUMAN_AGENT")
        assert decision.reason is not Reason.MESSENGER_TAG
    if decision.token_id is not None:
        assert isinstance(ctx.messenger, MessengerState)
        kinds = {t.kind for t in ctx.messenger.tokens if t.id == decision.token_id}
        assert TokenKind.ONE_TIME in kinds


@PROPERTY
@given(focused(boundary_tilt, human_agent_tilt, token_tilt))
def test_messaging_type_matches_the_reason(ctx: SendContext) -> None:
    decision = decide(ctx)
    if decision.messaging_type is MessagingType.RESPONSE:
        assert decision.reason is Reason.MESSENGER_WINDOW
        assert ctx.message.is_reply
    if decision.messaging_type is MessagingType.UPDATE:
        assert decision.reason is Reason.MESSENGER_WINDOW
        assert not ctx.message.is_reply
    if decision.reason is Reason.MESSENGER_WINDOW:
        assert decision.messaging_type is not None
        assert decision.messaging_type is not MessagingType.MESSAGE_TAG
    assert (decision.messaging_type is MessagingType.MESSAGE_TAG) == (decision.tag is not None)
    if decision.reason is Reason.MESSENGER_ONE_TIME_TOKEN:
        assert decision.messaging_type is None


@PROPERTY
@given(focused(*ALL_TILTS))
def test_messenger_is_preferred_and_fallbacks_mean_no_basis(ctx: SendContext) -> None:
    decision = decide(ctx)
    if window_is_open(ctx) and not messenger_blocked(ctx) and not gated(ctx):
        assert decision.reason is Reason.MESSENGER_WINDOW
    if decision.reason.kind in (ReasonKind.EMAIL, ReasonKind.HELD):
        assert messenger_blocked(ctx) or not any_messenger_basis(ctx)


@PROPERTY
@given(focused(*ALL_TILTS, known_profile=False))
def test_decide_is_total_and_keeps_the_common_invariants(ctx: SendContext) -> None:
    decision = decide(ctx)
    assert decision == decide(ctx)
    assert decision.route is decision.reason.route
    if ctx.page.profile not in ("meta-2026-04", "meta-2020-03") and not ctx.cancelled:
        assert decision.reason is Reason.FAILED_CHANNEL_MISCONFIGURED
    assert_common_invariants(ctx, decision)


@PROPERTY
@given(focused(*ALL_TILTS, known_profile=False), st.sampled_from(MessengerFailure))
def test_reroute_never_retries_messenger_and_keeps_the_rules(
    ctx: SendContext, failure: MessengerFailure
) -> None:
    decision = decide_after_messenger_failure(ctx, failure)
    assert decision.route is not Route.MESSENGER
    assert decision.reason.kind is not ReasonKind.MESSENGER
    assert_common_invariants(ctx, decision)
    if decision.reason is Reason.EMAIL_RECIPIENT_UNAVAILABLE:
        assert failure is MessengerFailure.RECIPIENT_UNAVAILABLE


@PROPERTY
@given(focused(*ALL_TILTS))
def test_every_reason_is_borne_out_by_the_inputs(ctx: SendContext) -> None:
    decision = decide(ctx)
    reason, message, m = decision.reason, ctx.message, ctx.messenger
    hold_expired = message.hold_deadline is not None and not before(ctx, message.hold_deadline)
    if reason in (
        Reason.EMAIL_WINDOW_CLOSED,
        Reason.EMAIL_NO_MESSENGER,
        Reason.EMAIL_RECIPIENT_UNAVAILABLE,
    ):
        assert message.fallback is Fallback.EMAIL
    if reason is Reason.EMAIL_NO_MESSENGER:
        assert m is None
    if reason is Reason.EMAIL_RECIPIENT_UNAVAILABLE:
        assert m is not None
        assert before(ctx, m.unavailable_until)
    if reason is Reason.EMAIL_HOLD_EXPIRED:
        assert message.fallback is Fallback.WAIT_FOR_WINDOW
        assert hold_expired
    if reason is Reason.HELD_UNTIL_WINDOW:
        assert message.fallback is Fallback.WAIT_FOR_WINDOW
        assert not hold_expired
    if reason in EMAIL_SKIPS:
        assert ctx.email.status is EMAIL_SKIPS[reason]
    if reason is Reason.SKIPPED_MESSENGER_STOPPED:
        assert m is not None
        assert m.stopped
    if reason is Reason.SKIPPED_HUMAN_TAKEOVER:
        assert taken_over(ctx)
    if reason is Reason.SKIPPED_NO_REACHABLE_CHANNEL:
        assert message.fallback is not Fallback.EMAIL or ctx.email.status is None
    if reason is Reason.SKIPPED_FREQUENCY_CAP:
        assert ctx.frequency_cap_reached
    if reason is Reason.FAILED_PAGE_PAUSED:
        assert ctx.page.paused
    if decision.refused_tag is not None:
        assert ctx.page.profile == "meta-2026-04"
        assert TAG_PURPOSE[decision.refused_tag] is ctx.message.purpose


# --- a reference model --------------------------------------------------------------------------
# The "never" rules above say what may not happen; the model also says what must: a legal
# Messenger route is used, and the fallback reason names the real cause. It restates DESIGN
# section 5 and the precedence in orchestrator/policy/decision.py as one flat function.

KNOWN_PROFILES = ("meta-2026-04", "meta-2020-03")
EMAIL_FOR_CAUSE = {
    "no_identity": Reason.EMAIL_NO_MESSENGER,
    "unavailable": Reason.EMAIL_RECIPIENT_UNAVAILABLE,
}
SKIP_FOR_STATUS = {status: reason for reason, status in EMAIL_SKIPS.items()}


def model_email(ctx: SendContext, reason: Reason) -> Reason:
    if ctx.email.status is None:
        return Reason.SKIPPED_NO_REACHABLE_CHANNEL
    return reason if email_is_legal(ctx) else SKIP_FOR_STATUS[ctx.email.status]


def model_fallback(ctx: SendContext, cause: str) -> Reason:
    message = ctx.message
    if message.fallback is Fallback.EMAIL:
        return model_email(ctx, EMAIL_FOR_CAUSE.get(cause, Reason.EMAIL_WINDOW_CLOSED))
    if cause == "stopped":
        return Reason.SKIPPED_MESSENGER_STOPPED
    if cause == "takeover":
        return Reason.SKIPPED_HUMAN_TAKEOVER
    if message.fallback is Fallback.SKIP:
        return Reason.SKIPPED_NO_REACHABLE_CHANNEL
    if message.hold_deadline is not None and not before(ctx, message.hold_deadline):
        return model_email(ctx, Reason.EMAIL_HOLD_EXPIRED)
    return Reason.HELD_UNTIL_WINDOW


def model_messenger(ctx: SendContext) -> Reason | None:
    if window_is_open(ctx):
        return Reason.MESSENGER_WINDOW
    if human_agent_is_legal(ctx):
        return Reason.MESSENGER_HUMAN_AGENT
    if ctx.page.profile == "meta-2020-03" and ctx.message.purpose in TAG_PURPOSE.values():
        return Reason.MESSENGER_TAG
    if usable_token_ids(ctx):
        return Reason.MESSENGER_ONE_TIME_TOKEN
    return None


def model(ctx: SendContext, failure: MessengerFailure | None = None) -> Reason:
    if ctx.cancelled:
        return Reason.SKIPPED_CANCELLED
    if ctx.page.profile not in KNOWN_PROFILES:
        return Reason.FAILED_CHANNEL_MISCONFIGURED
    if taken_over(ctx) and not ctx.message.written_by_person:
        return Reason.SKIPPED_HUMAN_TAKEOVER
    m = ctx.messenger
    reason: Reason | None = None
    if m is not None and m.stopped:
        reason = model_fallback(ctx, "stopped")
    elif taken_over(ctx):
        reason = model_fallback(ctx, "takeover")
    elif failure is not None:
        cause = "unavailable" if failure is MessengerFailure.RECIPIENT_UNAVAILABLE else "closed"
        reason = model_fallback(ctx, cause)
    elif m is None:
        reason = model_fallback(ctx, "no_identity")
    elif before(ctx, m.unavailable_until):
        reason = model_fallback(ctx, "unavailable")
    else:
        reason = model_messenger(ctx) or model_fallback(ctx, "closed")
    if reason.route is Route.NONE:
        return reason
    if ctx.send_window is not None and not ctx.send_window.contains(ctx.now):
        return Reason.DEFERRED_SEND_WINDOW
    if ctx.page.paused:
        return Reason.FAILED_PAGE_PAUSED
    if ctx.frequency_cap_reached:
        return Reason.SKIPPED_FREQUENCY_CAP
    return reason


@MODEL
@given(focused(*ALL_TILTS, known_profile=False))
def test_decide_agrees_with_the_reference_model(ctx: SendContext) -> None:
    assert decide(ctx).reason is model(ctx)


@MODEL
@given(focused(*ALL_TILTS, known_profile=False), st.sampled_from(MessengerFailure))
def test_reroute_agrees_with_the_reference_model(
    ctx: SendContext, failure: MessengerFailure
) -> None:
    assert decide_after_messenger_failure(ctx, failure).reason is model(ctx, failure)


@MODEL
@given(tilted(token_tilt))
def test_one_time_tokens_agree_with_the_model(ctx: SendContext) -> None:
    assert decide(ctx).reason is model(ctx)


@MODEL
@given(tilted(human_agent_tilt, dst_tilt))
def test_human_agent_tags_and_daylight_saving_agree_with_the_model(ctx: SendContext) -> None:
    assert decide(ctx).reason is model(ctx)


@MODEL
@given(tilted(fallback_tilt, blocked_tilt))
def test_fallbacks_agree_with_the_model(ctx: SendContext) -> None:
    assert decide(ctx).reason is model(ctx)


@MODEL
@given(tilted(gate_tilt, boundary_tilt))
def test_gates_and_exact_boundaries_agree_with_the_model(ctx: SendContext) -> None:
    assert decide(ctx).reason is model(ctx)
