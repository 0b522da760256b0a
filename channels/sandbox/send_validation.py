"""Send API request shape and limits, checked the way Graph does (reference §2, §3, [S2][S3][S24]).

Pure: a mapping of request parameters in, a `SendRequest` out, or a `GraphError` (code 100) raised.
Nothing here knows about time, Pages or people; the emulator applies those rules afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from channels.sandbox.graph_errors import GraphError, invalid_parameter
from channels.sandbox.variants import Variants

RecipientKind = Literal[
    "id",
    "user_ref",
    "comment_id",
    "post_id",
    "one_time_notif_token",
    "notification_messages_token",
]
RECIPIENT_KINDS: tuple[RecipientKind, ...] = (
    "id",
    "user_ref",
    "comment_id",
    "post_id",
    "one_time_notif_token",
    "notification_messages_token",
)
MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
ACTIVE_TAGS = frozenset({"HUMAN_AGENT", "CUSTOMER_FEEDBACK"})
# reference §0 and §2: error 100 since Apr 27, 2026, even inside the window [S2][S3][S4][T1].
RETIRED_TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})
NOTIFICATION_TYPES = frozenset({"REGULAR", "SILENT_PUSH", "NO_PUSH"})
SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen", "react", "unreact"})
ATTACHMENT_TYPES = frozenset({"audio", "file", "image", "template", "video"})
MEDIA_RATE_TYPES = frozenset({"audio", "video"})
QUICK_REPLY_TYPES = frozenset({"text", "user_phone_number", "user_email"})
WEBVIEW_HEIGHT_RATIOS = frozenset({"compact", "tall", "full"})
NM_CTA_TEXTS = frozenset({"ALLOW", "FREQUENCY", "GET", "GET_UPDATES", "OPT_IN", "SIGN_UP"})
FEEDBACK_QUESTION_TYPES = frozenset({"csat", "nps", "ces", "free_form"})
MESSAGE_KEYS = frozenset(
    {"text", "attachment", "attachments", "sticker_id", "quick_replies", "metadata"}
)
MESSAGE_CONTENT_KEYS = ("text", "attachment", "attachments", "sticker_id")

TEXT_LIMIT = 2000  # text must be shorter than this (reference §2, [S3])
METADATA_LIMIT = 1000  # metadata must be shorter than this (reference §2, [S3])
QUICK_REPLIES_MAX = 13
ATTACHMENTS_MAX = 30
BUTTON_TEXT_MAX = 640
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
POSTBACK_PAYLOAD_MAX = 1000
GENERIC_ELEMENTS_MAX = 10
ELEMENT_TITLE_MAX = 80
ELEMENT_SUBTITLE_MAX = 80
OPTIN_TITLE_MAX = 65


@dataclass(frozen=True)
class SendRequest:
    """A well-formed Send API request, reduced to what the emulator's rules need."""

    recipient_kind: RecipientKind
    recipient: str
    messaging_type: str | None
    tag: str | None
    message: Mapping[str, Any] | None
    sender_action: str | None
    notification_type: str | None
    template_type: str | None
    template_payload: Mapping[str, Any] | None
    metadata: str | None
    is_media: bool


