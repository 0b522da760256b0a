"""Which opt-in token, if any, may carry a message outside the window."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from orchestrator.policy.inputs import OptInTokenState, TokenKind


def one_time_token_usable(token: OptInTokenState, *, topic: str, now: datetime) -> bool:
    # Reference §3.1, [S18]: single use, expires (within a year), for the topic the person asked.
    # Recurring tokens never qualify: that feature is discontinued (reference §3.2, [S20][S21]).
    return (
        token.kind is TokenKind.ONE_TIME
        and token.topic == topic
        and not token.used
        and not token.stopped
        and now < token.expires_at
    )


def pick_one_time_token(
    tokens: Iterable[OptInTokenState], *, topic: str | None, now: datetime
) -> OptInTokenState | None:
    """The usable one-time token for `topic` that expires first (ties broken by id)."""
    if topic is None:
        return None
    usable = [t for t in tokens if one_time_token_usable(t, topic=topic, now=now)]
    return min(usable, key=lambda t: (t.expires_at, t.id), default=None)
