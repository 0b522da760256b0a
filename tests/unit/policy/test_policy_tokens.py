"""One-time token eligibility and choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.policy import (
    OptInTokenState,
    TokenKind,
    one_time_token_usable,
    pick_one_time_token,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def token(
    token_id: str = "t",
    *,
    kind: TokenKind = TokenKind.ONE_TIME,
    topic: str = "sale",
    expires_at: datetime = NOW + timedelta(days=1),
    used: bool = False,
    stopped: bool = False,
) -> OptInTokenState:
    return OptInTokenState(token_id, kind, topic, expires_at, used, stopped)


def test_a_fresh_one_time_token_for_the_topic_is_usable() -> None:
    assert one_time_token_usable(token(), topic="sale", now=NOW)


def test_each_condition_on_its_own_makes_a_token_unusable() -> None:
    assert not one_time_token_usable(token(kind=TokenKind.RECURRING), topic="sale", now=NOW)
    assert not one_time_token_usable(token(topic="news"), topic="sale", now=NOW)
    assert not one_time_token_usable(token(used=True), topic="sale", now=NOW)
    assert not one_time_token_usable(token(stopped=True), topic="sale", now=NOW)
    assert not one_time_token_usable(token(expires_at=NOW), topic="sale", now=NOW)


def test_pick_prefers_the_earliest_expiry_then_the_id() -> None:
    later = token("b", expires_at=NOW + timedelta(days=5))
    sooner_b = token("b2", expires_at=NOW + timedelta(days=2))
    sooner_a = token("a2", expires_at=NOW + timedelta(days=2))
    assert pick_one_time_token([later, sooner_b, sooner_a], topic="sale", now=NOW) == sooner_a


def test_pick_finds_nothing_without_topic_or_usable_token() -> None:
    assert pick_one_time_token([token()], topic=None, now=NOW) is None
    assert pick_one_time_token([token(used=True)], topic="sale", now=NOW) is None
    assert pick_one_time_token([], topic="sale", now=NOW) is None
