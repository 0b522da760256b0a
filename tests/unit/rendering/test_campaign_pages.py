"""The campaign pages' pure parts: the session cookie, the Origin check, the funnel's bars, the
wording of every state and reason, and the style sheet's hash in the policy."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator import ui_session
from orchestrator.campaigns.queries import CampaignStats, Funnel
from orchestrator.crypto import KeyRing
from orchestrator.delivery_states import State
from orchestrator.policy import Reason
from orchestrator.rendering import campaign_pages as pages

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RING = KeyRing("unit-secret-" + "z" * 40)
WS = "ws_01m8m4r4ba9kg2m2wqx76zsemy"
KEY = "key_01m8m4r4ba9kg2m2wqx76zsemz"


def stats(**changes: object) -> CampaignStats:
    values: dict[str, object] = {
        "audience": 8,
        "by_state": {state.value: 0 for state in State} | {"sent": 6, "skipped": 3, "failed": 1},
        "sent_by_route": {
            "messenger.window": 3,
            "messenger.human_agent": 1,
            "email.no_messenger": 2,
        },
        "skipped_by_reason": {"skipped.unsubscribed": 1, "skipped.frequency_cap": 2},
        "failed_by_reason": {"failed.render": 1},
        "funnel": Funnel(fallback_emails=2, clicked=1, reopened=1, completed_on_messenger=0),
    }
    values.update(changes)
    return CampaignStats(**values)  # type: ignore[arg-type]


# -- the session cookie ----------------------------------------------------------------------------


def test_a_session_reads_back_until_it_expires() -> None:
    cookie = ui_session.issue(RING, workspace_id=WS, key_id=KEY, now=NOW)
    assert cookie.startswith(WS + ".")
    later = NOW + timedelta(seconds=3600)
    assert ui_session.read(RING, cookie, max_age=3600, now=later) == ui_session.UiSession(WS, KEY)
    with pytest.raises(ui_session.SessionRefused) as refused:
        ui_session.read(RING, cookie, max_age=3600, now=later + timedelta(seconds=1))
    assert refused.value.expired


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: None,
        lambda c: "",
        lambda c: c[:-2],
        lambda c: c.replace(WS, "ws_01m8m4r4ba9kg2m2wqx76zsem0", 1),
        lambda c: "../" + c,
        lambda c: c.split(".", 1)[1],
        lambda c: c + "x" * 2000,
    ],
)
def test_a_tampered_session_is_refused(mangle: Callable[[str], str | None]) -> None:
    cookie = ui_session.issue(RING, workspace_id=WS, key_id=KEY, now=NOW)
    with pytest.raises(ui_session.SessionRefused) as refused:
        ui_session.read(RING, mangle(cookie), max_age=3600, now=NOW)
    assert not refused.value.expired


def test_a_session_survives_a_key_rotation_but_not_another_secret() -> None:
    cookie = ui_session.issue(RING, workspace_id=WS, key_id=KEY, now=NOW)
    rotated = KeyRing("next-secret-" + "q" * 40, retired=(RING.current,))
    assert ui_session.read(rotated, cookie, max_age=60, now=NOW).key_id == KEY
    with pytest.raises(ui_session.SessionRefused):
        ui_session.read(KeyRing("next-secret-" + "q" * 40), cookie, max_age=60, now=NOW)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("https://outreach.example", True),
        ("https://OUTREACH.example:443", True),
        ("null", False),
        ("http://outreach.example", False),
        ("https://outreach.example:8443", False),
        ("https://evil.example", False),
        ("https://outreach.example.evil.example", False),
        ("", False),
    ],
)
def test_the_origin_check(origin: str | None, allowed: bool) -> None:
    assert ui_session.same_origin(origin, "https://outreach.example/base/") is allowed


# -- what the page shows ---------------------------------------------------------------------------


def test_every_state_reason_and_status_has_vietnamese_and_english_wording() -> None:
    assert set(pages.STATE_LABELS) == set(State)
    assert set(pages.REASON_LABELS) == set(Reason)
    for label in [*pages.STATE_LABELS.values(), *pages.REASON_LABELS.values()]:
        assert label.vi and label.en and label.vi != label.en


def test_the_funnel_puts_messenger_first_and_draws_to_scale() -> None:
    bars = pages.funnel_bars(stats())
    assert [(b.key, b.count) for b in bars] == [
        ("audience", 8),
        ("sent_messenger", 4),
        ("fallback_email", 2),
        ("clicked", 1),
        ("reopened", 1),
        ("completed", 0),
    ]
    assert [b.width for b in bars] == ["100", "50", "25", "12.5", "12.5", "0"]


def test_bars_scale_to_the_longest_and_a_tiny_count_still_shows() -> None:
    bars = pages.funnel_bars(stats(audience=0, sent_by_route={"messenger.window": 1000}))
    assert bars[1].width == "100"
    assert bars[0].width == "0"
    tiny = pages.funnel_bars(stats(audience=100_000))
    assert tiny[3].count == 1 and tiny[3].width == "1"
    empty = pages.funnel_bars(stats(audience=0, sent_by_route={}, funnel=Funnel()))
    assert {b.width for b in empty} == {"0"}


def test_problems_list_skipped_then_failed_largest_first() -> None:
    bars = pages.problem_bars(stats())
    assert [(b.key, b.count, b.code) for b in bars] == [
        ("skipped.frequency_cap", 2, "skipped.frequency_cap"),
        ("skipped.unsubscribed", 1, "skipped.unsubscribed"),
        ("failed.render", 1, "failed.render"),
    ]
    assert bars[2].colour != bars[1].colour
    unknown = pages.problem_bars(stats(skipped_by_reason={"unknown": 1}, failed_by_reason={}))
    assert unknown[0].label == pages.UNKNOWN


def test_pause_reasons_read_as_sentences() -> None:
    assert pages.pause_label(None) is None
    operator = pages.pause_label("operator")
    assert operator is not None and "operator" in operator.en
    page = pages.pause_label("page_paused: token_expired")
    assert page == pages.Label(
        "Trang đang tạm dừng: token_expired", "The Page is paused: token_expired"
    )


def test_times_show_in_the_workspace_zone() -> None:
    shown = pages.moment(NOW, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert shown == pages.Moment(iso="2026-11-20T09:00:00+00:00", text="2026-11-20 16:00")
    assert pages.moment(None, ZoneInfo("UTC")) is None


def test_links_keep_the_filters_and_drop_empty_ones() -> None:
    assert pages.campaign_url("cmp_1") == "/campaigns/cmp_1"
    assert (
        pages.campaign_url("cmp_1", state="sent", reason=None, channel="", cursor="a b&c")
        == "/campaigns/cmp_1?state=sent&cursor=a+b%26c"
    )


def test_the_policy_allows_exactly_the_style_sheet_and_nothing_else() -> None:
    html = pages.render_login_page()
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = pages.content_security_policy()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in html and " style=" not in html


def test_the_login_page_never_holds_a_key_and_shows_the_error_only_when_asked() -> None:
    assert 'role="alert"' not in pages.render_login_page()
    failed = pages.render_login_page(failed=True)
    assert 'role="alert"' in failed
    assert re.search(r'<input id="api_key" name="api_key" type="password"[^>]*>', failed)
    assert "value=" not in failed
