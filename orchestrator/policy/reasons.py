"""The closed list of decision reasons (DESIGN section 5).

The string values are a contract (DESIGN section 9): stats, the API and outside checks read them.
Add members freely; rename or remove them only through an issue.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonKind(StrEnum):
    """The part of a reason before the dot: what happened to the delivery."""

    MESSENGER = "messenger"
    EMAIL = "email"
    HELD = "held"
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    FAILED = "failed"


class Route(StrEnum):
    """The channel a decision sends on; `none` for held, deferred, skipped and failed."""

    MESSENGER = "messenger"
    EMAIL = "email"
    NONE = "none"


class Reason(StrEnum):
    MESSENGER_WINDOW = "messenger.window"
    MESSENGER_HUMAN_AGENT = "messenger.human_agent"
    MESSENGER_ONE_TIME_TOKEN = "messenger.one_time_token"  # noqa: S105 (a reason, not a secret)
    MESSENGER_TAG = "messenger.tag"
    EMAIL_WINDOW_CLOSED = "email.window_closed"
    EMAIL_NO_MESSENGER = "email.no_messenger"
    EMAIL_RECIPIENT_UNAVAILABLE = "email.recipient_unavailable"
    EMAIL_HOLD_EXPIRED = "email.hold_expired"
    HELD_UNTIL_WINDOW = "held.until_window"
    DEFERRED_SEND_WINDOW = "deferred.send_window"
    SKIPPED_UNSUBSCRIBED = "skipped.unsubscribed"
    SKIPPED_UNCONFIRMED = "skipped.unconfirmed"
    SKIPPED_BOUNCED = "skipped.bounced"
    SKIPPED_COMPLAINED = "skipped.complained"
    SKIPPED_MESSENGER_STOPPED = "skipped.messenger_stopped"
    SKIPPED_HUMAN_TAKEOVER = "skipped.human_takeover"
    SKIPPED_FREQUENCY_CAP = "skipped.frequency_cap"
    SKIPPED_NO_REACHABLE_CHANNEL = "skipped.no_reachable_channel"
    SKIPPED_CANCELLED = "skipped.cancelled"
    FAILED_RETRIES_EXHAUSTED = "failed.retries_exhausted"
    FAILED_PAGE_PAUSED = "failed.page_paused"
    FAILED_RENDER = "failed.render"
    FAILED_CHANNEL_MISCONFIGURED = "failed.channel_misconfigured"

    @property
    def kind(self) -> ReasonKind:
        return ReasonKind(self.value.partition(".")[0])

    @property
    def route(self) -> Route:
        kind = self.kind
        if kind is ReasonKind.MESSENGER:
            return Route.MESSENGER
        if kind is ReasonKind.EMAIL:
            return Route.EMAIL
        return Route.NONE
