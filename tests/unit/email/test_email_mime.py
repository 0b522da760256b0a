"""MIME building: both builders, parsed back with the stdlib parser."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest

from channels.email.errors import MessageInvalid
from channels.email.fastmime import build_message_fast
from channels.email.mime import (
    OutboundEmail,
    boundary_for,
    build_email_message,
    build_message,
    message_id_for,
)

BUILDERS = [pytest.param(build_message, id="stdlib"), pytest.param(build_message_fast, id="fast")]
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=7)))
UNSUBSCRIBE = "https://mail.example.vn/u/eyJrIjoiazEiLCJjIjoiY29udGFjdC0xIn0.c2lnbmF0dXJl"

HTML = (
    "<html><body><p>Chào {name}, ưu đãi tháng 12 dành riêng cho bạn!</p>"
    '<p><a href="https://mail.example.vn/r/tok?a=1&amp;b=2">Nhận hỗ trợ</a> · '
    '<a href="https://mail.example.vn/r/tok2">Đăng ký nhận thông báo</a></p></body></html>'
)
TEXT = (
    "Chào Nguyễn Thị Hồng Nhung,\n\nƯu đãi tháng 12 dành riêng cho bạn & gia đình.\n"
    "Nhận hỗ trợ: https://mail.example.vn/r/tok?a=1&b=2\n"
)


def sample(**changes: Any) -> OutboundEmail:
    base = OutboundEmail(
        from_address="hello@shop.example.vn",
        from_name="Cửa hàng Hoa Sen",
        to_address="nhung.nguyen@example.org",
        to_name="Nguyễn Thị Hồng Nhung",
        reply_to="support@shop.example.vn",
        subject="Ưu đãi cho bạn: giảm 30% tháng 12",
        text=TEXT,
        html=HTML.format(name="Nhung"),
        delivery_id="dlv_01JF8Z6Q2M4X",
        message_id_domain="mail.example.vn",
        list_unsubscribe_url=UNSUBSCRIBE,
    )
    return dataclasses.replace(base, **changes)


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


@pytest.mark.parametrize("build", BUILDERS)
def test_headers_parts_and_vietnamese_round_trip(build: Any) -> None:
    raw = build(sample(), now=NOW)
    message = parse(raw)

    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert message["Subject"] == "Ưu đãi cho bạn: giảm 30% tháng 12"
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Cửa hàng Hoa Sen", "hello@shop.example.vn")
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Nguyễn Thị Hồng Nhung", "nhung.nguyen@example.org")
    assert message["Reply-To"] == "support@shop.example.vn"
    assert message["Date"] == "Tue, 01 Dec 2026 09:30:00 +0700"
    assert message["Message-ID"] == "<dlv_01JF8Z6Q2M4X@mail.example.vn>"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert message.defects == []

    plain, html = message.iter_parts()
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.defects == []
        assert "MIME-Version" not in part
    assert body(plain) == TEXT
    assert body(html) == HTML.format(name="Nhung") + "\n"
    # The text part is the caller's text, not HTML-escaped.
    assert "&amp;" not in body(plain) and "a=1&b=2" in body(plain)


@pytest.mark.parametrize("build", BUILDERS)
def test_encoded_headers_are_rfc2047_and_lines_stay_short(build: Any) -> None:
    long_subject = "Khuyến mãi lớn nhất năm dành cho khách hàng thân thiết " * 3
    raw = build(sample(subject=long_subject, from_name="Công ty TNHH Thương mại Hoa Sen"), now=NOW)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "=?utf-8?" in head.lower()
    for line in raw.split(b"\r\n"):
        # RFC 2047 §2 and RFC 2045 §6.7: 76; only the verbatim URL header may be longer.
        assert len(line) <= 76 or line.startswith(b"List-Unsubscribe: <https://")
    assert parse(raw)["Subject"] == long_subject.strip()


@pytest.mark.parametrize("build", BUILDERS)
def test_message_id_and_bytes_are_stable_across_builds(build: Any) -> None:
    first = build(sample(), now=NOW)
    again = build(sample(), now=NOW)
    assert first == again
    assert parse(first)["Message-ID"] == parse(again)["Message-ID"]
    later = build(sample(), now=NOW + timedelta(hours=3))
    assert parse(later)["Message-ID"] == "<dlv_01JF8Z6Q2M4X@mail.example.vn>"
    other = build(sample(delivery_id="dlv_other"), now=NOW)
    assert parse(other)["Message-ID"] == "<dlv_other@mail.example.vn>"


def test_message_id_and_boundary_helpers() -> None:
    assert message_id_for("a.b-c_1", "mail.example.com") == "<a.b-c_1@mail.example.com>"
    assert boundary_for("x") == boundary_for("x") != boundary_for("y")
    assert boundary_for("x").startswith("=_")
    with pytest.raises(MessageInvalid):
        message_id_for("has space", "mail.example.com")
    with pytest.raises(MessageInvalid):
        message_id_for("ok", "not a domain")


@pytest.mark.parametrize("build", BUILDERS)
def test_list_unsubscribe_one_click(build: Any) -> None:
    message = parse(build(sample(), now=NOW))
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    long_url = UNSUBSCRIBE + "x" * 150
    raw = build(
        sample(
            list_unsubscribe_url=long_url,
            list_unsubscribe_mailto="mailto:unsubscribe@shop.example.vn?subject=unsubscribe",
        ),
        now=NOW,
    )
    # Never encoded, never folded inside a URL (RFC 2369 §2).
    assert f"<{long_url}>".encode() in raw and b"=?utf-8?q?=3Chttps" not in raw
    header = parse(raw)["List-Unsubscribe"]
    assert header == (f"<{long_url}>, <mailto:unsubscribe@shop.example.vn?subject=unsubscribe>")


@pytest.mark.parametrize("build", BUILDERS)
def test_optional_fields_and_extra_headers(build: Any) -> None:
    raw = build(
        sample(
            from_name=None,
            to_name="   ",
            reply_to=None,
            extra_headers={"Feedback-ID": "c42:ws7:outreach", "X-Outreach-Delivery": "dlv_1"},
        ),
        now=NOW,
    )
    message = parse(raw)
    assert message["From"] == "hello@shop.example.vn"
    assert message["To"] == "nhung.nguyen@example.org"
    assert "Reply-To" not in message
    assert message["Feedback-ID"] == "c42:ws7:outreach"
    assert message["X-Outreach-Delivery"] == "dlv_1"


@pytest.mark.parametrize("build", BUILDERS)
def test_ascii_names_are_quoted_when_they_need_it(build: Any) -> None:
    raw = build(sample(from_name='Hoa Sen, "Shop"', to_name="Nhung"), now=NOW)
    message = parse(raw)
    assert message["From"].addresses[0].display_name == 'Hoa Sen, "Shop"'
    assert message["To"].addresses[0].display_name == "Nhung"
    assert b"To: Nhung <nhung.nguyen@example.org>" in raw


@pytest.mark.parametrize("build", BUILDERS)
def test_text_is_normalised(build: Any) -> None:
    decomposed = "Chào ban\r\nđi\rvề"  # "Chào" in NFD, mixed line endings
    decomposed = decomposed.replace("à", "a\u0300")
    message = parse(build(sample(text=decomposed, subject="  Xin \n chào\tbạn  "), now=NOW))
    plain, _ = message.iter_parts()
    assert isinstance(plain, EmailMessage)
    assert body(plain) == "Chào ban\nđi\nvề\n"
    assert message["Subject"] == "Xin chào bạn"


def test_stdlib_message_object_is_available() -> None:
    message = build_email_message(sample(), now=NOW)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_boundary() == boundary_for("dlv_01JF8Z6Q2M4X")


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("from_address", {"from_address": "no-at-sign"}),
    ("from_address", {"from_address": "a b@example.com"}),
    ("to_address", {"to_address": "người@example.com"}),
    ("to_address", {"to_address": "x@bücher.example"}),
    ("to_address", {"to_address": ("a" * 65) + "@example.com"}),
    ("reply_to", {"reply_to": "<support@example.com>"}),
    ("subject", {"subject": "   "}),
    ("subject", {"subject": "bell\x07"}),
    ("to_name", {"to_name": "nul\x00"}),
    ("text", {"text": ""}),
    ("html", {"html": "\n \n"}),
    ("html", {"html": "bad \ud800 surrogate"}),
    ("delivery_id", {"delivery_id": "has space"}),
    ("delivery_id", {"delivery_id": "x" * 129}),
    ("delivery_id", {"delivery_id": "dot..dot"}),
    ("message_id_domain", {"message_id_domain": "-bad-.example"}),
    ("list_unsubscribe_url", {"list_unsubscribe_url": "http://mail.example.vn/u/t"}),
    ("list_unsubscribe_url", {"list_unsubscribe_url": "https:///no-host"}),
    ("list_unsubscribe_url", {"list_unsubscribe_url": "https://x.example/u/a b"}),
    ("list_unsubscribe_url", {"list_unsubscribe_url": "https://x.example/u/<a>"}),
    ("list_unsubscribe_url", {"list_unsubscribe_url": "https://x.example/u/đ"}),
    ("list_unsubscribe_mailto", {"list_unsubscribe_mailto": "https://x.example/u"}),
    ("extra_headers['Subject']", {"extra_headers": {"Subject": "x"}}),
    ("extra_headers['Bad Name']", {"extra_headers": {"Bad Name": "x"}}),
    ("extra_headers['X-A']", {"extra_headers": {"X-A": "tiếng Việt"}}),
    ("extra_headers['X-A']", {"extra_headers": {"X-A": ""}}),
    ("extra_headers['x-a']", {"extra_headers": {"X-A": "1", "x-a": "2"}}),
]


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize(("field", "changes"), INVALID)
def test_invalid_input_names_the_field(build: Any, field: str, changes: dict[str, Any]) -> None:
    with pytest.raises(MessageInvalid) as caught:
        build(sample(**changes), now=NOW)
    assert caught.value.field == field
    assert not caught.value.retryable


@pytest.mark.parametrize("build", BUILDERS)
def test_now_must_be_aware(build: Any) -> None:
    with pytest.raises(MessageInvalid) as caught:
        build(sample(), now=datetime(2026, 12, 1, 9, 30))  # noqa: DTZ001
    assert caught.value.field == "now"
    utc = parse(build(sample(), now=datetime(2026, 12, 1, 2, 30, tzinfo=UTC)))
    assert utc["Date"] == "Tue, 01 Dec 2026 02:30:00 +0000"


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize(
    "name",
    [
        "Hoa Sen Trading and Import Export Joint Stock Company Ltd",  # fits, address on line 2
        "Hoa Sen Trading and Import Export Joint Stock Company Limited of Ho Chi Minh City",
        'Nguyen "Nhung" V. A.',
        '"Hoa Sen" Trading, Import & Export Joint Stock Company (Ho Chi Minh City)',
        "Company" + "X" * 80,
    ],
)
def test_long_and_special_ascii_names(build: Any, name: str) -> None:
    raw = build(sample(from_name=name), now=NOW)
    message = parse(raw)
    (sender,) = message["From"].addresses
    if "=?" in raw.split(b"\r\nTo:")[0].decode():
        # An unbreakable name is encoded-words; read them as RFC 2047 §6.2 says (CPython's
        # address parser keeps a space between adjacent encoded-words).
        decoded = str(make_header(decode_header(raw.split(b"\r\nTo:")[0][6:].decode())))
        assert decoded == f"{name} <hello@shop.example.vn>"
    else:
        assert sender.display_name == name
    assert sender.addr_spec == "hello@shop.example.vn"


@pytest.mark.parametrize("build", BUILDERS)
def test_a_subject_word_longer_than_a_line_is_encoded(build: Any) -> None:
    subject = "Code: " + "X" * 100
    raw = build(sample(subject=subject), now=NOW)
    assert parse(raw)["Subject"] == subject
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in head if not line.startswith(b"List-Unsubscribe:"))
