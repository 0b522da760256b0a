"""Consent: the email status is a projection of the ledger (DESIGN section 4). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

EmailStatus = Literal["unconfirmed", "subscribed", "unsubscribed", "bounced", "complained"]
Action = Literal["subscribe", "confirm", "unsubscribe", "bounce", "complaint", "resubscribe"]

SOURCES: Final = (
    "popup", "minigame", "embedded", "comment", "hotline", "import", "api",
    "messenger_quick_reply", "mme", "double_opt_in", "unsubscribe_link", "merge",
)  # fmt: skip

# Higher is stricter; a merge keeps the stricter of two states.
STRICTNESS: Final[dict[EmailStatus, int]] = {
    "subscribed": 0,
    "unconfirmed": 1,
    "unsubscribed": 2,
    "bounced": 3,
    "complained": 4,
}
# States a new consent claim (import, API, capture) cannot lift: only a fresh double opt-in can.
LOCKED: Final[frozenset[EmailStatus]] = frozenset({"unsubscribed", "bounced", "complained"})


@dataclass(frozen=True)
class ConsentEvent:
    action: Action
    source: str
    occurred_at: datetime


def next_status(current: EmailStatus, action: Action) -> EmailStatus:
    """The status after one ledger action."""
    if action == "subscribe":
        return current if current in LOCKED else "subscribed"
    if action in ("confirm", "resubscribe"):
        # A confirmed double opt-in proves fresh consent; it lifts an unsubscribe but never a
        # complaint, and a bounced address must prove it receives mail (the confirmation did).
        return current if current == "complained" else "subscribed"
    if action == "unsubscribe":
        return current if current in ("bounced", "complained") else "unsubscribed"
    if action == "bounce":
        return current if current == "complained" else "bounced"
    return "complained"


def project(events: list[ConsentEvent], initial: EmailStatus = "unconfirmed") -> EmailStatus:
    """Replay the ledger in time order; the column must always equal this."""
    status = initial
    for event in sorted(events, key=lambda e: e.occurred_at):
        status = next_status(status, event.action)
    return status


def stricter(a: EmailStatus, b: EmailStatus) -> EmailStatus:
    return a if STRICTNESS[a] >= STRICTNESS[b] else b
