"""The Send API refuses malformed requests with Meta's error object, code 100, HTTP 400, and
accepts requests right at each documented limit (reference §2, §3)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from channels.sandbox import GraphEmulator
from tests.integration.sandbox.graph_emulator_support import PAGE_ID, PAGE_TOKEN, error_of, send

PSID = "2400000000000001"

Body = dict[str, Any]


def text(value: str = "Xin chào") -> Body:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": value}}


def with_message(message: Body, **top: Any) -> Body:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": message, **top}


def template(payload: Body) -> Body:
    return with_message({"attachment": {"type": "template", "payload": payload}})


def postback(title: str = "Chọn", payload: str = "P") -> Body:
    return {"type": "postback", "title": title, "payload": payload}


def button_template(text_value: str = "Tiếp theo?", buttons: list[Body] | None = None) -> Body:
    return template(
        {
            "template_type": "button",
            "text": text_value,
            "buttons": [postback()] if buttons is None else buttons,
        }
    )


def element(**overrides: Any) -> Body:
    base: Body = {"title": "Áo thun", "subtitle": "Cotton", "buttons": [postback()]}
    base.update(overrides)
    return base


def generic(elements: list[Body]) -> Body:
    return template({"template_type": "generic", "elements": elements})


def quick_replies(count: int, **overrides: Any) -> Body:
    replies = [
        {"content_type": "text", "title": f"Chọn {i}", "payload": f"Q{i}", **overrides}
        for i in range(count)
    ]
    return with_message({"text": "Bạn chọn gì?", "quick_replies": replies})


def dropping(key: str, body: Body) -> Body:
    trimmed = copy.deepcopy(body)
    del trimmed[key]
    return trimmed


REFUSED: list[tuple[str, Body]] = [
    ("no recipient", dropping("recipient", text())),
    ("recipient not an object", {**text(), "recipient": PSID}),
    ("empty recipient", {**text(), "recipient": {}}),
    ("two recipient fields", {**text(), "recipient": {"id": PSID, "user_ref": "u"}}),
    ("unsupported recipient field", {**text(), "recipient": {"phone_number": "+84900000000"}}),
    ("no messaging_type for a PSID", dropping("messaging_type", text())),
    ("unknown messaging_type", {**text(), "messaging_type": "PROMOTION"}),
    ("MESSAGE_TAG without tag", {**text(), "messaging_type": "MESSAGE_TAG"}),
    ("tag without MESSAGE_TAG", {**text(), "tag": "HUMAN_AGENT"}),
    ("unknown tag", {**text(), "messaging_type": "MESSAGE_TAG", "tag": "ISSUE_RESOLUTION"}),
    ("text of 2000 chars", text("a" * 2000)),
    ("empty text", text("")),
    ("text and attachment", with_message({"text": "x", "attachment": {"type": "image"}})),
    ("unknown message field", with_message({"text": "x", "tags": ["a"]})),
    ("message and sender_action", {**text(), "sender_action": "typing_on"}),
    ("neither message nor sender_action", dropping("message", text())),
    ("unknown sender_action", {"recipient": {"id": PSID}, "sender_action": "typing"}),
    ("react without payload", {"recipient": {"id": PSID}, "sender_action": "react"}),
    ("unknown notification_type", {**text(), "notification_type": "LOUD"}),
    ("reply_to without mid", {**text(), "reply_to": {}}),
    ("metadata of 1000 chars", with_message({"text": "x", "metadata": "m" * 1000})),
    ("14 quick replies", quick_replies(14)),
    ("quick reply location", quick_replies(1, content_type="location")),
    ("text quick reply without title", quick_replies(1, title="")),
    ("text quick reply without payload", quick_replies(1, payload="")),
    ("quick reply payload of 1001 chars", quick_replies(1, payload="p" * 1001)),
    ("empty quick replies", with_message({"text": "x", "quick_replies": []})),
    ("attachment type gif", with_message({"attachment": {"type": "gif", "payload": {}}})),
    ("image without url", with_message({"attachment": {"type": "image", "payload": {}}})),
    ("31 images", with_message({"attachments": [{"type": "image", "payload": {"url": "https://x.vn/a.png"}}] * 31})),
    ("unknown template", template({"template_type": "airline_boardingpass"})),
    ("button text of 641 chars", button_template("t" * 641)),
    ("button template without buttons", button_template(buttons=[])),
    ("button template with 4 buttons", button_template(buttons=[postback()] * 4)),
    ("button title of 21 chars", button_template(buttons=[postback(title="t" * 21)])),
    ("button without title", button_template(buttons=[postback(title="")])),
    ("postback payload of 1001 chars", button_template(buttons=[postback(payload="p" * 1001)])),
    ("web_url button without url", button_template(buttons=[{"type": "web_url", "title": "Mở"}])),
    ("bad webview ratio", button_template(buttons=[{"type": "web_url", "title": "Mở", "url": "https://x.vn", "webview_height_ratio": "huge"}])),
    ("unknown button type", button_template(buttons=[{"type": "element_share", "title": "Chia sẻ"}])),
    ("generic with 11 elements", generic([element()] * 11)),
    ("generic without elements", generic([])),
    ("element title of 81 chars", generic([element(title="t" * 81)])),
    ("element without title", generic([element(title="")])),
    ("element subtitle of 81 chars", generic([element(subtitle="s" * 81)])),
    ("element with 4 buttons", generic([element(buttons=[postback()] * 4)])),
    ("default_action with title", generic([element(default_action={"type": "web_url", "url": "https://x.vn", "title": "t"})])),
    ("OTN title of 66 chars", template({"template_type": "one_time_notif_req", "title": "t" * 66, "payload": "P"})),
    ("OTN without payload", template({"template_type": "one_time_notif_req", "title": "Báo tôi"})),
    ("notification_messages with frequency", template({"template_type": "notification_messages", "payload": "P", "notification_messages_frequency": "DAILY"})),
    ("notification_messages bad cta", template({"template_type": "notification_messages", "payload": "P", "notification_messages_cta_text": "BUY"})),
    ("CUSTOMER_FEEDBACK with plain text", {**text(), "messaging_type": "MESSAGE_TAG", "tag": "CUSTOMER_FEEDBACK"}),
    ("customer_feedback without screens", template({"template_type": "customer_feedback", "business_privacy": {"url": "https://x.vn/p"}})),
]  # fmt: skip


@pytest.fixture
def person(emu: GraphEmulator) -> str:
    return emu.add_person(PAGE_ID, PSID, window_opened_at=emu.now(), last_message_at=emu.now())


@pytest.mark.parametrize(("case", "body"), REFUSED, ids=[case for case, _ in REFUSED])
async def test_malformed_send_is_refused_with_code_100(
    emu: GraphEmulator, graph: httpx.AsyncClient, person: str, case: str, body: Body
) -> None:
    response = await send(graph, body)

    assert response.status_code == 400, case
    error = response.json()["error"]
    assert (error["code"], error.get("error_subcode")) == (100, None)
    assert error["type"] == "OAuthException"
    assert error["message"].startswith("(#100) ")
    assert error["fbtrace_id"]
    assert emu.sent == []


def qr(content_type: str) -> Body:
    return {"content_type": content_type}


ACCEPTED: list[tuple[str, Body]] = [
    ("text of 1999 chars", text("ạ" * 1999)),
    ("13 quick replies", quick_replies(13)),
    ("long quick reply title (Meta truncates)", quick_replies(1, title="t" * 40)),
    ("quick reply payload of 1000 chars", quick_replies(1, payload="p" * 1000)),
    ("email and phone quick replies", with_message({"text": "Email?", "quick_replies": [qr("user_email"), qr("user_phone_number")]})),
    ("metadata of 999 chars", with_message({"text": "x", "metadata": "m" * 999})),
    ("button template at its limits", button_template("t" * 640, [postback(title="t" * 20, payload="p" * 1000)] * 3)),
    ("web_url and phone buttons", button_template(buttons=[{"type": "web_url", "title": "Mở", "url": "https://x.vn", "webview_height_ratio": "tall"}, {"type": "phone_number", "title": "Gọi", "payload": "+84900000000"}])),
    ("generic at its limits", generic([element(title="t" * 80, subtitle="s" * 80, buttons=[postback()] * 3, image_url="https://x.vn/a.png", default_action={"type": "web_url", "url": "https://x.vn"})] * 10)),
    ("OTN request title of 65 chars", template({"template_type": "one_time_notif_req", "title": "t" * 65, "payload": "P"})),
    ("30 images", with_message({"attachments": [{"type": "image", "payload": {"url": "https://x.vn/a.png"}}] * 30})),
    ("sticker", with_message({"sticker_id": 369239263222822})),
    ("UPDATE with SILENT_PUSH", {**text(), "messaging_type": "UPDATE", "notification_type": "SILENT_PUSH"}),
    ("reply_to", {**text(), "reply_to": {"mid": "m_earlier"}}),
    ("typing_on alone", {"recipient": {"id": PSID}, "sender_action": "typing_on"}),
    ("react", {"recipient": {"id": PSID}, "sender_action": "react", "payload": {"message_id": "m_1", "reaction": "love"}}),
    ("HUMAN_AGENT", {**text(), "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
    ("CUSTOMER_FEEDBACK template", {**template({"template_type": "customer_feedback", "title": "Đánh giá", "feedback_screens": [{"questions": [{"id": "q", "type": "csat"}]}], "business_privacy": {"url": "https://x.vn/p"}}), "messaging_type": "MESSAGE_TAG", "tag": "CUSTOMER_FEEDBACK"}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), ACCEPTED, ids=[case for case, _ in ACCEPTED])
async def test_send_at_the_documented_limits_is_accepted(
    emu: GraphEmulator, graph: httpx.AsyncClient, person: str, case: str, body: Body
) -> None:
    response = await send(graph, body)

    assert response.status_code == 200, (case, response.text)
    assert response.json()["recipient_id"] == PSID


async def test_sender_action_answers_recipient_only(
    emu: GraphEmulator, graph: httpx.AsyncClient, person: str
) -> None:
    response = await send(graph, {"recipient": {"id": PSID}, "sender_action": "mark_seen"})

    assert response.json() == {"recipient_id": PSID}
    assert emu.sent == []
    assert emu.deliveries == []


async def test_form_encoded_send_with_json_valued_params_is_understood(
    emu: GraphEmulator, graph: httpx.AsyncClient, person: str
) -> None:
    response = await graph.post(
        f"/{PAGE_ID}/messages",
        data={
            "recipient": json.dumps({"id": PSID}),
            "messaging_type": "RESPONSE",
            "message": '{"text": "Chào"}',
            "access_token": PAGE_TOKEN,
        },
    )

    assert response.status_code == 200
    assert emu.requests[-1].token_locations == ("body",)
    assert emu.requests[-1].body["access_token"] == "<access_token:body>"


async def test_invalid_json_body_is_a_code_100(graph: httpx.AsyncClient, person: str) -> None:
    response = await graph.post(
        f"/{PAGE_ID}/messages",
        content=b"{not json",
        headers={"Authorization": f"Bearer {PAGE_TOKEN}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response) == (100, None)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body["message"].update(text="Chào " * 300),
        lambda body: body.update(messaging_type="UPDATE"),
    ],
)
async def test_valid_variations_pass(
    graph: httpx.AsyncClient, person: str, mutate: Callable[[Body], None]
) -> None:
    body = text()
    mutate(body)

    assert (await send(graph, body)).status_code == 200
