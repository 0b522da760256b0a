"""Our own wording in the emails, Vietnamese first (DESIGN section 2), English for `en*` locales.

`{sender}` is filled in by the templates with `str.format` on our own phrase; the sender's name is
a value there, never a format string, and autoescaping applies to the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["vi", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("vi", "en")


@dataclass(frozen=True, slots=True)
class Phrases:
    support_button: str
    subscribe_button: str
    footer_reason: str
    unsubscribe: str
    buttons_in_text: str
    confirm_subject: str
    confirm_heading: str
    confirm_body: str
    confirm_button: str
    confirm_ignore: str
    link_fallback: str


PHRASES: Final[dict[Language, Phrases]] = {
    "vi": Phrases(
        support_button="Nhận hỗ trợ",
        subscribe_button="Đăng ký nhận thông báo",
        footer_reason="Bạn nhận được email này vì đã để lại địa chỉ email cho {sender}.",
        unsubscribe="Hủy đăng ký",
        buttons_in_text="Mở trong Messenger:",
        confirm_subject="Xác nhận đăng ký nhận email từ {sender}",
        confirm_heading="Xác nhận địa chỉ email của bạn",
        confirm_body="Bấm nút bên dưới để xác nhận bạn muốn nhận email từ {sender}.",
        confirm_button="Xác nhận đăng ký",
        confirm_ignore="Nếu bạn không đăng ký, hãy bỏ qua email này: bạn sẽ không nhận thêm email nào.",
        link_fallback="Nếu nút không hoạt động, hãy mở liên kết này:",
    ),
    "en": Phrases(
        support_button="Get support",
        subscribe_button="Subscribe to notifications",
        footer_reason="You are receiving this email because you gave your address to {sender}.",
        unsubscribe="Unsubscribe",
        buttons_in_text="Open in Messenger:",
        confirm_subject="Please confirm your subscription to {sender}",
        confirm_heading="Confirm your email address",
        confirm_body="Press the button below to confirm that you want emails from {sender}.",
        confirm_button="Confirm subscription",
        confirm_ignore="If you did not sign up, ignore this email: you will not hear from us again.",
        link_fallback="If the button does not work, open this link:",
    ),
}


def language_for(locale: str | None) -> Language:
    """`en`, `en_US`, `en-GB` read English; anything else (or nothing) reads Vietnamese."""
    return "en" if locale and locale.strip().lower().startswith("en") else "vi"
