"""Pure builders and checks for Send API bodies (reference section 2).

Builders shape JSON; `validate_message` and `validate_send_request` check Meta's documented limits
and raise `PayloadInvalid` naming the field path (`message.quick_replies[3].title`), so a bad
message fails here, with a clear reason, instead of as a bare #100 from Meta. `build_send_request`
assembles a body and validates it. Nothing here knows the policy: retired tags build fine (the
policy refuses them); only the shape rules of the Send API are enforced.

User-visible text is NFC-normalised (Vietnamese copy arrives in either form) and lengths are
counted in code points after NFC.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from channels.messenger.errors import PayloadInvalid

JsonObject = dict[str, Any]

# Limits, reference §2 [S2][S3][S24] unless noted.
TEXT_MAX = 1999  # text "< 2000 chars"
METADATA_MAX = 999  # metadata "< 1000 chars", echoed in message_echoes
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20  # Meta truncates at 20; we refuse instead of sending a cut title
BUTTONS_MIN = 1
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_TEMPLATE_TEXT_MAX = 640
GENERIC_ELEMENTS_MAX = 10
GENERIC_ELEMENT_BUTTONS_MAX = 3
ELEMENT_TITLE_MAX = 80
ELEMENT_SUBTITLE_MAX = 80
PAYLOAD_MAX = 1000  # postback payload; also assumed for quick replies (reference §10 item 10)
OTN_TITLE_MAX = 65  # one_time_notif_req title, reference §3.1 [S18]
# Not stated in the reference for notification_messages; assumed equal to the OTN title limit.
NOTIFICATION_TITLE_MAX = 65

QUICK_REPLY_CONTENT_TYPES = frozenset({"text", "user_phone_number", "user_email"})
WEBVIEW_HEIGHT_RATIOS = frozenset({"compact", "tall", "full"})
IMAGE_ASPECT_RATIOS = frozenset({"horizontal", "square"})
MEDIA_TYPES = frozenset({"audio", "file", "image", "video"})
# reference §3.2 [S20]
NOTIFICATION_CTA_TEXTS = frozenset(
    {"ALLOW", "FREQUENCY", "GET", "GET_UPDATES", "OPT_IN", "SIGN_UP"}
)

WebviewHeightRatio = Literal["compact", "tall", "full"]
NotificationCtaText = Literal["ALLOW", "FREQUENCY", "GET", "GET_UPDATES", "OPT_IN", "SIGN_UP"]


class RecipientKind(StrEnum):
    """How the recipient is addressed; the value is the JSON key under `recipient` (§2 [S3])."""

    PSID = "id"
    USER_REF = "user_ref"
    COMMENT = "comment_id"
    POST = "post_id"
    ONE_TIME_NOTIF_TOKEN = "one_time_notif_token"  # noqa: S105 (a field name)
    NOTIFICATION_MESSAGES_TOKEN = "notification_messages_token"  # noqa: S105 (a field name)

    @property
    def is_token(self) -> bool:
        return self in _TOKEN_KINDS


_TOKEN_KINDS = frozenset(
    {RecipientKind.ONE_TIME_NOTIF_TOKEN, RecipientKind.NOTIFICATION_MESSAGES_TOKEN}
)
_PRIVATE_REPLY_KINDS = frozenset({RecipientKind.COMMENT, RecipientKind.POST})


@dataclass(frozen=True)
class Recipient:
    """One addressee. Token values are secrets: they never appear in repr or error messages."""

    kind: RecipientKind
    value: str = field(repr=False)

    @classmethod
    def psid(cls, psid: str) -> Recipient:
        return cls(RecipientKind.PSID, psid)

    @classmethod
    def user_ref(cls, user_ref: str) -> Recipient:
        return cls(RecipientKind.USER_REF, user_ref)

    @classmethod
    def comment(cls, comment_id: str) -> Recipient:
        return cls(RecipientKind.COMMENT, comment_id)

    @classmethod
    def post(cls, post_id: str) -> Recipient:
        return cls(RecipientKind.POST, post_id)

    @classmethod
    def one_time_notif_token(cls, token: str) -> Recipient:
        return cls(RecipientKind.ONE_TIME_NOTIF_TOKEN, token)

    @classmethod
    def notification_messages_token(cls, token: str) -> Recipient:
        return cls(RecipientKind.NOTIFICATION_MESSAGES_TOKEN, token)

    def to_json(self) -> dict[str, str]:
        return {self.kind.value: self.value}


class MessagingType(StrEnum):
    RESPONSE = "RESPONSE"
    UPDATE = "UPDATE"
    MESSAGE_TAG = "MESSAGE_TAG"


class NotificationType(StrEnum):
    REGULAR = "REGULAR"
    SILENT_PUSH = "SILENT_PUSH"
    NO_PUSH = "NO_PUSH"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# --- builders ---------------------------------------------------------------------------------


def quick_reply(title: str, payload: str, *, image_url: str | None = None) -> JsonObject:
    item: JsonObject = {"content_type": "text", "title": nfc(title), "payload": payload}
    if image_url is not None:
        item["image_url"] = image_url
    return item


def quick_reply_user_email() -> JsonObject:
    """Offers the person's Facebook email as a one-tap reply (reference §2 [S24])."""
    return {"content_type": "user_email"}