def parse_send_request(params: Mapping[str, Any], variants: Variants) -> SendRequest:
    """Validate `params` (JSON body merged over the query) or raise `GraphError` 100."""
    recipient_kind, recipient = _recipient(params.get("recipient"))

    tag = params.get("tag")
    # Checked first: the retired tags fail even on an otherwise valid in-window send (§0, [T1]).
    if isinstance(tag, str) and tag in RETIRED_TAGS:
        raise GraphError(
            100,
            variants.retired_tag_subcode,
            "(#100) Invalid parameter",
            error_user_title="Invalid tag",
        )

    message = params.get("message")
    sender_action = params.get("sender_action")
    if message is not None and sender_action is not None:
        # reference §2: sender_action "must be sent on its own, never together with message" [S3].
        raise invalid_parameter("sender_action cannot be sent together with message")
    if message is None and sender_action is None:
        raise invalid_parameter("Must send either message or sender_action")

    messaging_type = params.get("messaging_type")
    if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
        raise invalid_parameter(
            "param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG} - got "
            f"{messaging_type!r}"
        )
    if messaging_type is None and recipient_kind == "id" and message is not None:
        # reference §2 table: messaging_type is required for PSID sends [S3].
        raise invalid_parameter("The parameter messaging_type is required")
    if messaging_type == "MESSAGE_TAG" and tag is None:
        raise invalid_parameter("Tag is required for MESSAGE_TAG messaging type.")
    if tag is not None:
        if messaging_type != "MESSAGE_TAG":
            raise invalid_parameter("tag can only be used with messaging_type MESSAGE_TAG")
        if tag not in ACTIVE_TAGS:
            # reference §6: older clients saw "(#100) Invalid tag." [T9].
            raise invalid_parameter("Invalid tag.")

    notification_type = params.get("notification_type")
    if notification_type is not None and notification_type not in NOTIFICATION_TYPES:
        raise invalid_parameter(
            "param notification_type must be one of {REGULAR, SILENT_PUSH, NO_PUSH}"
        )
    reply_to = params.get("reply_to")
    if reply_to is not None and not (
        isinstance(reply_to, Mapping) and _nonempty_str(reply_to.get("mid"))
    ):
        raise invalid_parameter("param reply_to must be an object with a non-empty mid")

    if sender_action is not None:
        _sender_action(sender_action, params.get("payload"), recipient_kind)
        return SendRequest(
            recipient_kind=recipient_kind,
            recipient=recipient,
            messaging_type=messaging_type,
            tag=tag,
            message=None,
            sender_action=sender_action,
            notification_type=notification_type,
            template_type=None,
            template_payload=None,
            metadata=None,
            is_media=False,
        )

    checked = _message(message, variants)
    if tag == "CUSTOMER_FEEDBACK" and checked.template_type != "customer_feedback":
        # reference §2: any other use of CUSTOMER_FEEDBACK "is prohibited and will fail" [S3].
        raise invalid_parameter(
            "CUSTOMER_FEEDBACK tag can only be used with the customer_feedback template"
        )
    return SendRequest(
        recipient_kind=recipient_kind,
        recipient=recipient,
        messaging_type=messaging_type,
        tag=tag,
        message=cast(Mapping[str, Any], message),
        sender_action=None,
        notification_type=notification_type,
        template_type=checked.template_type,
        template_payload=checked.template_payload,
        metadata=checked.metadata,
        is_media=checked.is_media,
    )


@dataclass(frozen=True)
class _CheckedMessage:
    template_type: str | None
    template_payload: Mapping[str, Any] | None
    metadata: str | None
    is_media: bool


def _recipient(value: Any) -> tuple[RecipientKind, str]:
    if value is None:
        raise invalid_parameter("The parameter recipient is required")
    if not isinstance(value, Mapping):
        raise invalid_parameter("param recipient must be an object")
    unknown = sorted(set(value) - set(RECIPIENT_KINDS))
    if unknown:
        raise invalid_parameter(f"param recipient has unsupported field(s): {', '.join(unknown)}")
    present = [kind for kind in RECIPIENT_KINDS if kind in value]
    if len(present) != 1:
        # reference §2 table: "exactly one of" the recipient fields [S3].
        raise invalid_parameter(
            "param recipient must have exactly one of id, user_ref, comment_id, post_id, "
            "one_time_notif_token, notification_messages_token"
        )
    kind = present[0]
    raw = value[kind]
    if kind == "id" and isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not _nonempty_str(raw):
        raise invalid_parameter(f"param recipient[{kind}] must be a non-empty string")
    return kind, cast(str, raw)


def _sender_action(action: Any, payload: Any, recipient_kind: RecipientKind) -> None:
    if action not in SENDER_ACTIONS:
        raise invalid_parameter(
            "param sender_action must be one of {typing_on, typing_off, mark_seen, react, unreact}"
        )
    if recipient_kind != "id":
        raise invalid_parameter("sender_action requires recipient[id]")
    if action in ("react", "unreact"):
        # reference §2: react/unreact carry payload.message_id / reaction [S4].
        if not isinstance(payload, Mapping) or not _nonempty_str(payload.get("message_id")):
            raise invalid_parameter(f"sender_action {action} requires payload[message_id]")
        if action == "react" and not _nonempty_str(payload.get("reaction")):
            raise invalid_parameter("sender_action react requires payload[reaction]")


