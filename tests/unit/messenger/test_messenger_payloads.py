from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.messenger.errors import MalformedRequest, PayloadInvalid
from channels.messenger.payloads import (
    MessagingType,
    NotificationType,
    Recipient,
    RecipientKind,
    build_send_request,
    button_template,
    generic_element,
    generic_template,
    notification_messages_request,
    one_time_notif_request,
    postback_button,
    quick_reply,
    quick_reply_user_email,
    quick_reply_user_phone_number,
    text_message,
    url_button,
    validate_message,
    validate_send_request,
)

PSID = Recipient.psid("1254477777772919")
DECOMPOSED = unicodedata.normalize("NFD", "Chào bạn, đơn hàng đã được xác nhận")


def update(message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return build_send_request(PSID, message, messaging_type=MessagingType.UPDATE, **kwargs)


def field_of(message: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(PayloadInvalid) as caught:
        update(message, **kwargs)
    return caught.value.field


# --- shapes ------------------------------------------------------------------------------------


def test_text_send_matches_the_reference_example() -> None:
    body = build_send_request(
        PSID,
        text_message("Thanks, your demo is booked for Tue 10:00."),
        messaging_type=MessagingType.RESPONSE,
    )
    assert body == {
        "recipient": {"id": "1254477777772919"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks, your demo is booked for Tue 10:00."},
    }


def test_quick_replies_shape_and_contact_quick_replies() -> None:
    message = text_message(
        "Want a reminder by email too?",
        quick_replies=[
            quick_reply("Yes", "REMIND_EMAIL_YES"),
            quick_reply("No", "REMIND_EMAIL_NO", image_url="https://example.com/no.png"),
            quick_reply_user_email(),
            quick_reply_user_phone_number(),
        ],
    )
    assert update(message)["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Yes", "payload": "REMIND_EMAIL_YES"},
        {
            "content_type": "text",
            "title": "No",
            "payload": "REMIND_EMAIL_NO",
            "image_url": "https://example.com/no.png",
        },
        {"content_type": "user_email"},
        {"content_type": "user_phone_number"},
    ]


def test_button_template_shape() -> None:
    message = button_template(
        "What next?",
        [
            url_button("Pick a slot", "https://example.com/slot", webview_height_ratio="tall"),
            postback_button("Talk to a human", "HANDOFF"),
        ],
    )
    assert message == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "What next?",
                "buttons": [
                    {
                        "type": "web_url",
                        "url": "https://example.com/slot",
                        "title": "Pick a slot",
                        "webview_height_ratio": "tall",
                    },
                    {"type": "postback", "title": "Talk to a human", "payload": "HANDOFF"},
                ],
            },
        }
    }
    validate_message(message)


def test_generic_template_shape() -> None:
    element = generic_element(
        "Starter plan",
        subtitle="For teams up to 5",
        image_url="https://example.com/p.png",
        default_action_url="https://example.com/plans",
        buttons=[postback_button("Choose", "PLAN_STARTER")],
    )
    message = generic_template([element], image_aspect_ratio="square")
    payload = message["attachment"]["payload"]
    assert payload["template_type"] == "generic"
    assert payload["image_aspect_ratio"] == "square"
    assert payload["elements"] == [
        {
            "title": "Starter plan",
            "subtitle": "For teams up to 5",
            "image_url": "https://example.com/p.png",
            "default_action": {"type": "web_url", "url": "https://example.com/plans"},
            "buttons": [{"type": "postback", "title": "Choose", "payload": "PLAN_STARTER"}],
        }
    ]
    assert "title" not in payload["elements"][0]["default_action"]
    validate_message(message)
    assert generic_element("Bare") == {"title": "Bare"}


def test_templates_can_carry_quick_replies() -> None:
    qr = [quick_reply("Later", "LATER")]
    assert (
        button_template("t", [postback_button("a", "A")], quick_replies=qr)["quick_replies"] == qr
    )
    assert generic_template([generic_element("e")], quick_replies=qr)["quick_replies"] == qr


def test_one_time_notification_request_shape() -> None:
    message = one_time_notif_request("Back-in-stock alert for Model X?", "OTN_MODEL_X")
    assert message == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "one_time_notif_req",
                "title": "Back-in-stock alert for Model X?",
                "payload": "OTN_MODEL_X",
            },
        }
    }
    validate_message(message)