def quick_reply_user_phone_number() -> JsonObject:
    return {"content_type": "user_phone_number"}


def url_button(
    title: str, url: str, *, webview_height_ratio: WebviewHeightRatio | None = None
) -> JsonObject:
    button: JsonObject = {"type": "web_url", "url": url, "title": nfc(title)}
    if webview_height_ratio is not None:
        button["webview_height_ratio"] = webview_height_ratio
    return button


def postback_button(title: str, payload: str) -> JsonObject:
    return {"type": "postback", "title": nfc(title), "payload": payload}


def text_message(text: str, *, quick_replies: Sequence[Mapping[str, Any]] = ()) -> JsonObject:
    message: JsonObject = {"text": nfc(text)}
    return _with_quick_replies(message, quick_replies)


def button_template(
    text: str,
    buttons: Sequence[Mapping[str, Any]],
    *,
    quick_replies: Sequence[Mapping[str, Any]] = (),
) -> JsonObject:
    payload: JsonObject = {
        "template_type": "button",
        "text": nfc(text),
        "buttons": [dict(button) for button in buttons],
    }
    return _with_quick_replies(_template(payload), quick_replies)


def generic_element(
    title: str,
    *,
    subtitle: str | None = None,
    image_url: str | None = None,
    default_action_url: str | None = None,
    buttons: Sequence[Mapping[str, Any]] = (),
) -> JsonObject:
    element: JsonObject = {"title": nfc(title)}
    if subtitle is not None:
        element["subtitle"] = nfc(subtitle)
    if image_url is not None:
        element["image_url"] = image_url
    if default_action_url is not None:
        # A default action is a URL button without a title, reference §2 [S24].
        element["default_action"] = {"type": "web_url", "url": default_action_url}
    if buttons:
        element["buttons"] = [dict(button) for button in buttons]
    return element


def generic_template(
    elements: Sequence[Mapping[str, Any]],
    *,
    image_aspect_ratio: Literal["horizontal", "square"] | None = None,
    quick_replies: Sequence[Mapping[str, Any]] = (),
) -> JsonObject:
    payload: JsonObject = {
        "template_type": "generic",
        "elements": [dict(element) for element in elements],
    }
    if image_aspect_ratio is not None:
        payload["image_aspect_ratio"] = image_aspect_ratio
    return _with_quick_replies(_template(payload), quick_replies)


def one_time_notif_request(title: str, payload: str) -> JsonObject:
    """Asks for a one-time notification token; only title and payload are customisable (§3.1 [S18])."""
    return _template(
        {"template_type": "one_time_notif_req", "title": nfc(title), "payload": payload}
    )


def notification_messages_request(
    payload: str,
    *,
    title: str | None = None,
    image_url: str | None = None,
    timezone: str | None = None,
    cta_text: NotificationCtaText | None = None,
) -> JsonObject:
    """The `notification_messages` opt-in template (reference §3.2 [S20][S16]).

    `title` is optional since Feb 21, 2023 (Meta shows "Updates and promotions"); the frequency field
    was removed in API v16 and is not offered.
    """
    body: JsonObject = {"template_type": "notification_messages", "payload": payload}
    if title is not None:
        body["title"] = nfc(title)
    if image_url is not None:
        body["image_url"] = image_url
    if timezone is not None:
        body["notification_messages_timezone"] = timezone
    if cta_text is not None:
        body["notification_messages_cta_text"] = cta_text
    return _template(body)


