"""The dated profile tables and their guards."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import date, timedelta

import pytest

from orchestrator.policy import (
    DEFAULT_PROFILE,
    META_2020_03,
    META_2026_04,
    PROFILES,
    MessageTag,
    Purpose,
    find_profile,
    profile_in_force,
)

RETIRED = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE")


def test_profiles_are_registered_by_name_and_the_default_is_2026() -> None:
    assert set(PROFILES) == {"meta-2026-04", "meta-2020-03"}
    assert DEFAULT_PROFILE == "meta-2026-04"
    assert find_profile(DEFAULT_PROFILE) is META_2026_04
    assert find_profile("meta-2020-03") is META_2020_03
    assert find_profile("meta-2019-01") is None


def test_both_profiles_use_24_hours_and_7_days() -> None:
    for profile in PROFILES.values():
        assert profile.window == timedelta(hours=24)
        assert profile.human_agent_window == timedelta(days=7)
        assert profile.human_agent_route


def test_2026_profile() -> None:
    assert META_2026_04.effective_from == date(2026, 4, 27)
    assert META_2026_04.effective_until is None
    assert META_2026_04.allowed_tags == ("HUMAN_AGENT",)
    assert META_2026_04.one_time_token_route
    assert not META_2026_04.recurring_token_route
    assert tuple(t.name for t in META_2026_04.retired_tags) == RETIRED
    assert all(t.retired_on == date(2026, 4, 27) for t in META_2026_04.retired_tags)
    assert META_2026_04.campaign_purposes == {Purpose.PROMOTIONAL, Purpose.TRANSACTIONAL}


def test_2020_profile() -> None:
    assert META_2020_03.effective_from == date(2020, 3, 4)
    assert META_2020_03.effective_until == date(2026, 4, 27)
    assert META_2020_03.allowed_tags == ("HUMAN_AGENT", *RETIRED)
    assert META_2020_03.one_time_token_route
    assert not META_2020_03.recurring_token_route
    assert META_2020_03.retired_tags == ()
    assert Purpose.EVENT_UPDATE in META_2020_03.campaign_purposes


def test_each_2020_tag_carries_only_its_own_purpose() -> None:
    assert META_2020_03.tag_for(Purpose.EVENT_UPDATE) == MessageTag(
        "CONFIRMED_EVENT_UPDATE", frozenset({Purpose.EVENT_UPDATE})
    )
    for purpose in (Purpose.PROMOTIONAL, Purpose.TRANSACTIONAL, Purpose.HUMAN_REPLY):
        assert META_2020_03.tag_for(purpose) is None
    for tag in META_2020_03.message_tags:
        assert len(tag.purposes) == 1


def test_retired_tag_lookup() -> None:
    retired = META_2026_04.retired_tag_for(Purpose.POST_PURCHASE_UPDATE)
    assert retired is not None
    assert retired.name == "POST_PURCHASE_UPDATE"
    assert META_2026_04.retired_tag_for(Purpose.PROMOTIONAL) is None
    assert META_2026_04.tag_for(Purpose.POST_PURCHASE_UPDATE) is None


def test_no_tag_may_ever_carry_promotional_content() -> None:
    with pytest.raises(ValueError, match="promotional"):
        MessageTag("CONFIRMED_EVENT_UPDATE", frozenset({Purpose.EVENT_UPDATE, Purpose.PROMOTIONAL}))


@pytest.mark.parametrize(
    "tag",
    [
        ("HUMAN_AGENT", frozenset({Purpose.TRANSACTIONAL})),
        ("ACCOUNT_UPDATE", frozenset({Purpose.HUMAN_REPLY})),
    ],
)
def test_human_agent_is_not_a_message_tag(tag: tuple[str, frozenset[Purpose]]) -> None:
    with pytest.raises(ValueError, match="human_agent_route"):
        MessageTag(*tag)


def test_profiles_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        META_2026_04.one_time_token_route = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2020, 3, 4), "meta-2020-03"),
        (date(2026, 4, 26), "meta-2020-03"),
        (date(2026, 4, 27), "meta-2026-04"),
        (date(2030, 1, 1), "meta-2026-04"),
    ],
)
def test_profile_in_force(day: date, name: str) -> None:
    profile = profile_in_force(day)
    assert profile is not None
    assert profile.name == name


def test_no_profile_before_march_2020() -> None:
    assert profile_in_force(date(2020, 3, 3)) is None
