"""The pure parts of capture: origins, the client address, the wheel's draw, signed tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.capture import origins
from orchestrator.capture.client_ip import TrustedProxies, client_ip
from orchestrator.capture.tokens import (
    ConfirmLink,
    FormTokenProblem,
    FormTokenRejected,
    make_confirm_token,
    make_form_token,
    read_confirm_token,
    read_form_token,
)
from orchestrator.capture.wheel import Segment, draw
from orchestrator.crypto import KeyRing
from orchestrator.links import LinkExpired, LinkInvalid

RING = KeyRing("k" * 40)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ALLOWED = ["https://shop.vn", "https://*.aodaihong.vn", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("origin", "referer", "verdict", "seen"),
    [
        (None, None, "absent", None),
        ("https://shop.vn", None, "allowed", "https://shop.vn"),
        ("HTTPS://SHOP.VN:443", None, "allowed", "https://shop.vn"),
        ("https://shop.vn:8443", None, "refused", "https://shop.vn:8443"),
        ("http://shop.vn", None, "refused", "http://shop.vn"),
        ("null", None, "refused", None),
        ("https://m.aodaihong.vn", None, "allowed", "https://m.aodaihong.vn"),
        ("https://aodaihong.vn", None, "refused", "https://aodaihong.vn"),
        ("https://evil-aodaihong.vn", None, "refused", "https://evil-aodaihong.vn"),
        ("http://localhost:3000", None, "allowed", "http://localhost:3000"),
        (None, "https://shop.vn/a/b?c=d", "allowed", "https://shop.vn"),
        (None, "https://evil.example/", "refused", "https://evil.example"),
        (None, "android-app://com.facebook", "refused", None),
        ("https://evil.example", "https://shop.vn/", "refused", "https://evil.example"),
    ],
)
def test_origin_check(
    origin: str | None, referer: str | None, verdict: str, seen: str | None
) -> None:
    result = origins.check(origin, referer, ALLOWED)
    assert (result.verdict.value, result.origin) == (verdict, seen)
    headers = origins.cors_headers(result)
    assert headers.get("Access-Control-Allow-Origin") == (seen if verdict == "allowed" else None)
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.VN/", "https://shop.vn"),
        ("https://shop.vn:443", "https://shop.vn"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://*.Example.vn", "https://*.example.vn"),
    ],
)
def test_allowed_origins_are_normalised(value: str, expected: str) -> None:
    assert origins.normalize_allowed(value) == expected


@pytest.mark.parametrize(
    "value",
    ["shop.vn", "ftp://shop.vn", "https://shop.vn/page", "https://shop.vn?x=1", "https://*.vn",
     "https://user@shop.vn", "https://sh*p.vn", "https://"],
)  # fmt: skip
def test_bad_allowed_origins(value: str) -> None:
    with pytest.raises(origins.OriginInvalid):
        origins.normalize_allowed(value)


PROXIES = TrustedProxies.parse(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer's header is ignored
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.0.0.5", "198.51.100.1"),  # spoofed left part
        ("10.1.2.3", "10.0.0.9, 10.0.0.5", "10.0.0.9"),
        ("10.1.2.3", "garbage, 10.0.0.5", "10.0.0.5"),
        ("10.1.2.3", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", "203.0.113.7:5123", "203.0.113.7"),
        ("testclient", None, "testclient"),
        (None, "1.2.3.4", None),
    ],
)
def test_client_ip(peer: str | None, forwarded: str | None, expected: str | None) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_trusted_proxies_star_and_literals() -> None:
    everyone = TrustedProxies.parse(["*"])
    assert client_ip("203.0.113.9", "198.51.100.1, 203.0.113.10", everyone) == "198.51.100.1"
    assert TrustedProxies.parse(["/run/proxy.sock", " ", "10.0.0.1"]).networks == (
        TrustedProxies.parse(["10.0.0.1/32"]).networks
    )


SEGMENTS = [
    Segment("a", "10%", 1),
    Segment("b", "Áo dài", 3, available=False),
    Segment("c", "Lần sau", 2),
    Segment("d", "Hidden", 0),
]


def test_draw_is_weighted_among_available_segments() -> None:
    assert draw(SEGMENTS, 0.0).id == "a"  # type: ignore[union-attr]
    assert draw(SEGMENTS, 0.33).id == "a"  # type: ignore[union-attr]
    assert draw(SEGMENTS, 0.34).id == "c"  # type: ignore[union-attr]
    assert draw(SEGMENTS, 0.999999).id == "c"  # type: ignore[union-attr]
    assert draw([Segment("x", "x", 0), Segment("y", "y", 5, available=False)], 0.5) is None
    with pytest.raises(ValueError, match="r must be"):
        draw(SEGMENTS, 1.0)


@given(st.floats(min_value=0, max_value=1, exclude_max=True))
def test_draw_never_lands_on_what_cannot_be_won(r: float) -> None:
    chosen = draw(SEGMENTS, r)
    assert chosen is not None
    assert chosen.available and chosen.weight > 0


def token(now: datetime = NOW, form_id: str = "fm_1") -> str:
    return make_form_token(
        RING, workspace_id="ws_1", form_id=form_id, consent_version="v1", nonce="n", now=now
    )


def read(value: str | None, now: datetime, form_id: str = "fm_1") -> object:
    return read_form_token(
        RING, value, workspace_id="ws_1", form_id=form_id,
        min_fill=timedelta(seconds=2), max_age=timedelta(hours=2), now=now,
    )  # fmt: skip


def test_form_token_windows() -> None:
    issued = token()
    parsed = read(issued, NOW + timedelta(seconds=2))
    assert parsed == read(issued, NOW + timedelta(hours=2))
    for value, at, problem in [
        (issued, NOW + timedelta(seconds=1), FormTokenProblem.TOO_FRESH),
        (issued, NOW - timedelta(seconds=30), FormTokenProblem.EXPIRED),  # from the future
        (issued, NOW + timedelta(hours=2, seconds=1), FormTokenProblem.EXPIRED),
        (None, NOW, FormTokenProblem.MISSING),
        ("", NOW, FormTokenProblem.MISSING),
        (issued[:-4], NOW + timedelta(seconds=5), FormTokenProblem.INVALID),
        (token(form_id="fm_2"), NOW + timedelta(seconds=5), FormTokenProblem.INVALID),
    ]:
        with pytest.raises(FormTokenRejected) as caught:
            read(value, at)
        assert caught.value.problem is problem
    with pytest.raises(FormTokenRejected) as caught:
        read(issued, NOW + timedelta(milliseconds=500))
    assert caught.value.wait == timedelta(seconds=1, milliseconds=500)
    other_workspace = make_form_token(
        RING, workspace_id="ws_2", form_id="fm_1", consent_version="v1", nonce="n", now=NOW
    )
    with pytest.raises(FormTokenRejected):
        read(other_workspace, NOW + timedelta(seconds=5))


def test_confirm_token_round_trip_and_refusals() -> None:
    link = ConfirmLink("ws_abc", "em_1", "ev_1", "dl_1")
    value = make_confirm_token(RING, link, now=NOW)
    assert value.startswith("ws_abc~")
    assert read_confirm_token(RING, value, now=NOW + timedelta(days=7)) == link
    with pytest.raises(LinkExpired):
        read_confirm_token(RING, value, now=NOW + timedelta(days=7, seconds=1))
    for bad in (value[:-3] + "aaa", "ws_other~" + value.partition("~")[2], "nonsense", "ws_x~"):
        with pytest.raises(LinkInvalid):
            read_confirm_token(RING, bad, now=NOW)