def test_notification_messages_request_shape() -> None:
    full = notification_messages_request(
        "TOPIC_SALE",
        title="Sale alerts",
        image_url="https://example.com/sale.png",
        timezone="Asia/Ho_Chi_Minh",
        cta_text="GET_UPDATES",
    )
    assert full["attachment"]["payload"] == {
        "template_type": "notification_messages",
        "payload": "TOPIC_SALE",
        "title": "Sale alerts",
        "image_url": "https://example.com/sale.png",
        "notification_messages_timezone": "Asia/Ho_Chi_Minh",
        "notification_messages_cta_text": "GET_UPDATES",
    }
    bare = notification_messages_request("TOPIC_SALE")
    assert bare["attachment"]["payload"] == {
        "template_type": "notification_messages",
        "payload": "TOPIC_SALE",
    }
    validate_message(full)
    validate_message(bare)


def test_every_optional_field_of_the_send_request() -> None:
    body = build_send_request(
        PSID,
        text_message("Hi, Sam from support here"),
        messaging_type=MessagingType.MESSAGE_TAG,
        tag="HUMAN_AGENT",
        metadata="dlv_01J9ZK",
        notification_type=NotificationType.SILENT_PUSH,
        reply_to="m_abc",
    )
    assert body == {
        "recipient": {"id": "1254477777772919"},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "message": {"text": "Hi, Sam from support here", "metadata": "dlv_01J9ZK"},
        "notification_type": "SILENT_PUSH",
        "reply_to": {"mid": "m_abc"},
    }


def test_builder_does_not_mutate_the_message_it_is_given() -> None:
    message = text_message("hello")
    update(message, metadata="dlv_1")
    assert message == {"text": "hello"}


def test_retired_tags_still_build_because_policy_lives_elsewhere() -> None:
    body = build_send_request(
        PSID, text_message("x"), messaging_type=MessagingType.MESSAGE_TAG, tag="ACCOUNT_UPDATE"
    )
    assert body["tag"] == "ACCOUNT_UPDATE"


# --- recipients --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "key"),
    [
        (Recipient.psid("1"), "id"),
        (Recipient.user_ref("ref-1"), "user_ref"),
        (Recipient.comment("PAGEPOST_COMMENT"), "comment_id"),
        (Recipient.post("PAGE_POST"), "post_id"),
        (Recipient.one_time_notif_token("otn-secret"), "one_time_notif_token"),
        (Recipient.notification_messages_token("nm-secret"), "notification_messages_token"),
    ],
)
def test_recipient_kinds_serialise_to_their_key(recipient: Recipient, key: str) -> None:
    assert recipient.to_json() == {key: recipient.value}
    assert recipient.kind.value == key


def test_token_recipients_omit_messaging_type_like_the_reference() -> None:
    for recipient in (
        Recipient.one_time_notif_token("otn-secret"),
        Recipient.notification_messages_token("nm-secret"),
    ):
        assert recipient.kind.is_token
        body = build_send_request(recipient, text_message("Model X is back in stock."))
        assert "messaging_type" not in body
        with pytest.raises(PayloadInvalid) as caught:
            build_send_request(recipient, text_message("x"), messaging_type=MessagingType.UPDATE)
        assert caught.value.field == "messaging_type"


def test_private_replies_may_omit_messaging_type() -> None:
    body = build_send_request(Recipient.comment("PAGEPOST_COMMENT"), text_message("Thanks!"))
    assert body == {"recipient": {"comment_id": "PAGEPOST_COMMENT"}, "message": {"text": "Thanks!"}}
    assert not RecipientKind.COMMENT.is_token


def test_psid_and_user_ref_require_messaging_type() -> None:
    for recipient in (PSID, Recipient.user_ref("r")):
        with pytest.raises(PayloadInvalid) as caught:
            build_send_request(recipient, text_message("x"))
        assert caught.value.field == "messaging_type"


def test_token_value_never_shows_in_repr_or_errors() -> None:
    recipient = Recipient.one_time_notif_token("otn-very-secret")
    assert "otn-very-secret" not in repr(recipient)
    with pytest.raises(PayloadInvalid) as caught:
        build_send_request(recipient, text_message("x" * 5000))
    assert "otn-very-secret" not in str(caught.value)
    assert "xxxxx" not in str(caught.value)


@pytest.mark.parametrize(
    "recipient",
    [None, {}, {"id": "1", "user_ref": "2"}, {"phone": "1"}, {"id": ""}, {"id": 5}],
)
def test_bad_recipients(recipient: Any) -> None:
    body = {"recipient": recipient, "messaging_type": "UPDATE", "message": {"text": "x"}}
    with pytest.raises(PayloadInvalid) as caught:
        validate_send_request(body)
    assert caught.value.field.startswith("recipient")