def build_send_request(
    recipient: Recipient,
    message: Mapping[str, Any],
    *,
    messaging_type: MessagingType | None = None,
    tag: str | None = None,
    metadata: str | None = None,
    notification_type: NotificationType | None = None,
    reply_to: str | None = None,
) -> JsonObject:
    """The Send API body (reference §2 [S3]), validated; raises `PayloadInvalid`.

    `metadata` goes to `message.metadata` and comes back in `message_echoes`: pass the delivery id
    so an echo proves which delivery was sent (DESIGN section 8). For token recipients the reference
    shows no `messaging_type` (§3.1 [T5], §3.2), so none may be given; private replies (§8 [S17])
    may omit it; PSID and user_ref sends require it.
    """
    body: JsonObject = {"recipient": recipient.to_json()}
    if messaging_type is not None:
        body["messaging_type"] = messaging_type.value
    if tag is not None:
        body["tag"] = tag
    built = copy.deepcopy(dict(message))
    if metadata is not None:
        built["metadata"] = metadata
    body["message"] = built
    if notification_type is not None:
        body["notification_type"] = notification_type.value
    if reply_to is not None:
        body["reply_to"] = {"mid": reply_to}
    validate_send_request(body)
    return body


def _template(payload: JsonObject) -> JsonObject:
    return {"attachment": {"type": "template", "payload": payload}}


def _with_quick_replies(
    message: JsonObject, quick_replies: Sequence[Mapping[str, Any]]
) -> JsonObject:
    if quick_replies:
        message["quick_replies"] = [dict(item) for item in quick_replies]
    return message


# --- validation -------------------------------------------------------------------------------


def validate_send_request(body: Mapping[str, Any]) -> None:
    """Check a whole Send API body; raises `PayloadInvalid` with the path of the first problem."""
    kind = _validate_recipient(body.get("recipient"))
    messaging_type = body.get("messaging_type")
    if messaging_type is not None and messaging_type not in set(MessagingType):
        raise PayloadInvalid("messaging_type", "must be RESPONSE, UPDATE or MESSAGE_TAG")
    if kind.is_token and messaging_type is not None:
        # No messaging_type or tag in Meta's token sends, reference §3.1 [T5] and §3.2 [S16].
        raise PayloadInvalid("messaging_type", "is not sent with a token recipient")
    if kind not in _PRIVATE_REPLY_KINDS and not kind.is_token and messaging_type is None:
        raise PayloadInvalid("messaging_type", "is required for this recipient")
    tag = body.get("tag")
    if messaging_type == MessagingType.MESSAGE_TAG:
        if not isinstance(tag, str) or not tag:
            raise PayloadInvalid("tag", "is required with MESSAGE_TAG")
    elif tag is not None:
        raise PayloadInvalid("tag", "is allowed only with messaging_type MESSAGE_TAG")
    notification_type = body.get("notification_type")
    if notification_type is not None and notification_type not in set(NotificationType):
        raise PayloadInvalid("notification_type", "must be REGULAR, SILENT_PUSH or NO_PUSH")
    if "reply_to" in body:
        reply_to = body["reply_to"]
        if not isinstance(reply_to, Mapping) or not _nonempty_str(reply_to.get("mid")):
            raise PayloadInvalid("reply_to.mid", "must be a non-empty message id")
    if "sender_action" in body:
        # sender_action is sent on its own, never with a message, reference §2 [S3].
        raise PayloadInvalid("sender_action", "cannot be sent together with a message")
    validate_message(body.get("message"), "message")


