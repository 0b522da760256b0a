"""The send-time decision: may this message go to this contact now, on which route, and why.

`decide` is pure: the caller passes every fact, `now` included, in a `SendContext`, and gets back
a `Decision` whose reason comes from the closed list in `reasons.py` (DESIGN section 5).

Precedence, first match wins:

1. `cancelled` -> `skipped.cancelled`. An operator's cancel beats every other fact.
2. The Page names no known policy profile -> `failed.channel_misconfigured`. Without the rule table
   no route can be judged, not even email (its m.me buttons lead into that Page).
3. A person on the Page inbox has taken the conversation over and the message is automated ->
   `skipped.human_takeover`, and *no email either*. DESIGN section 6 says automated sends to that
   contact stop, not only Messenger ones: a colleague is talking to the person right now, and an
   automated email whose buttons pull them back into that same thread would talk over the
   colleague. A message written by a person (a `human_reply` through the API) is not an automated
   send: Messenger stays closed to it (DESIGN section 5, "never"), but its fallback applies.
4. Messenger, when the contact has an identity on the Page that has not stopped Messenger messages,
   is not taken over and is not marked unavailable, and a legal basis holds, tried in this order:
   the 24h window (free, any content, `RESPONSE` for a reply, `UPDATE` otherwise); HUMAN_AGENT; the
   profile's tag for the purpose; a one-time token. Tokens are single use, so they are spent last.
5. Otherwise the step's fallback:
   - `email`: the reason says why Messenger was out: `email.no_messenger` (no identity on the
     Page), `email.recipient_unavailable` (Meta said so and the mark has not expired), otherwise
     `email.window_closed`. Consent then decides: `subscribed` sends; `unconfirmed` sends only a
     `transactional` message where the workspace allows it; any other status skips with its own
     reason; no address at all is `skipped.no_reachable_channel`.
   - `wait_for_window`: a contact who stopped Messenger messages is `skipped.messenger_stopped`
     (waiting for a window the person said they do not want is pointless); a person-written
     message under takeover is `skipped.human_takeover`; a hold past its deadline becomes
     `email.hold_expired` (consent as above); otherwise `held.until_window`. A contact without an
     identity is held too: a capture or an email click can still bring them into Messenger.
   - `skip`: `skipped.messenger_stopped` or `skipped.human_takeover` when those are why, else
     `skipped.no_reachable_channel`.
6. Gates on a decision that would send now (route `messenger` or `email`), in this order:
   outside the campaign's send window -> `deferred.send_window` with `due_at`, because everything
   is decided again then (the window may have closed, the Page been resumed, the cap reset); Page
   paused -> `failed.page_paused`, email included, because a paused Page stops all of its sends and
   the email's buttons lead into a Page that cannot answer (reference section 6); frequency cap
   reached -> `skipped.frequency_cap`. Held and skipped decisions pass through: "unsubscribed" is a
   truer account than "paused" when nothing would have been sent anyway.

`decide_after_messenger_failure` is the same decision after Meta refused a Messenger send as
"window closed" or "recipient unavailable" (DESIGN section 5): Messenger is ruled out for this
delivery and the fallback applies at once, with the failure as the reason unless stopped or a
takeover now explains more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum, StrEnum, auto

from orchestrator.policy.inputs import (
    EmailStatus,
    Fallback,
    MessengerState,
    Purpose,
    SendContext,
)
from orchestrator.policy.profiles import HUMAN_AGENT_TAG, PolicyProfile, find_profile
from orchestrator.policy.reasons import Reason, Route
from orchestrator.policy.tokens import pick_one_time_token
from orchestrator.policy.window import human_agent_open, still_before, window_open


class MessagingType(StrEnum):
    # Reference §2, [S3]: the Send API's `messaging_type` values.
    RESPONSE = "RESPONSE"
    UPDATE = "UPDATE"
    MESSAGE_TAG = "MESSAGE_TAG"


class MessengerFailure(StrEnum):
    """How Meta refused a Messenger send, as far as routing cares (reference section 6)."""

    WINDOW_CLOSED = "window_closed"
    RECIPIENT_UNAVAILABLE = "recipient_unavailable"


@dataclass(frozen=True)
class Decision:
    """A route and its reason, plus what the sender needs for Messenger.

    `route` follows from `reason`. `token_id` names the one-time token to spend (its send carries
    no `messaging_type`, reference §3.1 [T5]); `due_at` is when a deferred delivery is due again;
    `refused_tag` names a tag the profile retired that this purpose would once have used.
    """

    reason: Reason
    messaging_type: MessagingType | None = None
    tag: str | None = None
    token_id: str | None = None
    due_at: datetime | None = None
    refused_tag: str | None = None

    def __post_init__(self) -> None:
        messenger_only = (self.messaging_type, self.tag, self.token_id)
        if self.route is not Route.MESSENGER and any(v is not None for v in messenger_only):
            raise ValueError(f"{self.reason}: messaging type, tag and token are Messenger's")
        if (self.messaging_type is MessagingType.MESSAGE_TAG) != (self.tag is not None):
            raise ValueError("a tag goes with messaging_type MESSAGE_TAG, and only with it")
        if (self.reason is Reason.DEFERRED_SEND_WINDOW) != (self.due_at is not None):
            raise ValueError("due_at belongs to deferred.send_window, and only to it")

    @property
    def route(self) -> Route:
        return self.reason.route

    def as_dict(self) -> dict[str, str | None]:
        """The shape reachability and preview share (DESIGN section 7), plus the extra fields."""
        return {
            "route": self.route.value,
            "reason": self.reason.value,
            "messaging_type": None if self.messaging_type is None else self.messaging_type.value,
            "tag": self.tag,
            "token_id": self.token_id,
            "due_at": None if self.due_at is None else self.due_at.isoformat(),
            "refused_tag": self.refused_tag,
        }


class _Blocker(Enum):
    """Why Messenger cannot carry the message, strongest first where several hold."""

    NO_IDENTITY = auto()
    STOPPED = auto()
    TAKEOVER = auto()
    UNAVAILABLE = auto()
    NO_BASIS = auto()


_EMAIL_REASON = {
    _Blocker.NO_IDENTITY: Reason.EMAIL_NO_MESSENGER,
    _Blocker.STOPPED: Reason.EMAIL_WINDOW_CLOSED,
    _Blocker.TAKEOVER: Reason.EMAIL_WINDOW_CLOSED,
    _Blocker.UNAVAILABLE: Reason.EMAIL_RECIPIENT_UNAVAILABLE,
    _Blocker.NO_BASIS: Reason.EMAIL_WINDOW_CLOSED,
}
_SKIP_FOR_STATUS = {
    EmailStatus.UNCONFIRMED: Reason.SKIPPED_UNCONFIRMED,
    EmailStatus.UNSUBSCRIBED: Reason.SKIPPED_UNSUBSCRIBED,
    EmailStatus.BOUNCED: Reason.SKIPPED_BOUNCED,
    EmailStatus.COMPLAINED: Reason.SKIPPED_COMPLAINED,
}
_FAILURE_BLOCKER = {
    MessengerFailure.WINDOW_CLOSED: _Blocker.NO_BASIS,
    MessengerFailure.RECIPIENT_UNAVAILABLE: _Blocker.UNAVAILABLE,
}


def decide(ctx: SendContext) -> Decision:
    """Route one message to one contact at `ctx.now`; see the module docstring for precedence."""
    start = _profile_or_early_answer(ctx)
    if isinstance(start, Decision):
        return start
    profile = start
    identity = ctx.messenger
    if identity is None:
        blocker = _Blocker.NO_IDENTITY
    else:
        found = _identity_blocker(ctx, identity)
        if found is None:
            on_messenger = _messenger_route(ctx, identity, profile)
            if on_messenger is not None:
                return _gate(ctx, on_messenger)
            found = _Blocker.NO_BASIS
        blocker = found
    return _gate(ctx, _fallback(ctx, blocker, profile))


def decide_after_messenger_failure(ctx: SendContext, failure: MessengerFailure) -> Decision:
    """The fallback for a delivery Meta just refused on Messenger; never routes to Messenger."""
    start = _profile_or_early_answer(ctx)
    if isinstance(start, Decision):
        return start
    blocker = _FAILURE_BLOCKER[failure]
    if ctx.messenger is not None:
        found = _identity_blocker(ctx, ctx.messenger)
        # A stop or a takeover recorded meanwhile explains more than Meta's answer does.
        if found is _Blocker.STOPPED or found is _Blocker.TAKEOVER:
            blocker = found
    return _gate(ctx, _fallback(ctx, blocker, start))


def _profile_or_early_answer(ctx: SendContext) -> PolicyProfile | Decision:
    if ctx.cancelled:
        return Decision(Reason.SKIPPED_CANCELLED)
    profile = find_profile(ctx.page.profile)
    if profile is None:
        return Decision(Reason.FAILED_CHANNEL_MISCONFIGURED)
    if _taken_over(ctx) and not ctx.message.written_by_person:
        return Decision(Reason.SKIPPED_HUMAN_TAKEOVER)
    return profile


def _taken_over(ctx: SendContext) -> bool:
    return ctx.messenger is not None and still_before(ctx.now, ctx.messenger.takeover_until)


def _identity_blocker(ctx: SendContext, identity: MessengerState) -> _Blocker | None:
    if identity.stopped:
        return _Blocker.STOPPED
    if still_before(ctx.now, identity.takeover_until):
        return _Blocker.TAKEOVER
    if still_before(ctx.now, identity.unavailable_until):
        return _Blocker.UNAVAILABLE
    return None


def _messenger_route(
    ctx: SendContext, identity: MessengerState, profile: PolicyProfile
) -> Decision | None:
    message = ctx.message
    if window_open(identity.last_window_event_at, ctx.now, length=profile.window):
        kind = MessagingType.RESPONSE if message.is_reply else MessagingType.UPDATE
        return Decision(Reason.MESSENGER_WINDOW, messaging_type=kind)
    if _human_agent_allowed(ctx, identity, profile):
        return Decision(
            Reason.MESSENGER_HUMAN_AGENT,
            messaging_type=MessagingType.MESSAGE_TAG,
            tag=HUMAN_AGENT_TAG,
        )
    tag = profile.tag_for(message.purpose)
    if tag is not None:
        return Decision(
            Reason.MESSENGER_TAG, messaging_type=MessagingType.MESSAGE_TAG, tag=tag.name
        )
    if profile.one_time_token_route and ctx.page.otn_enabled:
        token = pick_one_time_token(identity.tokens, topic=message.topic, now=ctx.now)
        if token is not None:
            return Decision(
                Reason.MESSENGER_ONE_TIME_TOKEN,
                token_id=token.id,
                refused_tag=_refused_tag(ctx, profile),
            )
    return None


def _human_agent_allowed(
    ctx: SendContext, identity: MessengerState, profile: PolicyProfile
) -> bool:
    # Reference §2, [S3]: HUMAN_AGENT forbids automated messages; it needs the Human Agent feature
    # (App Review) and counts 7 days from the person's own message, not from any window event.
    message = ctx.message
    return (
        profile.human_agent_route
        and ctx.page.human_agent_enabled
        and message.purpose is Purpose.HUMAN_REPLY
        and message.written_by_person
        and human_agent_open(
            identity.last_user_message_at, ctx.now, length=profile.human_agent_window
        )
    )


def _refused_tag(ctx: SendContext, profile: PolicyProfile) -> str | None:
    retired = profile.retired_tag_for(ctx.message.purpose)
    return None if retired is None else retired.name


def _fallback(ctx: SendContext, blocker: _Blocker, profile: PolicyProfile) -> Decision:
    decision = _fallback_reason(ctx, blocker)
    return replace(decision, refused_tag=_refused_tag(ctx, profile))


def _fallback_reason(ctx: SendContext, blocker: _Blocker) -> Decision:
    fallback = ctx.message.fallback
    if fallback is Fallback.EMAIL:
        return _email(ctx, _EMAIL_REASON[blocker])
    if blocker is _Blocker.STOPPED:
        return Decision(Reason.SKIPPED_MESSENGER_STOPPED)
    if blocker is _Blocker.TAKEOVER:
        return Decision(Reason.SKIPPED_HUMAN_TAKEOVER)
    if fallback is Fallback.SKIP:
        return Decision(Reason.SKIPPED_NO_REACHABLE_CHANNEL)
    deadline = ctx.message.hold_deadline
    if deadline is not None and ctx.now >= deadline:
        return _email(ctx, Reason.EMAIL_HOLD_EXPIRED)
    return Decision(Reason.HELD_UNTIL_WINDOW)


def _email(ctx: SendContext, reason: Reason) -> Decision:
    status = ctx.email.status
    if status is None:
        return Decision(Reason.SKIPPED_NO_REACHABLE_CHANNEL)
    if status is EmailStatus.SUBSCRIBED or (
        status is EmailStatus.UNCONFIRMED
        and ctx.message.purpose is Purpose.TRANSACTIONAL
        and ctx.email.transactional_to_unconfirmed
    ):
        return Decision(reason)
    return Decision(_SKIP_FOR_STATUS[status])


def _gate(ctx: SendContext, decision: Decision) -> Decision:
    if decision.route is Route.NONE:
        return decision
    window = ctx.send_window
    if window is not None and not window.contains(ctx.now):
        return _stopped_at_gate(decision, Reason.DEFERRED_SEND_WINDOW, window.next_opening(ctx.now))
    if ctx.page.paused:
        return _stopped_at_gate(decision, Reason.FAILED_PAGE_PAUSED)
    if ctx.frequency_cap_reached:
        return _stopped_at_gate(decision, Reason.SKIPPED_FREQUENCY_CAP)
    return decision


def _stopped_at_gate(
    decision: Decision, reason: Reason, due_at: datetime | None = None
) -> Decision:
    return Decision(reason, due_at=due_at, refused_tag=decision.refused_tag)