def _message(message: Any, variants: Variants) -> _CheckedMessage:
    if not isinstance(message, Mapping):
        raise invalid_parameter("param message must be an object")
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        raise invalid_parameter(f"param message has unsupported field(s): {', '.join(unknown)}")
    content = [key for key in MESSAGE_CONTENT_KEYS if key in message]
    if len(content) != 1:
        raise invalid_parameter(
            "param message must have exactly one of text, attachment, attachments, sticker_id"
        )
    template_type: str | None = None
    template_payload: Mapping[str, Any] | None = None
    is_media = False
    kind = content[0]
    if kind == "text":
        _text(message["text"], "message[text]", TEXT_LIMIT)
    elif kind == "attachment":
        template_type, template_payload, is_media = _attachment(message["attachment"])
    elif kind == "attachments":
        _attachments(message["attachments"])
    else:
        sticker = message["sticker_id"]
        if (
            isinstance(sticker, bool)
            or not isinstance(sticker, int | str)
            or not str(sticker).isdigit()
        ):
            raise invalid_parameter("param message[sticker_id] must be a number")

    if "quick_replies" in message:
        _quick_replies(message["quick_replies"], variants)

    metadata = message.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            raise invalid_parameter("param message[metadata] must be a string")
        if len(metadata) >= METADATA_LIMIT:
            # reference §2: metadata is < 1000 chars [S3].
            raise invalid_parameter(
                f"Length of param message[metadata] must be less than {METADATA_LIMIT} characters"
            )
    return _CheckedMessage(template_type, template_payload, metadata, is_media)


