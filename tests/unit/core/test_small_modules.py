from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.api.problems import field_path
from orchestrator.apikeys import generate_key, parse_key
from orchestrator.clock import FrozenClock, SystemClock
from orchestrator.ids import new_id


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    earlier = new_id("ct", millis=1_700_000_000_000)
    later = new_id("ct", millis=1_700_000_000_001)
    assert earlier.startswith("ct_")
    assert len(earlier) == 3 + 26
    assert earlier < later
    assert len({new_id("ct") for _ in range(1000)}) == 1000


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, 7, 0, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
    assert clock.advance(timedelta(hours=23, minutes=59)) == datetime(2026, 1, 2, 6, 59, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        FrozenClock(datetime(2026, 1, 1))  # noqa: DTZ001


def test_system_clock_applies_the_offset() -> None:
    plain = SystemClock().now()
    shifted = SystemClock(offset_seconds=-86_400).now()
    assert shifted.tzinfo is not None
    assert timedelta(hours=23, minutes=59) < plain - shifted < timedelta(hours=24, minutes=1)


def test_api_keys_have_a_prefix_and_enough_entropy() -> None:
    prefix, key = generate_key()
    assert key.startswith(f"ok_{prefix}_")
    assert parse_key(key) == prefix
    assert len(key.split("_", 2)[2]) >= 43  # 32 random bytes, base64url
    assert generate_key()[1] != key
    for bad in ("", "ok_", "ok_short_x", "xx_" + key[3:], key.replace("ok_", "ok", 1)):
        assert parse_key(bad) is None


def test_field_paths_read_like_json_paths() -> None:
    assert field_path(("steps", 1, "delay", "after")) == "steps[1].delay.after"
    assert field_path(()) == "body"
    assert field_path(("name",)) == "name"
