"""What the emulator holds and shows to tests: Pages, tokens, and records of traffic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx

from channels.sandbox.messaging_window import ThreadState
from channels.sandbox.rate_limit import SlidingWindowLimiter
from channels.sandbox.webhook_events import WebhookEvent

# reference §4.4, [S8]: Messenger webhook fields, plus the Page `feed` field (§4.5, [S17]).
KNOWN_FIELDS = frozenset(
    {
        "messages",
        "message_deliveries",
        "message_reads",
        "message_echoes",
        "message_edits",
        "message_reactions",
        "messaging_postbacks",
        "messaging_referrals",
        "messaging_optins",
        "messaging_handovers",
        "messaging_policy_enforcement",
        "messaging_account_linking",
        "messaging_feedback",
        "messaging_customer_information",
        "messaging_game_plays",
        "response_feedback",
        "standby",
        "inbox_labels",
        "message_template_status_update",
        "marketing_messages_subscriber_upload_status",
        "feed",
        "mention",
    }
)
DEFAULT_SUBSCRIBED_FIELDS = frozenset(
    {
        "messages",
        "message_deliveries",
        "message_reads",
        "message_echoes",
        "message_reactions",
        "messaging_postbacks",
        "messaging_referrals",
        "messaging_optins",
        "standby",
        "feed",
    }
)

TokenLocation = Literal["header", "query", "body"]


@dataclass
class Page:
    """A registered Facebook Page and the app that owns its token and signs its webhooks."""

    page_id: str
    username: str
    access_token: str
    app_id: str
    app_secret: str
    webhook_url: str | None = None
    webhook_client: httpx.AsyncClient | None = None
    app_name: str = "Sandbox App"
    human_agent_enabled: bool = True
    otn_enabled: bool = True
    notification_messages_enabled: bool = False
    subscribed_fields: set[str] = field(default_factory=lambda: set(DEFAULT_SUBSCRIBED_FIELDS))
    messenger_profile: dict[str, Any] = field(default_factory=dict)
    threads: dict[str, ThreadState] = field(default_factory=dict)
    limiter: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(300))
    media_limiter: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(10))

    @property
    def get_started_payload(self) -> str | None:
        get_started = self.messenger_profile.get("get_started")
        if isinstance(get_started, Mapping):
            payload = get_started.get("payload")
            return payload if isinstance(payload, str) else None
        return None


@dataclass
class OneTimeToken:
    token: str
    page_id: str
    psid: str
    payload: str
    issued_at: datetime
    used_at: datetime | None = None


@dataclass
class NotificationToken:
    token: str
    page_id: str
    psid: str
    payload: str
    title: str | None
    issued_at: datetime
    expires_at: datetime
    stopped: bool = False
    last_sent_at: datetime | None = None


@dataclass
class Comment:
    comment_id: str
    post_id: str
    page_id: str
    psid: str
    created_at: datetime
    replied: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request the Graph API surface received. Token values never appear here: the
    `Authorization` header and `access_token` parameters read `<access_token:header|query|body>`."""

    at: datetime
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    token_locations: tuple[TokenLocation, ...]
    endpoint: str
    page_id: str | None
    status_code: int
    response: Any


@dataclass(frozen=True)
class SentMessage:
    """A message the Page sent (through the Send API, or by hand from the Page inbox)."""

    page_id: str
    psid: str | None
    recipient_kind: str
    recipient: str
    mid: str
    at: datetime
    messaging_type: str | None
    tag: str | None
    message: Mapping[str, Any] | None
    sender_action: str | None
    metadata: str | None
    app_id: str


@dataclass
class WebhookDelivery:
    """One webhook POST (or one that was skipped, with the reason)."""

    at: datetime
    url: str | None
    body: bytes
    headers: Mapping[str, str]
    events: tuple[WebhookEvent, ...]
    status_code: int | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
