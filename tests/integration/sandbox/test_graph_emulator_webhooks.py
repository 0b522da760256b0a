"""People acting: each action reaches a tiny Starlette receiver as a signed, escaped-unicode body
shaped like Meta's (reference §3.1, §3.2, §4.2, §4.5)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from channels.sandbox import PAGE_INBOX_APP_ID, AfterSend, GraphEmulator, Variants
from channels.sandbox.webhook_events import to_ms
from tests.integration.sandbox.graph_emulator_support import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    START,
    VERIFY_TOKEN,
    Received,
    TestClock,
    WebhookReceiver,
    send,
    text_to,
)

PSID = "2400000000000041"
VIETNAMESE = "Chào bạn, tôi muốn mua áo"
START_MS = to_ms(START)


def assert_meta_shaped(received: Received) -> None:
    """Signature over the raw bytes, pure-ASCII body, and the page envelope."""
    expected = hmac.new(APP_SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    header = received.headers["x-hub-signature-256"]
    assert header == f"sha256={expected}"
    assert header == header.lower()
    assert received.headers["content-type"] == "application/json"
    assert received.body.isascii()
    body = json.loads(received.body)
    assert body["object"] == "page"
    assert all(entry["id"] == PAGE_ID for entry in body["entry"])


async def test_person_writes_vietnamese_arrives_escaped_and_signed(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, VIETNAMESE, mid="m_1")

    raw = receiver.last.body
    assert_meta_shaped(receiver.last)
    assert b"Ch\\u00e0o b\\u1ea1n, t\\u00f4i mu\\u1ed1n mua \\u00e1o" in raw
    assert VIETNAMESE.encode() not in raw
    item = receiver.last.messaging()
    assert item == {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": START_MS,
        "message": {"mid": "m_1", "text": VIETNAMESE},
    }
    assert json.loads(raw)["entry"][0]["time"] == START_MS
    assert receiver.last.headers["x-hub-signature"].startswith("sha1=")


async def test_re_serialized_json_would_not_match_the_signature(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, VIETNAMESE)

    reencoded = json.dumps(json.loads(receiver.last.body), ensure_ascii=False).encode()
    forged = Received(reencoded, receiver.last.headers)

    assert receiver.last.signature_ok()
    assert not forged.signature_ok()


async def test_quick_reply_tap_uses_the_title_that_was_sent(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Alo")
    offer = {
        **text_to(PSID, "Nhắc qua email nhé?"),
        "message": {
            "text": "Nhắc qua email nhé?",
            "quick_replies": [
                {"content_type": "text", "title": "Có, nhắc tôi", "payload": "REMIND_YES"},
                {"content_type": "user_email"},
            ],
        },
    }
    await send(graph, offer)

    await emu.person_taps_quick_reply(PAGE_ID, PSID, "REMIND_YES")

    assert_meta_shaped(receiver.last)
    message = receiver.last.messaging()["message"]
    assert message["text"] == "Có, nhắc tôi"
    assert message["quick_reply"] == {"payload": "REMIND_YES"}


@pytest.mark.parametrize(
    ("action", "value"),
    [("person_shares_email", "lan.nguyen@example.vn"), ("person_shares_phone", "+84901234567")],
)
async def test_email_and_phone_quick_replies_carry_the_value_as_text_and_payload(
    emu: GraphEmulator, receiver: WebhookReceiver, action: str, value: str
) -> None:
    await getattr(emu, action)(PAGE_ID, PSID, value)

    message = receiver.last.messaging()["message"]
    assert message["text"] == value
    assert message["quick_reply"] == {"payload": value}
    assert_meta_shaped(receiver.last)


async def test_mme_click_in_an_existing_thread_is_a_referral(
    emu: GraphEmulator, receiver: WebhookReceiver, clock: TestClock
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - timedelta(days=3))

    await emu.person_clicks_mme_link(PAGE_ID, PSID, "c.42.d.7")

    item = receiver.last.messaging()
    assert item["referral"] == {"ref": "c.42.d.7", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    assert item["sender"] == {"id": PSID}
    assert emu.is_window_open(PAGE_ID, PSID)


async def test_mme_click_in_a_new_thread_is_a_get_started_postback_with_referral(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    event = await emu.person_clicks_mme_link(PAGE_ID, None, "c.42.d.7")

    assert event is not None
    item = receiver.last.messaging()
    new_psid = item["sender"]["id"]
    assert item["postback"]["title"] == "Get Started"
    assert item["postback"]["payload"] == "GET_STARTED"
    assert item["postback"]["referral"] == {"ref": "c.42.d.7", "source": "SHORTLINK", "type": "OPEN_THREAD"}  # fmt: skip
    assert item["postback"]["mid"].startswith("m_")
    assert emu.is_window_open(PAGE_ID, new_psid)


async def test_mme_click_without_get_started_produces_nothing(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    emu.page(PAGE_ID).messenger_profile.clear()

    event = await emu.person_clicks_mme_link(PAGE_ID, "2400000000000999", "c.42")

    assert event is None
    assert receiver.received == []
    assert emu.thread(PAGE_ID, "2400000000000999") is None


async def test_one_time_notification_optin(emu: GraphEmulator, receiver: WebhookReceiver) -> None:
    await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "OTN_MODEL_X", token="otn-tok")

    assert receiver.last.messaging() == {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": START_MS,
        "optin": {
            "type": "one_time_notif_req",
            "payload": "OTN_MODEL_X",
            "one_time_notif_token": "otn-tok",
        },
    }


async def test_optin_timestamp_can_be_a_string(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    emu.variants.optin_timestamp_as_string = True

    await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "P")

    assert receiver.last.messaging()["timestamp"] == str(START_MS)


@pytest.mark.parametrize(
    ("spelling", "resume"),
    [
        ("STOP NOTIFICATIONS", "RESUME NOTIFICATIONS"),
        ("STOP_NOTIFICATIONS", "RESUME_NOTIFICATIONS"),
    ],
)
async def test_notification_messages_optin_stop_and_resume(
    emu: GraphEmulator, receiver: WebhookReceiver, spelling: Any, resume: str
) -> None:
    emu.variants.stop_spelling = spelling
    expiry = START + timedelta(days=180)

    await emu.person_opts_in_to_notifications(
        PAGE_ID, PSID, "DEALS", title="Ưu đãi", token="nm-tok", timezone="Asia/Ho_Chi_Minh",
        token_expiry=expiry, user_token_status="NOT_REFRESHED",
    )  # fmt: skip
    await emu.person_stops_notifications(PAGE_ID, "nm-tok")
    await emu.person_resumes_notifications(PAGE_ID, "nm-tok")

    opt_in, stop, resumed = (r.messaging()["optin"] for r in receiver.received)
    assert opt_in == {
        "type": "notification_messages",
        "payload": "DEALS",
        "title": "Ưu đãi",
        "notification_messages_token": "nm-tok",
        "notification_messages_timezone": "Asia/Ho_Chi_Minh",
        "token_expiry_timestamp": to_ms(expiry),
        "user_token_status": "NOT_REFRESHED",
    }
    assert "notification_messages_status" not in opt_in
    assert stop["notification_messages_status"] == spelling
    assert resumed["notification_messages_status"] == resume
    assert stop["notification_messages_token"] == "nm-tok"
    assert not emu.is_window_open(PAGE_ID, PSID)


async def test_stop_spelling_can_be_chosen_per_call(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_opts_in_to_notifications(PAGE_ID, PSID, "DEALS", token="nm-2")

    await emu.person_stops_notifications(PAGE_ID, "nm-2", spelling="STOP_NOTIFICATIONS")

    assert (
        receiver.last.messaging()["optin"]["notification_messages_status"] == "STOP_NOTIFICATIONS"
    )


async def test_checkbox_plugin_optin_uses_user_ref(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_opts_in_via_plugin(PAGE_ID, "checkout-77", user_ref="uref-1")

    item = receiver.last.messaging()
    assert item["sender"] == {"user_ref": "uref-1"}
    assert item["optin"] == {"ref": "checkout-77", "user_ref": "uref-1"}


async def test_reaction(emu: GraphEmulator, receiver: WebhookReceiver) -> None:
    await emu.person_reacts(PAGE_ID, PSID, "m_abc", "love", emoji="❤")

    raw = receiver.last.body
    assert b"\\u2764" in raw
    assert receiver.last.messaging()["reaction"] == {
        "reaction": "love",
        "emoji": "❤",
        "action": "react",
        "mid": "m_abc",
    }


async def test_delivery_and_read_watermarks(
    emu: GraphEmulator, receiver: WebhookReceiver, clock: TestClock
) -> None:
    watermark = START - timedelta(seconds=5)

    await emu.message_delivered(PAGE_ID, PSID, mids=["m_1", "m_2"], watermark=watermark)
    await emu.message_delivered(PAGE_ID, PSID, watermark=watermark)
    await emu.person_reads(PAGE_ID, PSID, watermark=watermark)

    with_mids, without_mids, read = (r.messaging() for r in receiver.received)
    assert with_mids == {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "delivery": {"mids": ["m_1", "m_2"], "watermark": to_ms(watermark)},
    }
    assert without_mids["delivery"] == {"watermark": to_ms(watermark)}
    assert read == {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": START_MS,
        "read": {"watermark": to_ms(watermark)},
    }


async def test_our_send_is_echoed_with_metadata_then_delivered(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Alo")
    receiver.received.clear()

    body = {**text_to(PSID, "Đơn hàng đã gửi"), "message": {"text": "Đơn hàng đã gửi", "metadata": "delivery:42"}}  # fmt: skip
    answer = (await send(graph, body)).json()

    echo, delivery = (r.messaging() for r in receiver.received)
    assert echo == {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": START_MS,
        "message": {
            "mid": answer["message_id"],
            "is_echo": True,
            "app_id": int(APP_ID),
            "metadata": "delivery:42",
            "text": "Đơn hàng đã gửi",
        },
    }
    assert delivery["delivery"] == {"mids": [answer["message_id"]], "watermark": START_MS}
    assert delivery["sender"] == {"id": PSID}
    for received in receiver.received:
        assert_meta_shaped(received)


async def test_template_send_is_echoed_as_an_attachment(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Alo")
    payload = {"template_type": "button", "text": "Tiếp?", "buttons": [{"type": "postback", "title": "Có", "payload": "Y"}]}  # fmt: skip

    await send(graph, {**text_to(PSID), "message": {"attachment": {"type": "template", "payload": payload}}})  # fmt: skip

    echo = receiver.received[-2].messaging()["message"]
    assert echo["attachments"] == [{"type": "template", "payload": payload}]
    assert "text" not in echo


async def test_echo_variants_app_id_string_and_no_mids(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.variants = Variants(echo_app_id_as_int=False, delivery_includes_mids=False, delivery_includes_timestamp=True)  # fmt: skip
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    await send(graph, text_to(PSID))

    echo, delivery = (r.messaging() for r in receiver.received)
    assert echo["message"]["app_id"] == APP_ID
    assert delivery["delivery"] == {"watermark": START_MS}
    assert delivery["timestamp"] == START_MS


async def test_after_send_events_can_be_switched_off(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.after_send = AfterSend(echo=False, delivery=True)
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    await send(graph, text_to(PSID))

    assert [list(r.messaging()) for r in receiver.received] == [["sender", "recipient", "delivery"]]


async def test_deferred_after_send_events_wait_for_the_test(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.after_send = AfterSend(timing="deferred")
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    await send(graph, text_to(PSID, "một"))
    await send(graph, text_to(PSID, "hai"))
    nothing_yet = list(receiver.received)

    echo_1, delivery_1, echo_2, delivery_2 = emu.take_pending()
    await emu.post_each([delivery_2, echo_2, echo_1])

    assert nothing_yet == []
    assert emu.pending == []
    assert [r.json()["entry"][0]["messaging"][0].get("message", {}).get("text") for r in receiver.received] == [None, "hai", "một"]  # fmt: skip
    assert delivery_1.field == "message_deliveries"


async def test_flush_posts_the_queue_in_order_or_batched(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.after_send = AfterSend(timing="deferred")
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    await send(graph, text_to(PSID))
    await send(graph, text_to(PSID))

    one_by_one = await emu.flush()
    await send(graph, text_to(PSID))
    batched = await emu.flush(batch=True)

    assert len(one_by_one) == 4
    assert len(batched) == 1
    entries = receiver.last.json()["entry"]
    assert [list(e["messaging"][0]) for e in entries] == [
        ["sender", "recipient", "timestamp", "message"],
        ["sender", "recipient", "delivery"],
    ]
    assert await emu.flush() == []


async def test_background_after_send_events_follow_the_answer(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.after_send = AfterSend(timing="background")
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    response = await send(graph, text_to(PSID))

    assert response.status_code == 200
    assert [r.messaging()["message"]["mid"] for r in receiver.received[:1]] == [response.json()["message_id"]]  # fmt: skip
    assert len(receiver.received) == 2


async def test_page_inbox_reply_is_an_echo_from_the_inbox_app(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.page_inbox_reply(PAGE_ID, PSID, "Dạ, shop nghe ạ")

    message = receiver.last.messaging()["message"]
    assert message["is_echo"] is True
    assert message["app_id"] == int(PAGE_INBOX_APP_ID) == 263902037430900
    assert message["text"] == "Dạ, shop nghe ạ"
    assert emu.sent[-1].app_id == PAGE_INBOX_APP_ID


async def test_feed_comment_is_a_change(emu: GraphEmulator, receiver: WebhookReceiver) -> None:
    await emu.person_comments(
        PAGE_ID, "Áo này giá bao nhiêu?", psid=PSID, from_id="10001", from_name="Nguyễn Lan",
        post_id=f"{PAGE_ID}_555", comment_id="555_777",
    )  # fmt: skip

    assert_meta_shaped(receiver.last)
    body = receiver.last.json()
    entry = body["entry"][0]
    assert entry["time"] == START_MS // 1000
    assert "messaging" not in entry
    assert entry["changes"] == [
        {
            "field": "feed",
            "value": {
                "item": "comment",
                "verb": "add",
                "comment_id": "555_777",
                "post_id": f"{PAGE_ID}_555",
                "parent_id": f"{PAGE_ID}_555",
                "from": {"id": "10001", "name": "Nguyễn Lan"},
                "message": "Áo này giá bao nhiêu?",
                "created_time": START_MS // 1000,
            },
        }
    ]


async def test_batch_of_events_in_one_body(emu: GraphEmulator, receiver: WebhookReceiver) -> None:
    first = await emu.person_writes(PAGE_ID, PSID, "một", post=False)
    second = await emu.person_writes(PAGE_ID, PSID, "hai", post=False, at=START + timedelta(seconds=1))  # fmt: skip
    third = await emu.person_reads(PAGE_ID, PSID, post=False)

    await emu.post_events([first, second, third])
    await emu.post_events([first, second], group_by_page=True)

    separate, grouped = (r.json()["entry"] for r in receiver.received)
    assert [len(e["messaging"]) for e in separate] == [1, 1, 1]
    assert [e["time"] for e in separate] == [START_MS, START_MS + 1000, START_MS]
    assert len(grouped) == 1
    assert [m["message"]["text"] for m in grouped[0]["messaging"]] == ["một", "hai"]
    assert grouped[0]["time"] == START_MS + 1000
    assert all(r.signature_ok() for r in receiver.received)


async def test_duplicates_and_out_of_order_delivery(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    early = await emu.person_writes(PAGE_ID, PSID, "sớm", at=START, post=False)
    late = await emu.person_writes(PAGE_ID, PSID, "muộn", at=START + timedelta(minutes=5), post=False)  # fmt: skip

    await emu.post_each([late, early])
    delivery = emu.deliveries[-1]
    again = await emu.redeliver(delivery)

    assert [r.messaging()["message"]["text"] for r in receiver.received] == ["muộn", "sớm", "sớm"]
    assert receiver.received[1].body == receiver.received[2].body
    assert receiver.received[1].headers["x-hub-signature-256"] == receiver.received[2].headers["x-hub-signature-256"]  # fmt: skip
    assert again.ok
    state = emu.thread(PAGE_ID, PSID)
    assert state is not None
    assert state.window_opened_at == START + timedelta(minutes=5)


async def test_standby_events(emu: GraphEmulator, receiver: WebhookReceiver) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Chào", standby=True)

    entry = receiver.last.json()["entry"][0]
    assert "messaging" not in entry
    assert entry["standby"][0]["message"]["text"] == "Chào"


async def test_escaped_slashes_variant_keeps_a_valid_signature(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    emu.variants.escape_slashes = True

    await emu.person_writes(PAGE_ID, PSID, "xem https://aothun.vn/ao")

    assert b"https:\\/\\/aothun.vn\\/ao" in receiver.last.body
    assert receiver.last.signature_ok()
    assert receiver.last.messaging()["message"]["text"] == "xem https://aothun.vn/ao"


async def test_receiver_errors_are_recorded_not_raised(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    receiver.answer_status = 500

    await emu.person_writes(PAGE_ID, PSID, "Chào")

    assert emu.deliveries[-1].status_code == 500
    assert not emu.deliveries[-1].ok


async def test_unreachable_webhook_is_recorded(emu: GraphEmulator) -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    emu.webhook_client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    emu.page(PAGE_ID).webhook_client = None
    try:
        await emu.person_writes(PAGE_ID, PSID, "Chào")
    finally:
        await emu.webhook_client.aclose()

    assert emu.deliveries[-1].status_code is None
    assert emu.deliveries[-1].error is not None
    assert "ConnectError" in emu.deliveries[-1].error


async def test_verify_handshake(emu: GraphEmulator) -> None:
    assert await emu.verify_webhook(PAGE_ID, VERIFY_TOKEN)
    assert not await emu.verify_webhook(PAGE_ID, "wrong")


async def test_click_from_an_ad_is_a_referral_with_ad_id(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_clicks_ad(PAGE_ID, PSID, "ad-9", ads_context_data={"ad_title": "Áo mới"})

    referral = receiver.last.messaging()["referral"]
    assert referral == {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "ad-9", "ads_context_data": {"ad_title": "Áo mới"}}  # fmt: skip


async def test_first_message_from_an_ad_carries_message_referral(
    emu: GraphEmulator, receiver: WebhookReceiver
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Còn size M không?", ad_id="ad-9")

    message = receiver.last.messaging()["message"]
    assert message["referral"] == {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "ad-9"}
