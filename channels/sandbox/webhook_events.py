"""Webhook event payloads, shaped as Meta delivers them (reference §3.1, §3.2, §4.5).

Pure builders: ids, times and texts in; `WebhookEvent` values out. `build_envelope` wraps events in
the `{"object": "page", "entry": [...]}` body. Times are epoch milliseconds except the Page `feed`
change, whose captured payloads use seconds (reference §4.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Container = Literal["messaging", "standby", "changes"]

# reference §4.5, [S4]: echoes with this app id are a human replying from the Page inbox.
PAGE_INBOX_APP_ID = "263902037430900"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(at: datetime) -> int:
    """Epoch milliseconds, exact (no float rounding)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class WebhookEvent:
    """One event for one Page, with the subscription field that carries it."""

    page_id: str
    field: str
    timestamp_ms: int
    item: Mapping[str, Any]
    container: Container = "messaging"


def _party(psid: str | None = None, user_ref: str | None = None) -> dict[str, str]:
    if user_ref is not None:
        return {"user_ref": user_ref}
    if psid is None:
        raise ValueError("an event needs a psid or a user_ref")
    return {"id": psid}


def _inbound(
    page_id: str, psid: str, timestamp_ms: int, key: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp_ms,
        key: dict(body),
    }


def container_for(standby: bool) -> Container:
    # reference §4.5, [S15]: when another app owns the thread events arrive under standby[].
    return "standby" if standby else "messaging"


def message_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    mid: str,
    text: str | None = None,
    quick_reply_payload: str | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    reply_to_mid: str | None = None,
    referral: Mapping[str, Any] | None = None,
    standby: bool = False,
) -> WebhookEvent:
    """`messages`: the person wrote, tapped a quick reply or sent attachments (§4.5, [S10])."""
    message: dict[str, Any] = {"mid": mid}
    if text is not None:
        message["text"] = text
    if quick_reply_payload is not None:
        message["quick_reply"] = {"payload": quick_reply_payload}
    if attachments:
        message["attachments"] = [dict(item) for item in attachments]
    if reply_to_mid is not None:
        message["reply_to"] = {"mid": reply_to_mid, "is_self_reply": False}
    if referral is not None:
        # reference §4.5: a first message from an ad carries message.referral [S4][T*].
        message["referral"] = dict(referral)
    item = _inbound(page_id, psid, timestamp_ms, "message", message)
    return WebhookEvent(page_id, "messages", timestamp_ms, item, container_for(standby))


def echo_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    mid: str,
    app_id: str,
    app_id_as_int: bool = True,
    text: str | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    quick_replies: Sequence[Mapping[str, Any]] | None = None,
    metadata: str | None = None,
    standby: bool = False,
) -> WebhookEvent:
    """`message_echoes`: the Page sent something; sender is the Page (§4.5, [S15])."""
    message: dict[str, Any] = {
        "mid": mid,
        "is_echo": True,
        "app_id": int(app_id) if app_id_as_int and app_id.isdigit() else app_id,
    }
    if metadata is not None:
        message["metadata"] = metadata
    if text is not None:
        message["text"] = text
    if attachments:
        message["attachments"] = [dict(item) for item in attachments]
    if quick_replies:
        message["quick_replies"] = [dict(item) for item in quick_replies]
    item = {
        "sender": {"id": page_id},
        "recipient": {"id": psid},
        "timestamp": timestamp_ms,
        "message": message,
    }
    return WebhookEvent(page_id, "message_echoes", timestamp_ms, item, container_for(standby))


