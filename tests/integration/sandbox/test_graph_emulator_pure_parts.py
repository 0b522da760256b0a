"""The emulator's pure modules, with literal inputs: signing, envelopes, the window, the limiter."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.sandbox import webhook_events as events
from channels.sandbox.faults import Fault, FaultBook
from channels.sandbox.graph_errors import GraphError, default_message
from channels.sandbox.messaging_window import ThreadState, record_inbound, window_open
from channels.sandbox.rate_limit import SlidingWindowLimiter
from channels.sandbox.send_validation import parse_send_request
from channels.sandbox.signature import encode_body, sign, verify
from channels.sandbox.variants import Variants

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SANDBOX = Path(__file__).resolve().parents[3] / "channels" / "sandbox"


def test_meta_example_is_signed_in_its_escaped_form() -> None:
    # reference §4.2: "äöå" is signed as "\u00e4\u00f6\u00e5".
    body = encode_body({"text": "äöå"})

    assert body == b'{"text":"\\u00e4\\u00f6\\u00e5"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert sign(body, "secret") == f"sha256={expected}"
    assert verify(body, f"sha256={expected.upper()}", "secret")
    assert not verify('{"text":"äöå"}'.encode(), sign(body, "secret"), "secret")
    assert not verify(body, None, "secret")
    assert not verify(body, f"sha1={expected}", "secret")


def test_escaped_slashes_stay_valid_json() -> None:
    body = encode_body({"url": "https://a.vn/b"}, escape_slashes=True)

    assert body == b'{"url":"https:\\/\\/a.vn\\/b"}'
    assert json.loads(body) == {"url": "https://a.vn/b"}


def test_milliseconds_are_exact() -> None:
    at = datetime(2026, 6, 1, 9, 0, 0, 999000, tzinfo=UTC)

    assert events.from_ms(events.to_ms(at)) == at
    assert events.to_ms(T0) == 1780304400000


def test_envelope_grouping_keeps_containers_apart() -> None:
    message = events.message_event("P", "U", timestamp_ms=1000, mid="m_1", text="a")
    standby = events.message_event("P", "U", timestamp_ms=2000, mid="m_2", text="b", standby=True)
    comment = events.feed_comment_event(
        "P", created_time_s=3, comment_id="c", post_id="p", parent_id="p",
        from_id="f", from_name="n", message="m",
    )  # fmt: skip

    body = events.build_envelope([message, message, standby, comment], group_by_page=True)

    assert [sorted(set(e) - {"id", "time"}) for e in body["entry"]] == [["messaging"], ["standby"], ["changes"]]  # fmt: skip
    assert len(body["entry"][0]["messaging"]) == 2
    assert body["entry"][2]["time"] == 3
    with pytest.raises(ValueError, match="at least one"):
        events.build_envelope([])


def test_window_state_only_moves_forward_and_counts_messages() -> None:
    state = record_inbound(ThreadState(), T0, opens_window=True, is_message=True)
    state = record_inbound(state, T0 - timedelta(hours=5), opens_window=True, is_message=True)
    state = record_inbound(state, T0 + timedelta(hours=1), opens_window=True, is_message=False)

    assert state.window_opened_at == T0 + timedelta(hours=1)
    assert state.last_person_message_at == T0
    assert state.person_messages == 2
    assert window_open(state, T0 + timedelta(hours=25) - timedelta(microseconds=1))
    assert not window_open(state, T0 + timedelta(hours=25))
    assert not window_open(ThreadState(), T0)


def test_ad_window_only_for_the_first_message() -> None:
    first = record_inbound(ThreadState(), T0, opens_window=True, is_message=True, from_ad=True)
    later = record_inbound(
        record_inbound(ThreadState(), T0, opens_window=True, is_message=True),
        T0, opens_window=True, is_message=True, from_ad=True,
    )  # fmt: skip

    assert first.ad_window_until == T0 + timedelta(days=7)
    assert later.ad_window_until is None


def test_limiter_admits_exactly_the_limit_per_sliding_second() -> None:
    limiter = SlidingWindowLimiter(3)

    first = [limiter.admit(T0) for _ in range(4)]
    at_edge = limiter.admit(T0 + timedelta(seconds=1))

    assert first == [True, True, True, False]
    assert at_edge is True
    assert limiter.in_window(T0 + timedelta(seconds=1)) == 1
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimiter(0)


def test_fault_book_first_match_wins_and_counts_down() -> None:
    book = FaultBook()
    book.add(Fault(book.next_id(), "error", code=551, psid="A", remaining=1))
    book.add(Fault(book.next_id(), "error", code=613, until=T0 + timedelta(seconds=1)))
    book.add(Fault(book.next_id(), "delay", delay_seconds=1.0, remaining=2))

    hits = [book.take_failure("messages", "P", "A", T0) for _ in range(2)]
    later = book.take_failure("messages", "P", "A", T0 + timedelta(seconds=1))
    delays = [len(book.take_delays("messages", "P", None, T0)) for _ in range(3)]

    assert [fault.code if fault else None for fault in hits] == [551, 613]
    assert later is None
    assert delays == [1, 1, 0]


def test_graph_error_body_shape() -> None:
    body = GraphError(10, 2018278).body("trace")

    assert body["error"]["code"] == 10
    assert body["error"]["error_subcode"] == 2018278
    assert body["error"]["is_transient"] is False
    assert body["error"]["fbtrace_id"] == "trace"
    assert default_message(190, None).startswith("Invalid OAuth")
    assert default_message(613, 999).startswith("(#613) Calls to this api")


def test_parse_send_request_reduces_the_request() -> None:
    request = parse_send_request(
        {
            "recipient": {"id": 2400000000000001},
            "messaging_type": "RESPONSE",
            "message": {"attachment": {"type": "video", "payload": {"url": "https://a.vn/v.mp4"}}},
        },
        Variants(),
    )

    assert request.recipient == "2400000000000001"
    assert request.is_media is True
    assert request.template_type is None


def test_quick_reply_payload_limit_can_be_lifted() -> None:
    body = {
        "recipient": {"id": "1"},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "?",
            "quick_replies": [{"content_type": "text", "title": "a", "payload": "p" * 5000}],
        },
    }

    with pytest.raises(GraphError):
        parse_send_request(body, Variants())
    assert parse_send_request(body, Variants(quick_reply_payload_max=None)).recipient == "1"


def test_the_emulator_is_built_from_the_reference_not_from_our_code() -> None:
    imported: set[str] = set()
    for path in SANDBOX.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)

    assert not {name for name in imported if name.startswith(("orchestrator", "channels.messenger", "channels.email"))}  # fmt: skip
    assert "channels.sandbox.emulator" in imported