# --- messaging_type and tag --------------------------------------------------------------------


def test_message_tag_requires_a_tag_and_tags_require_message_tag() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        build_send_request(PSID, text_message("x"), messaging_type=MessagingType.MESSAGE_TAG)
    assert caught.value.field == "tag"
    with pytest.raises(PayloadInvalid) as caught:
        build_send_request(
            PSID, text_message("x"), messaging_type=MessagingType.MESSAGE_TAG, tag=""
        )
    assert caught.value.field == "tag"
    for kind in (MessagingType.RESPONSE, MessagingType.UPDATE):
        with pytest.raises(PayloadInvalid) as caught:
            build_send_request(PSID, text_message("x"), messaging_type=kind, tag="HUMAN_AGENT")
        assert caught.value.field == "tag"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"messaging_type": "PROMO"}, "messaging_type"),
        ({"notification_type": "LOUD"}, "notification_type"),
        ({"reply_to": {"mid": ""}}, "reply_to.mid"),
        ({"reply_to": "m_1"}, "reply_to.mid"),
        ({"sender_action": "typing_on"}, "sender_action"),
    ],
)
def test_top_level_field_checks(patch: dict[str, Any], field: str) -> None:
    body = {"recipient": {"id": "1"}, "messaging_type": "UPDATE", "message": {"text": "x"}} | patch
    with pytest.raises(PayloadInvalid) as caught:
        validate_send_request(body)
    assert caught.value.field == field


# --- text and NFC ------------------------------------------------------------------------------


def test_text_is_nfc_normalised() -> None:
    message = text_message(DECOMPOSED)
    assert message["text"] == unicodedata.normalize("NFC", DECOMPOSED)
    assert message["text"] != DECOMPOSED


def test_text_length_counts_code_points_after_nfc() -> None:
    # "ệ" decomposes into 3 code points; 1999 of them NFC to 1999 characters, under the limit.
    decomposed = unicodedata.normalize("NFD", "ệ") * 1999
    assert len(decomposed) == 5997
    update({"text": decomposed})
    assert field_of({"text": unicodedata.normalize("NFD", "ệ") * 2000}) == "message.text"


def test_text_must_be_shorter_than_2000() -> None:
    update(text_message("a" * 1999))
    assert field_of(text_message("a" * 2000)) == "message.text"
    assert field_of(text_message("")) == "message.text"
    assert field_of({"text": 5}) == "message.text"


@given(st.text(min_size=1, max_size=2100))
def test_text_accepted_iff_under_2000_code_points_after_nfc(text: str) -> None:
    normalised = unicodedata.normalize("NFC", text)
    if len(normalised) >= 2000:
        with pytest.raises(PayloadInvalid) as caught:
            update(text_message(text))
        assert caught.value.field == "message.text"
    else:
        assert update(text_message(text))["message"]["text"] == normalised


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"text": "a", "attachment": {"type": "image", "payload": {"url": "https://e.com/i.png"}}},
        "hello",
    ],
)
def test_message_needs_exactly_one_content(message: Any) -> None:
    body = {"recipient": {"id": "1"}, "messaging_type": "UPDATE", "message": message}
    with pytest.raises(PayloadInvalid) as caught:
        validate_send_request(body)
    assert caught.value.field == "message"


# --- metadata ----------------------------------------------------------------------------------


def test_metadata_must_be_shorter_than_1000() -> None:
    assert update(text_message("x"), metadata="d" * 999)["message"]["metadata"] == "d" * 999
    assert field_of(text_message("x"), metadata="d" * 1000) == "message.metadata"
    assert field_of({"text": "x", "metadata": 7}) == "message.metadata"


# --- quick replies -----------------------------------------------------------------------------


