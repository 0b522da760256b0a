"""The direct writer (`fastmime`) against the stdlib-built reference, for many random emails.

Both outputs are parsed with the stdlib parser. Every header must decode to the normalised input
(the truth), and the two messages must agree header by header and part by part.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.email.fastmime import build_message_fast, unstructured_header
from channels.email.mime import OutboundEmail, build_message

VIETNAMESE = "ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĂÂĐÊÔƠƯẮỆ"
SPECIALS = " \"\\,;:<>()@.[]=?_-'!#"
HEADER_ALPHABET = st.sampled_from(
    list("abcxyzABCXYZ0189") + list(VIETNAMESE) + list(SPECIALS) + ["😀", "中", "€", "\t", "\n"]
)
BODY_ALPHABET = st.characters(codec="utf-8")  # everything but lone surrogates

header_text = st.text(HEADER_ALPHABET, max_size=120)
ascii_text = st.text(st.sampled_from(list("abcXYZ019") + list(SPECIALS)), max_size=120)
names = st.none() | header_text | ascii_text
subjects = (st.text(HEADER_ALPHABET, min_size=1, max_size=200) | ascii_text).filter(
    lambda s: s.split() != []
)
bodies = st.text(BODY_ALPHABET, min_size=1, max_size=400).filter(lambda s: s.strip() != "")
ATEXT = "a-zA-Z0-9!#$%&'*+/=?^_`{|}~-"
delivery_ids = st.from_regex(rf"\A[{ATEXT}]{{1,20}}(\.[{ATEXT}]{{1,20}}){{0,3}}\Z")
addresses = st.sampled_from(
    ["a@example.org", "nhung.nguyen+vip@mail.example.vn", "x_y-z@sub.domain.example", "b@localhost"]
)
urls = st.from_regex(r"\Ahttps://mail\.example\.vn/u/[A-Za-z0-9_.~%=-]{1,300}\Z")
mailtos = st.none() | st.just("mailto:unsubscribe@example.vn?subject=unsubscribe")
extra = st.dictionaries(
    st.sampled_from(["Feedback-ID", "X-Campaign", "X-Entity-Ref-ID"]),
    st.from_regex(r"\A[!-~]{1,40}( [!-~]{1,40}){0,3}\Z"),
    max_size=3,
)
moments = st.builds(
    lambda minutes, offset: (
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=offset)))
        + timedelta(minutes=minutes)
    ),
    st.integers(0, 60 * 24 * 365),
    st.sampled_from([0, 420, -300, 330, 345]),
)

emails = st.builds(
    OutboundEmail,
    from_address=addresses,
    from_name=names,
    to_address=addresses,
    to_name=names,
    reply_to=st.none() | addresses,
    subject=subjects,
    text=bodies,
    html=bodies,
    delivery_id=delivery_ids,
    message_id_domain=st.sampled_from(["mail.example.vn", "m.example.com"]),
    list_unsubscribe_url=urls,
    list_unsubscribe_mailto=mailtos,
    extra_headers=extra,
)

ENCODED_WORD = re.compile(r"=\?utf-8\?[bq]\?", re.IGNORECASE)
VERBATIM = (b"List-Unsubscribe: ", b" <mailto:", b"Message-ID: ", b"Feedback-ID: ", b"X-")


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def flat(value: str | None) -> str | None:
    if value is None:
        return None
    return " ".join(unicodedata.normalize("NFC", value).split()) or None


def lines_of(value: str) -> str:
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def mailbox(message: EmailMessage, header: str) -> tuple[str | None, str]:
    """(display name, address). An encoded name is decoded as RFC 2047 §6.2 says, dropping the
    white space between adjacent encoded-words: CPython's address parser keeps a space there."""
    (address,) = message[header].addresses
    name = address.display_name or None
    raw = _raw_value(message, header)
    if ENCODED_WORD.search(raw):
        decoded = str(make_header(decode_header(raw)))
        name = decoded.rsplit(" <", 1)[0] if decoded.endswith(">") else None
    return (name, address.addr_spec)


