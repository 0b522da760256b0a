"""Messenger webhooks, pure: the signature check and splitting a body into keyed events.

Reference section 4 is the contract: the body is signed with the app secret over the raw bytes as
received (4.2); each `entry` carries one Page's events under `messaging` (or `standby` when another
app owns the thread, 4.5) or Page-feed `changes` (4.5, feed); delivery is at-least-once and out of
order, so every event gets a stable key for deduplication and its own timestamp for ordering (4.3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
# Keys that identify what a `messaging` event is (reference 4.5); anything else is kept as
# `unknown:<key>` and acknowledged, never refused (DESIGN section 8).
_KINDS = (
    ("message", "messages"),
    ("postback", "messaging_postbacks"),
    ("referral", "messaging_referrals"),
    ("optin", "messaging_optins"),
    ("reaction", "message_reactions"),
    ("delivery", "message_deliveries"),
    ("read", "message_reads"),
    ("pass_thread_control", "messaging_handovers"),
    ("take_thread_control", "messaging_handovers"),
    ("request_thread_control", "messaging_handovers"),
    ("policy_enforcement", "messaging_policy_enforcement"),
    ("message_edit", "message_edits"),
)
_ENVELOPE = {"sender", "recipient", "timestamp"}


class WebhookBodyInvalid(ValueError):
    """The signed body is not the JSON envelope Meta sends."""


@dataclass(frozen=True)
class InboundEvent:
    page_id: str
    event_type: str
    event_key: str
    event_time: datetime
    payload: dict[str, Any]
    standby: bool = False


def signature_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Reference 4.2: `sha256=<hex>` of HMAC-SHA256 over the raw bytes, keyed with the app secret.
    Meta signs lowercase hex; we compare case-insensitively and in constant time."""
    if not header or not header.startswith(_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(_PREFIX) :].strip().lower())


def sign(raw_body: bytes, app_secret: str) -> str:
    return _PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def parse_body(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookBodyInvalid("body is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        raise WebhookBodyInvalid("body has no entry list")
    return body


def _millis_to_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # Messaging timestamps are epoch milliseconds (reference 4.5); feed times are seconds.
    seconds = number / 1000 if number > 10_000_000_000 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _kind(event: dict[str, Any]) -> str:
    message = event.get("message")
    if isinstance(message, dict) and message.get("is_echo"):
        return "message_echoes"
    for key, kind in _KINDS:
        if key in event:
            return kind
    extra = sorted(set(event) - _ENVELOPE)
    return f"unknown:{extra[0]}" if extra else "unknown"


def _id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id") or value.get("user_ref")
    return str(value) if value is not None else ""


def _messaging_key(kind: str, event: dict[str, Any], page_id: str) -> str:
    sender = _id(event.get("sender"))
    stamp = str(event.get("timestamp", ""))
    message = event.get("message")
    if kind in ("messages", "message_echoes") and isinstance(message, dict) and message.get("mid"):
        return f"{kind}:{message['mid']}"
    postback = event.get("postback")
    if kind == "messaging_postbacks" and isinstance(postback, dict) and postback.get("mid"):
        return f"{kind}:{postback['mid']}"
    detail = ""
    if kind == "message_reactions" and isinstance(event.get("reaction"), dict):
        reaction = event["reaction"]
        detail = f":{reaction.get('mid', '')}:{reaction.get('action', '')}:{reaction.get('reaction', '')}"
    elif kind in ("message_deliveries", "message_reads"):
        inner = event.get("delivery") or event.get("read") or {}
        if isinstance(inner, dict):
            detail = f":{inner.get('watermark', '')}"
    elif kind == "messaging_optins" and isinstance(event.get("optin"), dict):
        optin = event["optin"]
        detail = ":" + ":".join(
            str(optin.get(k, ""))
            for k in (
                "type",
                "payload",
                "notification_messages_status",
                "one_time_notif_token",
                "notification_messages_token",
            )
        )
    # Reference 4.3: events without a mid are deduplicated by (sender, timestamp, type).
    return f"{kind}:{page_id}:{sender}:{stamp}{detail}"


_MAX_KEY = 250


def _bounded(key: str) -> str:
    """Keys are stored in a 300-character unique column; long ones (opt-in tokens, odd ids)
    are replaced by their hash, which deduplicates just as well."""
    if len(key) <= _MAX_KEY:
        return key
    kind = key.split(":", 1)[0]
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def split_events(body: dict[str, Any], *, received_at: datetime) -> list[InboundEvent]:
    """One `InboundEvent` per messaging event or feed change, in body order."""
    events: list[InboundEvent] = []
    for entry in body.get("entry", []):
        if not isinstance(entry, dict):
            continue
        page_id = _id(entry.get("id"))
        entry_time = _millis_to_time(entry.get("time")) or received_at
        for field, standby in (("messaging", False), ("standby", True)):
            items = entry.get(field)
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict):
                    continue
                kind = _kind(item)
                key = _messaging_key(kind, item, page_id)
                events.append(
                    InboundEvent(
                        page_id=page_id,
                        event_type=kind,
                        event_key=_bounded(("standby:" + key) if standby else key),
                        event_time=_millis_to_time(item.get("timestamp")) or entry_time,
                        payload=item,
                        standby=standby,
                    )
                )
        changes = entry.get("changes")
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            field_name = str(change.get("field", "unknown"))
            value = change.get("value") if isinstance(change.get("value"), dict) else {}
            assert isinstance(value, dict)
            item_id = value.get("comment_id") or value.get("post_id") or ""
            key = f"{field_name}:{page_id}:{item_id}:{value.get('verb', '')}:{value.get('created_time', '')}"
            events.append(
                InboundEvent(
                    page_id=page_id,
                    event_type=field_name,
                    event_key=_bounded(key),
                    event_time=_millis_to_time(value.get("created_time")) or entry_time,
                    payload=change,
                )
            )
    return events