def test_at_most_13_quick_replies() -> None:
    thirteen = [quick_reply(f"Q{i}", f"P{i}") for i in range(13)]
    update(text_message("pick", quick_replies=thirteen))
    fourteen = [*thirteen, quick_reply("Q13", "P13")]
    assert field_of(text_message("pick", quick_replies=fourteen)) == "message.quick_replies"
    assert field_of({"text": "pick", "quick_replies": []}) == "message.quick_replies"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (quick_reply("", "P"), "message.quick_replies[3].title"),
        (quick_reply("x" * 21, "P"), "message.quick_replies[3].title"),
        (quick_reply("ok", ""), "message.quick_replies[3].payload"),
        (quick_reply("ok", "p" * 1001), "message.quick_replies[3].payload"),
        ({"content_type": "text", "title": "ok"}, "message.quick_replies[3].payload"),
        (
            quick_reply("ok", "P", image_url="ftp://e.com/i.png"),
            "message.quick_replies[3].image_url",
        ),
        ({"content_type": "location"}, "message.quick_replies[3].content_type"),
        ("text", "message.quick_replies[3]"),
    ],
)
def test_quick_reply_limits_name_the_field(item: Any, field: str) -> None:
    items = [quick_reply("a", "A"), quick_reply("b", "B"), quick_reply_user_email(), item]
    assert field_of({"text": "pick", "quick_replies": items}) == field


def test_quick_reply_title_boundary_counts_after_nfc() -> None:
    title = "Đồng ý nhận ưu đãi!!"
    decomposed = unicodedata.normalize("NFD", title)
    assert len(title) == 20
    assert len(decomposed) > 20
    built = quick_reply(decomposed, "y" * 1000)
    assert built["title"] == title
    update(text_message("x", quick_replies=[built]))
    # A raw (unbuilt) decomposed title is also measured after NFC.
    raw = {"content_type": "text", "title": decomposed, "payload": "Y"}
    update({"text": "x", "quick_replies": [raw]})


# --- buttons -----------------------------------------------------------------------------------


def test_button_template_needs_one_to_three_buttons() -> None:
    button = postback_button("Go", "GO")
    for count in (1, 3):
        update(button_template("t", [button] * count))
    for count in (0, 4):
        assert (
            field_of(button_template("t", [button] * count)) == "message.attachment.payload.buttons"
        )


def test_button_template_text_at_most_640() -> None:
    button = postback_button("Go", "GO")
    update(button_template("t" * 640, [button]))
    assert field_of(button_template("t" * 641, [button])) == "message.attachment.payload.text"
    assert field_of(button_template("", [button])) == "message.attachment.payload.text"


@pytest.mark.parametrize(
    ("button", "field"),
    [
        (postback_button("x" * 21, "P"), "title"),
        (postback_button("", "P"), "title"),
        (postback_button("ok", "p" * 1001), "payload"),
        (postback_button("ok", ""), "payload"),
        (url_button("x" * 21, "https://e.com"), "title"),
        (url_button("ok", "javascript:alert(1)"), "url"),
        (url_button("ok", "ftp://e.com/file"), "url"),
        (url_button("ok", "https://"), "url"),
        (url_button("ok", "https://e.com/a b"), "url"),
        (url_button("ok", "/relative"), "url"),
        ({"type": "web_url", "title": "ok", "url": 3}, "url"),
        (
            {
                "type": "web_url",
                "title": "ok",
                "url": "https://e.com",
                "webview_height_ratio": "huge",
            },
            "webview_height_ratio",
        ),
        ({"title": "ok"}, "type"),
        ("button", ""),
    ],
)
def test_button_limits_name_the_field(button: Any, field: str) -> None:
    message = button_template("t", [postback_button("a", "A"), postback_button("b", "B")])
    message["attachment"]["payload"]["buttons"][1] = button
    prefix = "message.attachment.payload.buttons[1]"
    assert field_of(message) == (f"{prefix}.{field}" if field else prefix)


def test_button_boundaries_accepted() -> None:
    update(
        button_template(
            "t",
            [
                postback_button("x" * 20, "p" * 1000),
                url_button("y" * 20, "http://example.com/path?q=1"),
                {"type": "phone_number", "title": "Call us", "payload": "+84123456789"},
            ],
        )
    )


# --- generic -----------------------------------------------------------------------------------


def test_generic_at_most_ten_elements() -> None:
    update(generic_template([generic_element(f"E{i}") for i in range(10)]))
    path = "message.attachment.payload.elements"
    assert field_of(generic_template([generic_element(f"E{i}") for i in range(11)])) == path
    assert field_of(generic_template([])) == path


