"""The closed list of reasons, spelled exactly as DESIGN section 5's table."""

from __future__ import annotations

from orchestrator.policy import Reason, ReasonKind, Route

DESIGN_TABLE = [
    "messenger.window",
    "messenger.human_agent",
    "messenger.one_time_token",
    "messenger.tag",
    "email.window_closed",
    "email.no_messenger",
    "email.recipient_unavailable",
    "email.hold_expired",
    "held.until_window",
    "deferred.send_window",
    "skipped.unsubscribed",
    "skipped.unconfirmed",
    "skipped.bounced",
    "skipped.complained",
    "skipped.messenger_stopped",
    "skipped.human_takeover",
    "skipped.frequency_cap",
    "skipped.no_reachable_channel",
    "skipped.cancelled",
    "failed.retries_exhausted",
    "failed.page_paused",
    "failed.render",
    "failed.channel_misconfigured",
]


def test_reasons_are_exactly_the_design_table() -> None:
    assert [r.value for r in Reason] == DESIGN_TABLE


def test_reasons_are_strings() -> None:
    assert isinstance(Reason.SKIPPED_CANCELLED, str)
    assert f"{Reason.SKIPPED_CANCELLED}" == "skipped.cancelled"
    assert Reason("email.no_messenger") is Reason.EMAIL_NO_MESSENGER


def test_kind_is_the_prefix() -> None:
    for reason in Reason:
        assert reason.kind.value == reason.value.split(".")[0]
    assert Reason.HELD_UNTIL_WINDOW.kind is ReasonKind.HELD


def test_route_of_each_kind() -> None:
    routes = {reason.kind: reason.route for reason in Reason}
    assert routes == {
        ReasonKind.MESSENGER: Route.MESSENGER,
        ReasonKind.EMAIL: Route.EMAIL,
        ReasonKind.HELD: Route.NONE,
        ReasonKind.DEFERRED: Route.NONE,
        ReasonKind.SKIPPED: Route.NONE,
        ReasonKind.FAILED: Route.NONE,
    }
