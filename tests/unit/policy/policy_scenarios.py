"""Literal starting points for policy tests: a fixed `now` and small builders with overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.policy import (
    EmailState,
    EmailStatus,
    Fallback,
    MessageSpec,
    MessengerState,
    OptInTokenState,
    PageState,
    Purpose,
    SendContext,
    SendWindow,
    TokenKind,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def open_identity(**overrides: Any) -> MessengerState:
    """A Messenger identity whose person wrote an hour ago: the window is open."""
    base = MessengerState(last_window_event_at=NOW - HOUR, last_user_message_at=NOW - HOUR)
    return replace(base, **overrides)


def closed_identity(**overrides: Any) -> MessengerState:
    """A Messenger identity whose person wrote two days ago: window closed, HUMAN_AGENT possible."""
    base = MessengerState(last_window_event_at=NOW - 2 * DAY, last_user_message_at=NOW - 2 * DAY)
    return replace(base, **overrides)


def one_time_token(
    token_id: str = "tok-1",
    *,
    topic: str = "sale",
    expires_at: datetime = NOW + 30 * DAY,
    kind: TokenKind = TokenKind.ONE_TIME,
    used: bool = False,
    stopped: bool = False,
) -> OptInTokenState:
    return OptInTokenState(
        id=token_id, kind=kind, topic=topic, expires_at=expires_at, used=used, stopped=stopped
    )


def message(
    purpose: Purpose = Purpose.PROMOTIONAL,
    *,
    topic: str | None = "sale",
    written_by_person: bool = False,
    is_reply: bool = False,
    fallback: Fallback = Fallback.EMAIL,
    hold_deadline: datetime | None = None,
) -> MessageSpec:
    return MessageSpec(
        purpose=purpose,
        topic=topic,
        written_by_person=written_by_person,
        is_reply=is_reply,
        fallback=fallback,
        hold_deadline=hold_deadline,
    )


def human_reply(**overrides: Any) -> MessageSpec:
    base = message(Purpose.HUMAN_REPLY, written_by_person=True, is_reply=True)
    return replace(base, **overrides)


def context(
    *,
    messenger: MessengerState | None,
    msg: MessageSpec | None = None,
    email: EmailStatus | None = EmailStatus.SUBSCRIBED,
    transactional_to_unconfirmed: bool = False,
    profile: str = "meta-2026-04",
    human_agent_enabled: bool = False,
    otn_enabled: bool = False,
    paused: bool = False,
    frequency_cap_reached: bool = False,
    cancelled: bool = False,
    send_window: SendWindow | None = None,
    now: datetime = NOW,
) -> SendContext:
    return SendContext(
        now=now,
        page=PageState(
            profile=profile,
            human_agent_enabled=human_agent_enabled,
            otn_enabled=otn_enabled,
            paused=paused,
        ),
        message=msg if msg is not None else message(),
        email=EmailState(status=email, transactional_to_unconfirmed=transactional_to_unconfirmed),
        messenger=messenger,
        frequency_cap_reached=frequency_cap_reached,
        cancelled=cancelled,
        send_window=send_window,
    )
