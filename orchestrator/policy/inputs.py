"""What the policy needs to know about one send: plain frozen values, built by the caller.

The shell reads rows (contact, identities, tokens, Page, step) and copies the few facts below into
these dataclasses; the policy never sees an ORM object, a session or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orchestrator.policy.send_window import SendWindow

DEFAULT_PROFILE = "meta-2026-04"


class EmailStatus(StrEnum):
    UNCONFIRMED = "unconfirmed"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Purpose(StrEnum):
    PROMOTIONAL = "promotional"
    TRANSACTIONAL = "transactional"
    HUMAN_REPLY = "human_reply"
    CUSTOMER_FEEDBACK = "customer_feedback"
    # Only meaningful under meta-2020-03, where each had its own tag (DESIGN section 5).
    EVENT_UPDATE = "event_update"
    POST_PURCHASE_UPDATE = "post_purchase_update"
    ACCOUNT_UPDATE = "account_update"


class Fallback(StrEnum):
    EMAIL = "email"
    WAIT_FOR_WINDOW = "wait_for_window"
    SKIP = "skip"


class TokenKind(StrEnum):
    ONE_TIME = "one_time"
    RECURRING = "recurring"


@dataclass(frozen=True)
class EmailState:
    """The contact's email consent, and the workspace rule for unconfirmed addresses.

    `status` is None when the contact has no email address.
    """

    status: EmailStatus | None
    transactional_to_unconfirmed: bool = False


@dataclass(frozen=True)
class OptInTokenState:
    """An opt-in token the person gave the Page; the token itself never reaches the policy."""

    id: str
    kind: TokenKind
    topic: str
    expires_at: datetime
    used: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class MessengerState:
    """The contact's Messenger identity on the campaign's Page.

    `last_window_event_at` is the latest inbound event that opens the window (message, postback,
    referral, reaction); `last_user_message_at` the latest message the person wrote, which is what
    HUMAN_AGENT counts from. `takeover_until` is when a Page-inbox takeover's quiet period ends
    (None: no takeover, or handed back). `unavailable_until` is set after Meta answered "person
    unavailable"; the inbound handler clears it when the person writes again.
    """

    last_window_event_at: datetime | None = None
    last_user_message_at: datetime | None = None
    stopped: bool = False
    takeover_until: datetime | None = None
    unavailable_until: datetime | None = None
    tokens: tuple[OptInTokenState, ...] = ()


@dataclass(frozen=True)
class PageState:
    profile: str = DEFAULT_PROFILE
    human_agent_enabled: bool = False
    otn_enabled: bool = False
    paused: bool = False


@dataclass(frozen=True)
class MessageSpec:
    """The message to send: a campaign step's or a one-off's.

    `hold_deadline` is when a held message's `max_wait` ends (held at + max_wait); None when the
    message was never held or waits without limit.
    """

    purpose: Purpose
    topic: str | None = None
    written_by_person: bool = False
    is_reply: bool = False
    fallback: Fallback = Fallback.EMAIL
    hold_deadline: datetime | None = None


@dataclass(frozen=True)
class SendContext:
    """Everything one decision depends on. `messenger` is None when the contact has no identity on
    the Page; `send_window` is the campaign's window in the contact's zone, or None (any time)."""

    now: datetime
    page: PageState
    message: MessageSpec
    email: EmailState
    messenger: MessengerState | None = None
    frequency_cap_reached: bool = False
    cancelled: bool = False
    send_window: SendWindow | None = None

    def __post_init__(self) -> None:
        if self.now.utcoffset() is None:
            raise ValueError("the policy needs a timezone-aware `now`")