def validate_message(message: Any, path: str = "message") -> None:
    """Check one `message` object against Meta's limits (also used to check campaign templates)."""
    if not isinstance(message, Mapping):
        raise PayloadInvalid(path, "must be an object")
    contents = [
        key for key in ("text", "attachment", "attachments", "sticker_id") if key in message
    ]
    if len(contents) != 1:
        raise PayloadInvalid(path, "needs exactly one of text, attachment, attachments, sticker_id")
    if "text" in message:
        _check_text(message["text"], f"{path}.text", TEXT_MAX)
    if "attachment" in message:
        _validate_attachment(message["attachment"], f"{path}.attachment")
    if "attachments" in message:
        items = message["attachments"]
        # Up to 30 images in one message, reference §2 [S2].
        if not isinstance(items, list) or not 1 <= len(items) <= 30:
            raise PayloadInvalid(f"{path}.attachments", "must hold 1 to 30 attachments")
        for index, item in enumerate(items):
            _validate_attachment(item, f"{path}.attachments[{index}]")
    if "quick_replies" in message:
        _validate_quick_replies(message["quick_replies"], f"{path}.quick_replies")
    if "metadata" in message:
        metadata = message["metadata"]
        if not isinstance(metadata, str):
            raise PayloadInvalid(f"{path}.metadata", "must be a string")
        if len(metadata) > METADATA_MAX:
            raise PayloadInvalid(
                f"{path}.metadata", f"must be shorter than {METADATA_MAX + 1} characters"
            )


def _validate_recipient(recipient: Any) -> RecipientKind:
    if not isinstance(recipient, Mapping) or len(recipient) != 1:
        raise PayloadInvalid("recipient", "needs exactly one addressing field")
    ((key, value),) = recipient.items()
    try:
        kind = RecipientKind(key)
    except ValueError:
        raise PayloadInvalid("recipient", "has an unknown addressing field") from None
    if not _nonempty_str(value):
        raise PayloadInvalid(f"recipient.{key}", "must be a non-empty string")
    return kind


def _validate_quick_replies(items: Any, path: str) -> None:
    if not isinstance(items, list) or not items:
        raise PayloadInvalid(path, "must be a non-empty list")
    if len(items) > QUICK_REPLIES_MAX:
        raise PayloadInvalid(path, f"holds at most {QUICK_REPLIES_MAX} quick replies")
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise PayloadInvalid(where, "must be an object")
        content_type = item.get("content_type")
        if content_type not in QUICK_REPLY_CONTENT_TYPES:
            raise PayloadInvalid(
                f"{where}.content_type", "must be text, user_phone_number or user_email"
            )
        if content_type == "text":
            _check_text(item.get("title"), f"{where}.title", QUICK_REPLY_TITLE_MAX)
            _check_payload(item.get("payload"), f"{where}.payload")
            if "image_url" in item:
                _check_url(item["image_url"], f"{where}.image_url")


def _validate_attachment(attachment: Any, path: str) -> None:
    if not isinstance(attachment, Mapping):
        raise PayloadInvalid(path, "must be an object")
    kind = attachment.get("type")
    payload = attachment.get("payload")
    if kind == "template":
        if not isinstance(payload, Mapping):
            raise PayloadInvalid(f"{path}.payload", "must be an object")
        _validate_template(payload, f"{path}.payload")
    elif kind in MEDIA_TYPES:
        if not isinstance(payload, Mapping):
            raise PayloadInvalid(f"{path}.payload", "must be an object")
        if "url" in payload:
            _check_url(payload["url"], f"{path}.payload.url")
        elif not _nonempty_str(payload.get("attachment_id")):
            raise PayloadInvalid(f"{path}.payload", "needs a url or an attachment_id")
    else:
        raise PayloadInvalid(f"{path}.type", "must be template, image, audio, video or file")


def _validate_template(payload: Mapping[str, Any], path: str) -> None:
    template_type = payload.get("template_type")
    if template_type == "button":
        _check_text(payload.get("text"), f"{path}.text", BUTTON_TEMPLATE_TEXT_MAX)
        _validate_buttons(payload.get("buttons"), f"{path}.buttons", minimum=BUTTONS_MIN)
    elif template_type == "generic":
        _validate_generic(payload, path)
    elif template_type == "one_time_notif_req":
        _check_text(payload.get("title"), f"{path}.title", OTN_TITLE_MAX)
        _check_payload(payload.get("payload"), f"{path}.payload")
    elif template_type == "notification_messages":
        if "title" in payload:
            _check_text(payload["title"], f"{path}.title", NOTIFICATION_TITLE_MAX)
        _check_payload(payload.get("payload"), f"{path}.payload")
        if "image_url" in payload:
            _check_url(payload["image_url"], f"{path}.image_url")
        cta = payload.get("notification_messages_cta_text")
        if cta is not None and cta not in NOTIFICATION_CTA_TEXTS:
            raise PayloadInvalid(
                f"{path}.notification_messages_cta_text", "is not a known CTA text"
            )
        if "notification_messages_frequency" in payload:
            # Deprecated Feb 2, 2023, removed in API v16, reference §3.2 [S4][S13].
            raise PayloadInvalid(
                f"{path}.notification_messages_frequency", "was removed in API v16"
            )
    elif not _nonempty_str(template_type):
        raise PayloadInvalid(f"{path}.template_type", "must be a non-empty string")