def referral_body(
    ref: str | None,
    *,
    source: str = "SHORTLINK",
    referral_type: str = "OPEN_THREAD",
    ad_id: str | None = None,
    ads_context_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `referral` object of postbacks, referrals and ad-originated messages (§4.5, [S12])."""
    body: dict[str, Any] = {}
    if ref is not None:
        body["ref"] = ref
    body["source"] = source
    body["type"] = referral_type
    if ad_id is not None:
        body["ad_id"] = ad_id
    if ads_context_data is not None:
        body["ads_context_data"] = dict(ads_context_data)
    return body


def postback_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    mid: str,
    title: str,
    payload: str,
    referral: Mapping[str, Any] | None = None,
    standby: bool = False,
) -> WebhookEvent:
    """`messaging_postbacks`: Get Started, a postback button or a menu item (§4.5, [S11])."""
    postback: dict[str, Any] = {"mid": mid, "title": title, "payload": payload}
    if referral is not None:
        # reference §4.5: present only when a new thread was opened through a link or ad [S11].
        postback["referral"] = dict(referral)
    item = _inbound(page_id, psid, timestamp_ms, "postback", postback)
    return WebhookEvent(page_id, "messaging_postbacks", timestamp_ms, item, container_for(standby))


def referral_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    referral: Mapping[str, Any],
    standby: bool = False,
) -> WebhookEvent:
    """`messaging_referrals`: an existing thread re-entered via m.me or an ad (§4.5, [S12])."""
    item = _inbound(page_id, psid, timestamp_ms, "referral", referral)
    return WebhookEvent(page_id, "messaging_referrals", timestamp_ms, item, container_for(standby))


def _optin_item(
    page_id: str,
    sender: Mapping[str, str],
    timestamp_ms: int,
    optin: Mapping[str, Any],
    timestamp_as_string: bool,
) -> dict[str, Any]:
    return {
        "sender": dict(sender),
        "recipient": {"id": page_id},
        # reference §3.2 sample [S13] prints the timestamp as a string; selectable.
        "timestamp": str(timestamp_ms) if timestamp_as_string else timestamp_ms,
        "optin": dict(optin),
    }


def one_time_optin_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    payload: str,
    token: str,
    timestamp_as_string: bool = False,
) -> WebhookEvent:
    """`messaging_optins` for a tapped "Notify Me" (legacy OTN, §3.1, [T4])."""
    optin = {"type": "one_time_notif_req", "payload": payload, "one_time_notif_token": token}
    item = _optin_item(page_id, {"id": psid}, timestamp_ms, optin, timestamp_as_string)
    return WebhookEvent(page_id, "messaging_optins", timestamp_ms, item)


def notification_messages_optin_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    payload: str,
    token: str,
    token_expiry_ms: int,
    timezone: str,
    title: str | None = None,
    frequency: str | None = None,
    user_token_status: str | None = None,
    status: str | None = None,
    timestamp_as_string: bool = False,
) -> WebhookEvent:
    """`messaging_optins` for Marketing Messages opt-in, stop or resume (§3.2, [S13])."""
    optin: dict[str, Any] = {"type": "notification_messages", "payload": payload}
    if title is not None:
        optin["title"] = title
    optin["notification_messages_token"] = token
    if frequency is not None:
        optin["notification_messages_frequency"] = frequency
    optin["notification_messages_timezone"] = timezone
    optin["token_expiry_timestamp"] = token_expiry_ms
    if user_token_status is not None:
        optin["user_token_status"] = user_token_status
    if status is not None:
        # reference §3.2: only present when the person stops or resumes.
        optin["notification_messages_status"] = status
    item = _optin_item(page_id, {"id": psid}, timestamp_ms, optin, timestamp_as_string)
    return WebhookEvent(page_id, "messaging_optins", timestamp_ms, item)


def plugin_optin_event(
    page_id: str,
    *,
    timestamp_ms: int,
    ref: str,
    psid: str | None = None,
    user_ref: str | None = None,
    timestamp_as_string: bool = False,
) -> WebhookEvent:
    """`messaging_optins` from Send to Messenger (`sender.id`) or Checkbox (`sender.user_ref`).

    reference §4.5: the plugin yields `optin.ref` (its data-ref) [S13]; some samples show
    `sender.user_ref` instead of `sender.id` [S11].
    """
    optin: dict[str, Any] = {"ref": ref}
    if user_ref is not None:
        optin["user_ref"] = user_ref
    sender = _party(psid, user_ref)
    item = _optin_item(page_id, sender, timestamp_ms, optin, timestamp_as_string)
    return WebhookEvent(page_id, "messaging_optins", timestamp_ms, item)


def reaction_event(
    page_id: str,
    psid: str,
    *,
    timestamp_ms: int,
    mid: str,
    reaction: str,
    emoji: str,
    action: Literal["react", "unreact"] = "react",
    standby: bool = False,
) -> WebhookEvent:
    """`message_reactions`. Shape from Meta's message_reactions page; the reference only says
    reactions open the window (§1)."""
    body = {"reaction": reaction, "emoji": emoji, "action": action, "mid": mid}
    item = _inbound(page_id, psid, timestamp_ms, "reaction", body)
    return WebhookEvent(page_id, "message_reactions", timestamp_ms, item, container_for(standby))


def delivery_event(
    page_id: str,
    psid: str,
    *,
    watermark_ms: int,
    mids: Sequence[str] | None = None,
    timestamp_ms: int | None = None,
) -> WebhookEvent:
    """`message_deliveries`: everything before `watermark` reached the person (§4.5, [S14])."""
    delivery: dict[str, Any] = {}
    if mids:
        delivery["mids"] = list(mids)
    delivery["watermark"] = watermark_ms
    item: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": page_id}}
    if timestamp_ms is not None:
        item["timestamp"] = timestamp_ms
    item["delivery"] = delivery
    at = timestamp_ms if timestamp_ms is not None else watermark_ms
    return WebhookEvent(page_id, "message_deliveries", at, item)


def read_event(page_id: str, psid: str, *, timestamp_ms: int, watermark_ms: int) -> WebhookEvent:
    """`message_reads`: everything before `watermark` was read; reads carry no mids (§4.5)."""
    item = {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp_ms,
        "read": {"watermark": watermark_ms},
    }
    return WebhookEvent(page_id, "message_reads", timestamp_ms, item)


def feed_comment_event(
    page_id: str,
    *,
    created_time_s: int,
    comment_id: str,
    post_id: str,
    parent_id: str,
    from_id: str,
    from_name: str,
    message: str,
    verb: str = "add",
) -> WebhookEvent:
    """Page `feed` change for a comment (§4.5; shape from third-party captures, partly
    UNCONFIRMED)."""
    value = {
        "item": "comment",
        "verb": verb,
        "comment_id": comment_id,
        "post_id": post_id,
        "parent_id": parent_id,
        "from": {"id": from_id, "name": from_name},
        "message": message,
        "created_time": created_time_s,
    }
    change = {"field": "feed", "value": value}
    return WebhookEvent(page_id, "feed", created_time_s * 1000, change, "changes")


def build_envelope(
    events: Sequence[WebhookEvent], *, group_by_page: bool = False
) -> dict[str, Any]:
    """The POST body for `events`, in the given order.

    By default each event gets its own entry (reference §4.5: `messaging[]` in practice holds one
    event). `group_by_page=True` puts consecutive events of one Page and container in one entry.
    """
    if not events:
        raise ValueError("a webhook body needs at least one event")
    entries: list[dict[str, Any]] = []
    last_key: tuple[str, Container] | None = None
    for event in events:
        key = (event.page_id, event.container)
        if group_by_page and key == last_key:
            entry = entries[-1]
            entry[event.container].append(dict(event.item))
            entry["time"] = max(entry["time"], _entry_time(event))
            continue
        entries.append(
            {"id": event.page_id, "time": _entry_time(event), event.container: [dict(event.item)]}
        )
        last_key = key
    return {"object": "page", "entry": entries}


def _entry_time(event: WebhookEvent) -> int:
    # Captured feed payloads carry entry.time in seconds; messaging entries in ms (§4.5).
    return event.timestamp_ms // 1000 if event.container == "changes" else event.timestamp_ms
