"""Policy profiles: Meta's Messenger rules as dated data tables (DESIGN section 5).

Meta keeps changing the rules, so each rule set is a value, chosen per Page; the decision code reads
the table and never names a date. Sources are the reference's ids (reference/messenger-platform.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType

from orchestrator.policy.inputs import Purpose
from orchestrator.policy.window import HUMAN_AGENT_WINDOW, STANDARD_WINDOW

HUMAN_AGENT_TAG = "HUMAN_AGENT"


@dataclass(frozen=True)
class MessageTag:
    """A tag an automated message may carry outside the window, and the purposes it may carry.

    HUMAN_AGENT is not one of these: it has its own rules (a person's reply, 7 days, Page feature).
    """

    name: str
    purposes: frozenset[Purpose]

    def __post_init__(self) -> None:
        # Reference §2, [S2][S3]: tags may never carry promotional content.
        if Purpose.PROMOTIONAL in self.purposes:
            raise ValueError(f"{self.name}: a tag never carries promotional content")
        if self.name == HUMAN_AGENT_TAG or Purpose.HUMAN_REPLY in self.purposes:
            raise ValueError("HUMAN_AGENT is the profile's human_agent_route, not a message tag")


@dataclass(frozen=True)
class RetiredTag:
    """A tag Meta retired: refused locally instead of being sent to fail with error 100."""

    name: str
    purpose: Purpose
    retired_on: date


@dataclass(frozen=True)
class PolicyProfile:
    name: str
    effective_from: date
    effective_until: date | None
    window: timedelta
    human_agent_window: timedelta
    human_agent_route: bool
    one_time_token_route: bool
    recurring_token_route: bool
    message_tags: tuple[MessageTag, ...]
    retired_tags: tuple[RetiredTag, ...]
    campaign_purposes: frozenset[Purpose]

    def tag_for(self, purpose: Purpose) -> MessageTag | None:
        return next((t for t in self.message_tags if purpose in t.purposes), None)

    def retired_tag_for(self, purpose: Purpose) -> RetiredTag | None:
        return next((t for t in self.retired_tags if t.purpose is purpose), None)

    @property
    def allowed_tags(self) -> tuple[str, ...]:
        human = (HUMAN_AGENT_TAG,) if self.human_agent_route else ()
        return human + tuple(t.name for t in self.message_tags)

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_until is None or day < self.effective_until
        )


# Reference §0 and §1, [S25][T7][T8]: the Aug-2019 policy took effect on 2020-03-04, ending "24+1"
# and cutting ~17 tags to 4.
_MARCH_2020 = date(2020, 3, 4)
# Reference §0 and §2, [S2][S3][S4][T1][T2]: since 2026-04-27 the three tags fail with error 100
# (announced 2026-03-27). Some third parties saw it from 2026-02-10 [T3]; Meta's docs give Apr 27.
_APRIL_2026 = date(2026, 4, 27)

_CAMPAIGN_PURPOSES = frozenset({Purpose.PROMOTIONAL, Purpose.TRANSACTIONAL})
_TAGGED_PURPOSES = {
    "CONFIRMED_EVENT_UPDATE": Purpose.EVENT_UPDATE,
    "POST_PURCHASE_UPDATE": Purpose.POST_PURCHASE_UPDATE,
    "ACCOUNT_UPDATE": Purpose.ACCOUNT_UPDATE,
}

META_2020_03 = PolicyProfile(
    name="meta-2020-03",
    effective_from=_MARCH_2020,
    effective_until=_APRIL_2026,
    # Reference §1, [S1][S2]: the 24-hour standard window.
    window=STANDARD_WINDOW,
    # Reference §2, [S3]: HUMAN_AGENT up to 7 days after the person's message (then in beta;
    # generally available Jun 2, 2021 [S4]).
    human_agent_window=HUMAN_AGENT_WINDOW,
    human_agent_route=True,
    # Reference §3.1, [S18][S25]: one-time notifications, single use.
    one_time_token_route=True,
    # Recurring notifications did not exist yet in March 2020 (reference §3.2, [S20]).
    recurring_token_route=False,
    # Reference §2 tag table, [S3][T8]: each tag for its own non-promotional purpose.
    message_tags=tuple(
        MessageTag(name=tag, purposes=frozenset({purpose}))
        for tag, purpose in _TAGGED_PURPOSES.items()
    ),
    retired_tags=(),
    campaign_purposes=_CAMPAIGN_PURPOSES | frozenset(_TAGGED_PURPOSES.values()),
)

META_2026_04 = PolicyProfile(
    name="meta-2026-04",
    effective_from=_APRIL_2026,
    effective_until=None,
    # Reference §1, [S1]: still 24 hours (the 7-day Click-to-Messenger-ad window is UNCONFIRMED in
    # its mechanics and not modelled; DESIGN section 13).
    window=STANDARD_WINDOW,
    # Reference §2, [S3]: HUMAN_AGENT needs the Human Agent feature from App Review.
    human_agent_window=HUMAN_AGENT_WINDOW,
    human_agent_route=True,
    # Reference §3.1, [S18][S2]: legacy Beta page, no deprecation notice found; best effort.
    one_time_token_route=True,
    # Reference §3.2, [S20][S21]: no new integrations from 2025-09-01, discontinued 2026-02-10.
    recurring_token_route=False,
    # CUSTOMER_FEEDBACK stays active but only with its own template (reference §2, [S3][S29]),
    # which the product does not build yet (DESIGN section 13), so no automated tag remains.
    message_tags=(),
    retired_tags=tuple(
        RetiredTag(name=tag, purpose=purpose, retired_on=_APRIL_2026)
        for tag, purpose in _TAGGED_PURPOSES.items()
    ),
    campaign_purposes=_CAMPAIGN_PURPOSES,
)

PROFILES: Mapping[str, PolicyProfile] = MappingProxyType(
    {p.name: p for p in (META_2026_04, META_2020_03)}
)


def find_profile(name: str) -> PolicyProfile | None:
    return PROFILES.get(name)


def profile_in_force(day: date) -> PolicyProfile | None:
    """The profile describing Meta's rules on `day`; None before March 2020 (not modelled)."""
    return next((p for p in PROFILES.values() if p.in_force_on(day)), None)