def _validate_generic(payload: Mapping[str, Any], path: str) -> None:
    elements = payload.get("elements")
    if not isinstance(elements, list) or not elements:
        raise PayloadInvalid(f"{path}.elements", "must be a non-empty list")
    if len(elements) > GENERIC_ELEMENTS_MAX:
        raise PayloadInvalid(f"{path}.elements", f"holds at most {GENERIC_ELEMENTS_MAX} elements")
    ratio = payload.get("image_aspect_ratio")
    if ratio is not None and ratio not in IMAGE_ASPECT_RATIOS:
        raise PayloadInvalid(f"{path}.image_aspect_ratio", "must be horizontal or square")
    for index, element in enumerate(elements):
        where = f"{path}.elements[{index}]"
        if not isinstance(element, Mapping):
            raise PayloadInvalid(where, "must be an object")
        _check_text(element.get("title"), f"{where}.title", ELEMENT_TITLE_MAX)
        if "subtitle" in element:
            _check_text(
                element["subtitle"], f"{where}.subtitle", ELEMENT_SUBTITLE_MAX, empty_ok=True
            )
        if "image_url" in element:
            _check_url(element["image_url"], f"{where}.image_url")
        if "default_action" in element:
            action = element["default_action"]
            if not isinstance(action, Mapping) or action.get("type") != "web_url":
                raise PayloadInvalid(f"{where}.default_action", "must be a web_url action")
            if "title" in action:
                raise PayloadInvalid(f"{where}.default_action.title", "is not allowed")
            _check_url(action.get("url"), f"{where}.default_action.url")
        if "buttons" in element:
            _validate_buttons(element["buttons"], f"{where}.buttons", minimum=0)


def _validate_buttons(buttons: Any, path: str, *, minimum: int) -> None:
    if not isinstance(buttons, list):
        raise PayloadInvalid(path, "must be a list")
    if not minimum <= len(buttons) <= BUTTONS_MAX:
        raise PayloadInvalid(path, f"must hold {minimum} to {BUTTONS_MAX} buttons")
    for index, button in enumerate(buttons):
        where = f"{path}[{index}]"
        if not isinstance(button, Mapping):
            raise PayloadInvalid(where, "must be an object")
        kind = button.get("type")
        _check_text(button.get("title"), f"{where}.title", BUTTON_TITLE_MAX)
        if kind == "web_url":
            _check_url(button.get("url"), f"{where}.url")
            ratio = button.get("webview_height_ratio")
            if ratio is not None and ratio not in WEBVIEW_HEIGHT_RATIOS:
                raise PayloadInvalid(
                    f"{where}.webview_height_ratio", "must be compact, tall or full"
                )
        elif kind == "postback":
            _check_payload(button.get("payload"), f"{where}.payload")
        elif not _nonempty_str(kind):
            raise PayloadInvalid(f"{where}.type", "must be a non-empty string")


def _check_text(value: Any, path: str, maximum: int, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str):
        raise PayloadInvalid(path, "must be a string")
    length = len(nfc(value))
    if length == 0 and not empty_ok:
        raise PayloadInvalid(path, "must not be empty")
    if length > maximum:
        raise PayloadInvalid(path, f"must be at most {maximum} characters (got {length})")


def _check_payload(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise PayloadInvalid(path, "must be a string")
    if not value:
        raise PayloadInvalid(path, "must not be empty")
    if len(value) > PAYLOAD_MAX:
        raise PayloadInvalid(path, f"must be at most {PAYLOAD_MAX} characters (got {len(value)})")


def _check_url(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise PayloadInvalid(path, "must be a string")
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise PayloadInvalid(path, "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise PayloadInvalid(path, "must be a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PayloadInvalid(path, "must be an http(s) URL with a host")


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