def _raw_value(message: EmailMessage, header: str) -> str:
    for name, value in message.raw_items():
        if name.lower() == header.lower():
            return "".join(str(value).splitlines())
    raise KeyError(header)


def parts(message: EmailMessage) -> list[tuple[str, str | None, str, str]]:
    found = []
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        assert part.defects == []
        content = part.get_content()
        assert isinstance(content, str)
        found.append(
            (
                part.get_content_type(),
                part.get_content_charset(),
                str(part["Content-Transfer-Encoding"]),
                content.replace("\r\n", "\n"),
            )
        )
    return found


@settings(max_examples=300, deadline=None)
@given(email=emails, now=moments)
def test_fast_writer_matches_the_stdlib_and_the_input(email: OutboundEmail, now: datetime) -> None:
    fast_raw = build_message_fast(email, now=now)
    reference_raw = build_message(email, now=now)
    fast, reference = parse(fast_raw), parse(reference_raw)

    # The stdlib's address folding sometimes leaves a line of 77 or 78 characters, within RFC 5322
    # §2.1.1 (78) but over RFC 2047 §2 (76 for lines with encoded-words); the fast writer keeps 76.
    for raw, limit in ((fast_raw, 76), (reference_raw, 78)):
        assert raw.isascii()
        for line in raw.split(b"\r\n"):
            assert b"\r" not in line and b"\n" not in line
            verbatim = line.startswith(VERBATIM) or (
                # The stdlib writer keeps a plain-ASCII address header on one line (see mime).
                limit == 78 and line.startswith((b"From: ", b"To: ")) and b"=?" not in line
            )
            assert len(line) <= limit or (verbatim and len(line) <= 998)

    for message in (fast, reference):
        assert message.defects == []
        assert mailbox(message, "From") == (flat(email.from_name), email.from_address)
        assert mailbox(message, "To") == (flat(email.to_name), email.to_address)
        assert message.get("Reply-To") == email.reply_to
        assert message["Subject"] == flat(email.subject)
        assert message["Message-ID"] == f"<{email.delivery_id}@{email.message_id_domain}>"
        assert message["Date"].datetime == now.replace(microsecond=0)
        expected_unsubscribe = f"<{email.list_unsubscribe_url}>"
        if email.list_unsubscribe_mailto is not None:
            expected_unsubscribe += f", <{email.list_unsubscribe_mailto}>"
        assert message["List-Unsubscribe"] == expected_unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for name, value in email.extra_headers.items():
            assert message[name] == " ".join(value.split())
        assert message.get_content_type() == "multipart/alternative"
        assert message.get_boundary() == reference.get_boundary()
        assert parts(message) == [
            ("text/plain", "utf-8", "quoted-printable", lines_of(email.text)),
            ("text/html", "utf-8", "quoted-printable", lines_of(email.html)),
        ]

    assert sorted(fast.keys()) == sorted(reference.keys())
    for name in fast:
        if name in {"From", "To"}:
            # Both already equal the input, read as RFC 2047 says (see `mailbox`); the two
            # writers may split a long name at different places.
            assert mailbox(fast, name) == mailbox(reference, name)
        else:
            assert str(fast[name]) == str(reference[name]), name


@settings(max_examples=200, deadline=None)
@given(value=subjects)
def test_unstructured_header_round_trips(value: str) -> None:
    text = flat(value)
    assert text is not None
    folded = unstructured_header("Subject", text)
    assert folded.endswith("\r\n") and all(len(line) <= 76 for line in folded.split("\r\n"))
    parsed = parse(folded.encode("ascii") + b"\r\nbody\r\n")
    assert parsed["Subject"] == text


def test_plain_ascii_subject_is_not_encoded() -> None:
    folded = unstructured_header("Subject", "Spring sale " * 10)
    assert "=?" not in folded
    assert folded.count("\r\n") == 2
    assert unstructured_header("Subject", "looks =?like?= a word").startswith("Subject: =?utf-8?b?")