@pytest.mark.parametrize(
    ("element", "field"),
    [
        (generic_element("t" * 81), "title"),
        (generic_element(""), "title"),
        (generic_element("ok", subtitle="s" * 81), "subtitle"),
        (generic_element("ok", image_url="file:///etc/passwd"), "image_url"),
        (generic_element("ok", default_action_url="mailto:a@b.c"), "default_action.url"),
        ({"title": "ok", "default_action": {"type": "postback"}}, "default_action"),
        (
            {
                "title": "ok",
                "default_action": {"type": "web_url", "url": "https://e.com", "title": "x"},
            },
            "default_action.title",
        ),
        (generic_element("ok", buttons=[postback_button("b", "B")] * 4), "buttons"),
        (generic_element("ok", buttons=[postback_button("b" * 21, "B")]), "buttons[0].title"),
        ("element", ""),
    ],
)
def test_generic_element_limits_name_the_field(element: Any, field: str) -> None:
    message = generic_template([generic_element(name) for name in ("first", "second", "third")])
    message["attachment"]["payload"]["elements"][2] = element
    prefix = "message.attachment.payload.elements[2]"
    assert field_of(message) == (f"{prefix}.{field}" if field else prefix)


def test_generic_element_boundaries_accepted() -> None:
    update(
        generic_template(
            [
                generic_element(
                    "t" * 80,
                    subtitle="s" * 80,
                    buttons=[postback_button("b", "B")] * 3,
                    default_action_url="https://example.com",
                )
            ]
        )
    )
    body = update(generic_template([{"title": "e", "subtitle": ""}]))
    assert body["message"]["attachment"]["payload"]["elements"] == [{"title": "e", "subtitle": ""}]


def test_generic_image_aspect_ratio_checked() -> None:
    message = generic_template([generic_element("e")])
    message["attachment"]["payload"]["image_aspect_ratio"] = "wide"
    assert field_of(message) == "message.attachment.payload.image_aspect_ratio"


# --- opt-in templates --------------------------------------------------------------------------


def test_one_time_notification_title_at_most_65() -> None:
    update(one_time_notif_request("t" * 65, "OTN"))
    path = "message.attachment.payload"
    assert field_of(one_time_notif_request("t" * 66, "OTN")) == f"{path}.title"
    assert field_of(one_time_notif_request("", "OTN")) == f"{path}.title"
    assert field_of(one_time_notif_request("ok", "")) == f"{path}.payload"
    assert field_of(one_time_notif_request("ok", "p" * 1001)) == f"{path}.payload"


def test_notification_messages_checks() -> None:
    path = "message.attachment.payload"
    assert field_of(notification_messages_request("P", title="t" * 66)) == f"{path}.title"
    assert field_of(notification_messages_request("")) == f"{path}.payload"
    assert (
        field_of(notification_messages_request("P", image_url="data:image/png;base64,AA"))
        == f"{path}.image_url"
    )
    bad_cta = notification_messages_request("P")
    bad_cta["attachment"]["payload"]["notification_messages_cta_text"] = "BUY_NOW"
    assert field_of(bad_cta) == f"{path}.notification_messages_cta_text"
    removed = notification_messages_request("P")
    removed["attachment"]["payload"]["notification_messages_frequency"] = "DAILY"
    assert field_of(removed) == f"{path}.notification_messages_frequency"


# --- attachments -------------------------------------------------------------------------------


def test_media_attachments() -> None:
    update({"attachment": {"type": "image", "payload": {"url": "https://e.com/i.png"}}})
    update({"attachment": {"type": "file", "payload": {"attachment_id": "123"}}})
    update({"attachments": [{"type": "image", "payload": {"url": "https://e.com/i.png"}}] * 30})
    assert (
        field_of({"attachment": {"type": "image", "payload": {}}}) == "message.attachment.payload"
    )
    assert field_of({"attachment": {"type": "gif", "payload": {}}}) == "message.attachment.type"
    assert (
        field_of({"attachment": {"type": "video", "payload": "x"}}) == "message.attachment.payload"
    )
    assert field_of({"attachment": "x"}) == "message.attachment"
    image = {"type": "image", "payload": {"url": "https://e.com/i.png"}}
    assert field_of({"attachments": [image] * 31}) == "message.attachments"
    assert (
        field_of({"attachments": [image, {"type": "image", "payload": {"url": "x"}}]})
        == "message.attachments[1].payload.url"
    )


def test_templates_unknown_to_us_pass_but_need_a_type() -> None:
    update(
        {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": []}}}
    )
    assert (
        field_of({"attachment": {"type": "template", "payload": {}}})
        == "message.attachment.payload.template_type"
    )
    assert (
        field_of({"attachment": {"type": "template", "payload": "x"}})
        == "message.attachment.payload"
    )


def test_payload_invalid_is_a_malformed_request_and_a_value_error() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        update(text_message(""))
    assert isinstance(caught.value, MalformedRequest)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason == "must not be empty"
    assert str(caught.value) == "message.text: must not be empty"
    assert not caught.value.retryable
