from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.crypto import CryptoError, KeyRing, TokenExpired, TokenInvalid, key_id

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_encrypt_round_trip_and_randomised() -> None:
    ring = KeyRing(NEW)
    first = ring.encrypt("EAAB-page-token", context="page:ws_1")
    second = ring.encrypt("EAAB-page-token", context="page:ws_1")
    assert first != second
    assert "EAAB" not in first
    assert ring.decrypt(first, context="page:ws_1") == "EAAB-page-token"


def test_ciphertext_is_bound_to_its_context() -> None:
    ring = KeyRing(NEW)
    sealed = ring.encrypt("secret", context="page:ws_1")
    with pytest.raises(CryptoError):
        ring.decrypt(sealed, context="page:ws_2")


def test_tampered_or_garbage_ciphertext_is_refused() -> None:
    ring = KeyRing(NEW)
    sealed = ring.encrypt("secret", context="c")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (tampered, "garbage", "v1.zzzzzz.abc", "v9." + sealed.split(".", 1)[1]):
        with pytest.raises(CryptoError):
            ring.decrypt(bad, context="c")


def test_rotation_decrypts_old_ciphertexts_and_flags_them() -> None:
    old_ring = KeyRing(OLD)
    sealed = old_ring.encrypt("token", context="c")
    rotated = KeyRing(NEW, (OLD,))
    assert rotated.decrypt(sealed, context="c") == "token"
    assert rotated.needs_reencryption(sealed)
    assert not rotated.needs_reencryption(rotated.encrypt("token", context="c"))
    with pytest.raises(CryptoError):
        KeyRing(NEW).decrypt(sealed, context="c")


def test_signed_token_round_trip_is_compact_and_url_safe() -> None:
    ring = KeyRing(NEW)
    payload = {"c": "ct_01m89n34tgbv8r3vtsbye0qqq8", "d": "dl_01m89n34tgbv8r3vtsbye0qqq8", "i": "s"}
    token = ring.sign(payload, workspace_id="ws_1", purpose="ref", now=NOW)
    assert token.startswith(key_id(NEW) + ".")
    assert len(token) < 250
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    assert ring.unsign(token, workspace_id="ws_1", purpose="ref", max_age=60, now=NOW) == payload


def test_token_expires_exactly_after_max_age() -> None:
    ring = KeyRing(NEW)
    token = ring.sign("x", workspace_id="ws", purpose="ref", now=NOW)
    later = NOW + timedelta(seconds=30)
    assert ring.unsign(token, workspace_id="ws", purpose="ref", max_age=30, now=later) == "x"
    with pytest.raises(TokenExpired):
        ring.unsign(
            token, workspace_id="ws", purpose="ref", max_age=30, now=later + timedelta(seconds=1)
        )


def test_token_from_another_workspace_or_purpose_does_not_verify() -> None:
    ring = KeyRing(NEW)
    token = ring.sign("x", workspace_id="ws_a", purpose="ref", now=NOW)
    with pytest.raises(TokenInvalid):
        ring.unsign(token, workspace_id="ws_b", purpose="ref", max_age=60, now=NOW)
    with pytest.raises(TokenInvalid):
        ring.unsign(token, workspace_id="ws_a", purpose="unsubscribe", max_age=60, now=NOW)


def test_tampered_truncated_and_unknown_key_tokens_are_invalid() -> None:
    ring = KeyRing(NEW)
    token = ring.sign({"c": "1"}, workspace_id="ws", purpose="ref", now=NOW)
    kid, rest = token.split(".", 1)
    candidates = [
        token[:-3],
        token[: len(kid) + 1],
        "ffffff." + rest,
        kid + "." + rest.replace(rest[0], "Z" if rest[0] != "Z" else "Y", 1),
    ]
    for bad in candidates:
        with pytest.raises(TokenInvalid):
            ring.unsign(bad, workspace_id="ws", purpose="ref", max_age=60, now=NOW)


def test_tokens_signed_with_a_retired_key_still_verify() -> None:
    token = KeyRing(OLD).sign("x", workspace_id="ws", purpose="ref", now=NOW)
    assert (
        KeyRing(NEW, (OLD,)).unsign(token, workspace_id="ws", purpose="ref", max_age=9, now=NOW)
        == "x"
    )
    with pytest.raises(TokenInvalid):
        KeyRing(NEW).unsign(token, workspace_id="ws", purpose="ref", max_age=9, now=NOW)


def test_keyed_hashes_cover_current_and_retired_keys() -> None:
    ring = KeyRing(NEW, (OLD,))
    hashes = ring.keyed_hashes("lan@example.com", purpose="suppression")
    assert len(hashes) == 2
    assert hashes[0] == KeyRing(NEW).keyed_hashes("lan@example.com", purpose="suppression")[0]
    assert hashes[1] == KeyRing(OLD).keyed_hashes("lan@example.com", purpose="suppression")[0]
    assert hashes[0] != ring.keyed_hashes("lan@example.com", purpose="other")[0]


def test_short_master_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        KeyRing("short")
