"""Pure webhook parsing: the signature over raw bytes, splitting bodies into keyed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from channels.messenger.webhooks import (
    WebhookBodyInvalid,
    parse_body,
    sign,
    signature_valid,
    split_events,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAGE = "104000000000001"


def envelope(*events: dict[str, object], page: str = PAGE) -> dict[str, object]:
    return {
        "object": "page",
        "entry": [{"id": page, "time": 1795608000000, "messaging": list(events)}],
    }


def test_signature_is_over_the_raw_escaped_bytes() -> None:
    text = {"text": "Chào bạn, áo dài đẹp quá"}
    escaped = json.dumps(text).encode()  # ensure_ascii: \u escapes, as Meta signs
    assert b"\\u00e0" in escaped
    header = sign(escaped, "s3cret")
    assert signature_valid(escaped, header, "s3cret")
    assert signature_valid(escaped, header.upper().replace("SHA256=", "sha256="), "s3cret")
    reserialised = json.dumps(json.loads(escaped), ensure_ascii=False).encode()
    assert not signature_valid(reserialised, header, "s3cret")
    assert not signature_valid(escaped, header, "other")
    for bad in (None, "", "sha1=" + header[7:], header[:-1], "sha256=zz"):
        assert not signature_valid(escaped, bad, "s3cret")


def test_bodies_that_are_not_envelopes_are_refused() -> None:
    for raw in (b"", b"not json", b"[1]", b'{"object": "page"}', b"\xff\xfe"):
        with pytest.raises(WebhookBodyInvalid):
            parse_body(raw)


def test_each_kind_gets_its_type_and_a_stable_key() -> None:
    base = {"sender": {"id": "55"}, "recipient": {"id": PAGE}, "timestamp": 1795608000123}
    body = envelope(
        {**base, "message": {"mid": "m_1", "text": "hi"}},
        {**base, "message": {"mid": "m_2", "is_echo": True, "app_id": 1}},
        {**base, "postback": {"mid": "m_3", "payload": "GET_STARTED"}},
        {**base, "referral": {"ref": "r", "source": "SHORTLINK", "type": "OPEN_THREAD"}},
        {
            **base,
            "optin": {"type": "one_time_notif_req", "payload": "p", "one_time_notif_token": "t"},
        },
        {**base, "reaction": {"mid": "m_1", "action": "react", "reaction": "love"}},
        {**base, "delivery": {"watermark": 1795608000000}},
        {**base, "read": {"watermark": 1795608000000}},
        {**base, "pass_thread_control": {"new_owner_app_id": "1"}},
        {**base, "something_new": {}},
    )
    events = split_events(body, received_at=NOW)
    assert [e.event_type for e in events] == [
        "messages", "message_echoes", "messaging_postbacks", "messaging_referrals",
        "messaging_optins", "message_reactions", "message_deliveries", "message_reads",
        "messaging_handovers", "unknown:something_new",
    ]  # fmt: skip
    assert events[0].event_key == "messages:m_1"
    assert events[1].event_key == "message_echoes:m_2"
    assert events[3].event_key == f"messaging_referrals:{PAGE}:55:1795608000123"
    assert len({e.event_key for e in events}) == len(events)
    assert all(e.page_id == PAGE for e in events)
    assert events[0].event_time == datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    again = split_events(json.loads(json.dumps(body)), received_at=NOW)
    assert [e.event_key for e in again] == [e.event_key for e in events]


def test_standby_feed_and_string_timestamps() -> None:
    body = {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": 1795608000000,
                "standby": [
                    {
                        "sender": {"id": "9"},
                        "recipient": {"id": PAGE},
                        "timestamp": "1795608000500",
                        "message": {"mid": "m_s", "text": "x"},
                    }
                ],
                "changes": [
                    {
                        "field": "feed",
                        "value": {
                            "item": "comment",
                            "verb": "add",
                            "comment_id": "1_2",
                            "post_id": "1_1",
                            "created_time": 1795608001,
                        },
                    }
                ],
            }
        ],
    }
    standby, comment = split_events(body, received_at=NOW)
    assert standby.standby
    assert standby.event_key == "standby:messages:m_s"
    assert standby.event_time == datetime(2026, 11, 25, 12, 0, 0, 500000, tzinfo=UTC)
    assert comment.event_type == "feed"
    assert comment.event_time == datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC)


def test_long_keys_are_hashed_and_bad_entries_skipped() -> None:
    base = {"sender": {"id": "1"}, "recipient": {"id": PAGE}, "timestamp": 1}
    body = envelope(
        {
            **base,
            "optin": {"type": "notification_messages", "notification_messages_token": "t" * 400},
        },
    )
    body["entry"].append("garbage")  # type: ignore[attr-defined]
    [event] = split_events(body, received_at=NOW)
    assert event.event_key.startswith("messaging_optins:sha256:")
    assert len(event.event_key) < 100
    weird = envelope({**base, "timestamp": "not a time", "message": {"mid": "m"}})
    [odd] = split_events(weird, received_at=NOW)
    assert odd.event_time == datetime.fromtimestamp(1795608000, UTC)
