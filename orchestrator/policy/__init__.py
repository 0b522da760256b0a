"""The pure send-time policy (DESIGN section 5): no I/O, no clock, no database, no channels.

Callers build a `SendContext` from their rows and `now`, and call `decide`.
"""

from orchestrator.policy.decision import (
    Decision,
    MessagingType,
    MessengerFailure,
    decide,
    decide_after_messenger_failure,
)
from orchestrator.policy.inputs import (
    DEFAULT_PROFILE,
    EmailState,
    EmailStatus,
    Fallback,
    MessageSpec,
    MessengerState,
    OptInTokenState,
    PageState,
    Purpose,
    SendContext,
    TokenKind,
)
from orchestrator.policy.profiles import (
    HUMAN_AGENT_TAG,
    META_2020_03,
    META_2026_04,
    PROFILES,
    MessageTag,
    PolicyProfile,
    RetiredTag,
    find_profile,
    profile_in_force,
)
from orchestrator.policy.reasons import Reason, ReasonKind, Route
from orchestrator.policy.send_window import SendWindow
from orchestrator.policy.tokens import one_time_token_usable, pick_one_time_token
from orchestrator.policy.window import (
    HUMAN_AGENT_WINDOW,
    STANDARD_WINDOW,
    human_agent_open,
    human_agent_until,
    window_closes_at,
    window_open,
)

__all__ = [
    "DEFAULT_PROFILE",
    "HUMAN_AGENT_TAG",
    "HUMAN_AGENT_WINDOW",
    "META_2020_03",
    "META_2026_04",
    "PROFILES",
    "STANDARD_WINDOW",
    "Decision",
    "EmailState",
    "EmailStatus",
    "Fallback",
    "MessageSpec",
    "MessageTag",
    "MessagingType",
    "MessengerFailure",
    "MessengerState",
    "OptInTokenState",
    "PageState",
    "PolicyProfile",
    "Purpose",
    "Reason",
    "ReasonKind",
    "RetiredTag",
    "Route",
    "SendContext",
    "SendWindow",
    "TokenKind",
    "decide",
    "decide_after_messenger_failure",
    "find_profile",
    "human_agent_open",
    "human_agent_until",
    "one_time_token_usable",
    "pick_one_time_token",
    "profile_in_force",
    "window_closes_at",
    "window_open",
]