def _text(value: Any, name: str, limit_exclusive: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise invalid_parameter(f"param {name} must be a non-empty UTF-8 encoded string")
    if len(value) >= limit_exclusive:
        # reference §2: text is UTF-8, < 2000 chars [S3].
        raise invalid_parameter(
            f"Length of param {name} must be less than {limit_exclusive} characters"
        )


def _bounded(value: Any, name: str, maximum: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not _nonempty_str(value):
        raise invalid_parameter(f"param {name} must be a non-empty string")
    if len(cast(str, value)) > maximum:
        raise invalid_parameter(f"param {name} must be at most {maximum} characters")


def _quick_replies(value: Any, variants: Variants) -> None:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise invalid_parameter("param message[quick_replies] must be a non-empty array")
    if len(value) > QUICK_REPLIES_MAX:
        # reference §2: up to 13 quick replies [S24].
        raise invalid_parameter(
            f"param message[quick_replies] must have at most {QUICK_REPLIES_MAX} elements"
        )
    for index, reply in enumerate(value):
        name = f"message[quick_replies][{index}]"
        if not isinstance(reply, Mapping):
            raise invalid_parameter(f"param {name} must be an object")
        content_type = reply.get("content_type")
        if content_type not in QUICK_REPLY_TYPES:
            raise invalid_parameter(
                f"param {name}[content_type] must be one of {{text, user_phone_number, user_email}}"
            )
        if content_type != "text":
            continue
        # reference §2: a text quick reply needs a non-empty title (truncated at 20, not refused).
        if not _nonempty_str(reply.get("title")):
            raise invalid_parameter(f"param {name}[title] must be a non-empty string")
        payload = reply.get("payload")
        if isinstance(payload, int) and not isinstance(payload, bool):
            payload = str(payload)
        if not _nonempty_str(payload):
            raise invalid_parameter(f"param {name}[payload] must be a non-empty string")
        limit = variants.quick_reply_payload_max
        if limit is not None and len(cast(str, payload)) > limit:
            raise invalid_parameter(f"param {name}[payload] must be at most {limit} characters")
        image_url = reply.get("image_url")
        if image_url is not None and not _is_url(image_url):
            raise invalid_parameter(f"param {name}[image_url] must be a URL")


def _attachment(value: Any) -> tuple[str | None, Mapping[str, Any] | None, bool]:
    if not isinstance(value, Mapping):
        raise invalid_parameter("param message[attachment] must be an object")
    kind = value.get("type")
    if kind not in ATTACHMENT_TYPES:
        raise invalid_parameter(
            "param message[attachment][type] must be one of {audio, file, image, template, video}"
        )
    payload = value.get("payload")
    if not isinstance(payload, Mapping):
        raise invalid_parameter("param message[attachment][payload] must be an object")
    if kind != "template":
        _media_payload(payload, "message[attachment][payload]")
        return None, None, kind in MEDIA_RATE_TYPES
    template_type = payload.get("template_type")
    validator = _TEMPLATES.get(template_type) if isinstance(template_type, str) else None
    if validator is None:
        raise invalid_parameter(
            "param message[attachment][payload][template_type] is not supported by the emulator: "
            f"{template_type!r}"
        )
    validator(payload)
    return cast(str, template_type), payload, False


def _media_payload(payload: Mapping[str, Any], name: str) -> None:
    if _is_url(payload.get("url")) or _nonempty_str(payload.get("attachment_id")):
        return
    raise invalid_parameter(f"param {name} needs a url or an attachment_id")


def _attachments(value: Any) -> None:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise invalid_parameter("param message[attachments] must be a non-empty array")
    if len(value) > ATTACHMENTS_MAX:
        # reference §2: attachments[] may hold up to 30 images [S2].
        raise invalid_parameter(
            f"param message[attachments] must have at most {ATTACHMENTS_MAX} elements"
        )
    for index, item in enumerate(value):
        name = f"message[attachments][{index}]"
        if not isinstance(item, Mapping) or item.get("type") != "image":
            raise invalid_parameter(f"param {name} must be an image attachment")
        payload = item.get("payload")
        if not isinstance(payload, Mapping):
            raise invalid_parameter(f"param {name}[payload] must be an object")
        _media_payload(payload, f"{name}[payload]")


def _buttons(value: Any, name: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise invalid_parameter(f"param {name} must be an array")
    if required and not value:
        raise invalid_parameter(f"param {name} must have at least 1 element")
    if len(value) > BUTTONS_MAX:
        # reference §2: button template and generic elements take at most 3 buttons [S24].
        raise invalid_parameter(f"param {name} must have at most {BUTTONS_MAX} elements")
    for index, button in enumerate(value):
        _button(button, f"{name}[{index}]")


def _button(button: Any, name: str) -> None:
    if not isinstance(button, Mapping):
        raise invalid_parameter(f"param {name} must be an object")
    kind = button.get("type")
    _bounded(button.get("title"), f"{name}[title]", BUTTON_TITLE_MAX)
    if kind == "web_url":
        if not _is_url(button.get("url")):
            raise invalid_parameter(f"param {name}[url] must be an http(s) URL")
        ratio = button.get("webview_height_ratio")
        if ratio is not None and ratio not in WEBVIEW_HEIGHT_RATIOS:
            raise invalid_parameter(
                f"param {name}[webview_height_ratio] must be one of {{compact, tall, full}}"
            )
    elif kind == "postback":
        _bounded(button.get("payload"), f"{name}[payload]", POSTBACK_PAYLOAD_MAX)
    elif kind == "phone_number":
        number = button.get("payload")
        if not (_nonempty_str(number) and cast(str, number).startswith("+")):
            raise invalid_parameter(f"param {name}[payload] must be a phone number starting with +")
    else:
        raise invalid_parameter(
            f"param {name}[type] must be one of {{web_url, postback, phone_number}}"
        )


def _button_template(payload: Mapping[str, Any]) -> None:
    name = "message[attachment][payload]"
    _bounded(payload.get("text"), f"{name}[text]", BUTTON_TEXT_MAX)
    _buttons(payload.get("buttons"), f"{name}[buttons]", required=True)


def _generic_template(payload: Mapping[str, Any]) -> None:
    name = "message[attachment][payload][elements]"
    elements = payload.get("elements")
    if not isinstance(elements, Sequence) or isinstance(elements, str) or not elements:
        raise invalid_parameter(f"param {name} must be a non-empty array")
    if len(elements) > GENERIC_ELEMENTS_MAX:
        # reference §2: generic template takes at most 10 elements [S24].
        raise invalid_parameter(f"param {name} must have at most {GENERIC_ELEMENTS_MAX} elements")
    ratio = payload.get("image_aspect_ratio")
    if ratio is not None and ratio not in ("horizontal", "square"):
        raise invalid_parameter("param image_aspect_ratio must be one of {horizontal, square}")
    for index, element in enumerate(elements):
        here = f"{name}[{index}]"
        if not isinstance(element, Mapping):
            raise invalid_parameter(f"param {here} must be an object")
        _bounded(element.get("title"), f"{here}[title]", ELEMENT_TITLE_MAX)
        _bounded(element.get("subtitle"), f"{here}[subtitle]", ELEMENT_SUBTITLE_MAX, required=False)
        image_url = element.get("image_url")
        if image_url is not None and not _is_url(image_url):
            raise invalid_parameter(f"param {here}[image_url] must be an http(s) URL")
        default_action = element.get("default_action")
        if default_action is not None:
            # reference §2: default_action has the URL-button fields minus title [S24].
            if not isinstance(default_action, Mapping) or default_action.get("type") != "web_url":
                raise invalid_parameter(f"param {here}[default_action][type] must be web_url")
            if "title" in default_action:
                raise invalid_parameter(f"param {here}[default_action] must not have a title")
            if not _is_url(default_action.get("url")):
                raise invalid_parameter(f"param {here}[default_action][url] must be an http(s) URL")
        _buttons(element.get("buttons"), f"{here}[buttons]", required=False)


def _one_time_notif_req(payload: Mapping[str, Any]) -> None:
    # reference §3.1: only title (<= 65 chars) and payload are customizable [S18].
    name = "message[attachment][payload]"
    _bounded(payload.get("title"), f"{name}[title]", OPTIN_TITLE_MAX)
    if not _nonempty_str(payload.get("payload")):
        raise invalid_parameter(f"param {name}[payload] must be a non-empty string")


def _notification_messages(payload: Mapping[str, Any]) -> None:
    name = "message[attachment][payload]"
    # reference §3.2: title optional since Feb 21, 2023 [S4].
    _bounded(payload.get("title"), f"{name}[title]", OPTIN_TITLE_MAX, required=False)
    if not _nonempty_str(payload.get("payload")):
        raise invalid_parameter(f"param {name}[payload] must be a non-empty string")
    if "notification_messages_frequency" in payload:
        # reference §3.2: deprecated Feb 2, 2023 and "removed in API v16" [S4][S13].
        raise invalid_parameter(
            f"param {name}[notification_messages_frequency] is no longer supported"
        )
    cta = payload.get("notification_messages_cta_text")
    if cta is not None and cta not in NM_CTA_TEXTS:
        raise invalid_parameter(
            f"param {name}[notification_messages_cta_text] must be one of "
            "{ALLOW, FREQUENCY, GET, GET_UPDATES, OPT_IN, SIGN_UP}"
        )
    reoptin = payload.get("notification_messages_reoptin")
    if reoptin is not None and reoptin not in ("ENABLED", "DISABLED"):
        raise invalid_parameter(
            f"param {name}[notification_messages_reoptin] must be ENABLED or DISABLED"
        )
    image_url = payload.get("image_url")
    if image_url is not None and not _is_url(image_url):
        raise invalid_parameter(f"param {name}[image_url] must be an http(s) URL")


def _customer_feedback(payload: Mapping[str, Any]) -> None:
    # Shape from the Customer Feedback Template page [S29]; the reference only names it (§2).
    name = "message[attachment][payload]"
    screens = payload.get("feedback_screens")
    if not isinstance(screens, Sequence) or isinstance(screens, str) or not screens:
        raise invalid_parameter(f"param {name}[feedback_screens] must be a non-empty array")
    for index, screen in enumerate(screens):
        questions = screen.get("questions") if isinstance(screen, Mapping) else None
        if not isinstance(questions, Sequence) or isinstance(questions, str) or not questions:
            raise invalid_parameter(
                f"param {name}[feedback_screens][{index}][questions] must be a non-empty array"
            )
        for question in questions:
            if (
                not isinstance(question, Mapping)
                or question.get("type") not in FEEDBACK_QUESTION_TYPES
            ):
                raise invalid_parameter(
                    "feedback question type must be one of {csat, nps, ces, free_form}"
                )
    privacy = payload.get("business_privacy")
    if not isinstance(privacy, Mapping) or not _is_url(privacy.get("url")):
        raise invalid_parameter(f"param {name}[business_privacy][url] must be an http(s) URL")


_TEMPLATES = {
    "button": _button_template,
    "generic": _generic_template,
    "one_time_notif_req": _one_time_notif_req,
    "notification_messages": _notification_messages,
    "customer_feedback": _customer_feedback,
}


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) > 8
