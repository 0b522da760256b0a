"""Pure MIME building: an `OutboundEmail` in, the bytes of an RFC 5322 message out.

`build_message` (and `build_email_message`, its `EmailMessage` before serialisation) is the
reference built with the stdlib `email` package. `channels.email.fastmime.build_message_fast` writes
the same message directly, about fifty times faster for a 20 KB body, and is checked against this
one by property-based tests. Both share `prepare`, which validates and normalises the input, so
there is one set of rules.

Choices, each for deliverability through any relay:

- 7-bit clean output: header text that is not plain ASCII becomes RFC 2047 encoded-words and both
  bodies are UTF-8 in quoted-printable. The alternative, `email.policy.SMTPUTF8` (RFC 6531/6532
  raw UTF-8 headers), only works when every hop advertises SMTPUTF8; a hop that does not must
  bounce the message (RFC 6531 §3.2), while encoded-words pass everywhere and every client shows
  them. The same reasoning rules out 8-bit bodies, which need 8BITMIME at each hop (RFC 6152).
  Addresses must therefore be ASCII: pass the IDNA form of the domain (email-validator's
  `ascii_email`); internationalised local parts need SMTPUTF8 and are refused.
- Quoted-printable rather than base64: markup-heavy HTML stays close to its size, the raw source
  stays readable, and the boundary `=_...` can never occur in a quoted-printable body (RFC 2045
  §6.7, "=_" is not a valid encoded sequence), so it needs no scan of the content.
- Everything derived from the delivery is deterministic: the Message-ID `<{delivery_id}@{domain}>`
  and the boundary, so a retry sends identical bytes and a duplicate is recognisable (DESIGN
  section 8). The Date comes from `now`, passed by the caller.
- Lines are at most 76 characters (RFC 2045 §6.7 for quoted-printable, RFC 2047 §2 for header
  lines with encoded-words); the stdlib default of 78 breaks both, hence the policy below.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from urllib.parse import urlsplit

from channels.email.errors import MessageInvalid

MAX_LINE = 76
LINESEP = "\r\n"
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1, the only value allowed

# RFC 5322 §3.2.3 atext, the characters of a dot-atom.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# RFC 5322 §3.6.8: a field name is printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")
# Unicode category Cc less the white space that `_header_text` folds into single spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3 path of 256 octets, less the angle brackets
MAX_DELIVERY_ID = 128
MAX_URL = 900  # one header line must stay under 998 octets (RFC 5322 §2.1.1)
MAX_EXTRA_VALUE = 900

# Headers the builder owns; extra headers may not set them.
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "reply-to", "sender", "subject", "date", "message-id",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
        "content-id", "list-unsubscribe", "list-unsubscribe-post", "return-path", "received",
    }
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OutboundEmail:
    """One personalised email, ready to serialise.

    `list_unsubscribe_url` is the RFC 8058 one-click endpoint (https, required); the mailto
    alternative is optional. `extra_headers` are printable ASCII (e.g. `Feedback-ID`) and may not
    set any header the builder owns. Subject and display names are NFC-normalised with runs of
    whitespace collapsed (they are single header lines); bodies are NFC-normalised with their line
    endings made CRLF.
    """

    from_address: str
    to_address: str
    subject: str
    text: str
    html: str
    delivery_id: str
    message_id_domain: str
    list_unsubscribe_url: str
    from_name: str | None = None
    to_name: str | None = None
    reply_to: str | None = None
    list_unsubscribe_mailto: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedEmail:
    """An `OutboundEmail` validated and normalised: what both builders serialise."""

    from_name: str | None
    from_address: str
    to_name: str | None
    to_address: str
    reply_to: str | None
    subject: str
    date: str
    message_id: str
    list_unsubscribe: tuple[str, ...]
    extra_headers: tuple[tuple[str, str], ...]
    text: str
    html: str
    boundary: str


def message_id_for(delivery_id: str, domain: str) -> str:
    """`<{delivery_id}@{domain}>`: the same delivery always carries the same Message-ID."""
    _check_delivery_id(delivery_id)
    _check_domain("message_id_domain", domain)
    return f"<{delivery_id}@{domain}>"


def prepare(email: OutboundEmail, *, now: datetime) -> PreparedEmail:
    """Validate and normalise; raises `MessageInvalid` naming the field and the rule."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise MessageInvalid("now", "must be timezone-aware (RFC 5322 §3.3 needs an offset)")
    check_address("from_address", email.from_address)
    check_address("to_address", email.to_address)
    if email.reply_to is not None:
        check_address("reply_to", email.reply_to)
    subject = _header_text("subject", email.subject)
    if not subject:
        raise MessageInvalid("subject", "must not be empty")
    unsubscribe = [_unsubscribe_url(email.list_unsubscribe_url)]
    if email.list_unsubscribe_mailto is not None:
        unsubscribe.append(_unsubscribe_mailto(email.list_unsubscribe_mailto))
    return PreparedEmail(
        from_name=_header_text("from_name", email.from_name) or None,
        from_address=email.from_address,
        to_name=_header_text("to_name", email.to_name) or None,
        to_address=email.to_address,
        reply_to=email.reply_to,
        subject=subject,
        date=format_datetime(now),
        message_id=message_id_for(email.delivery_id, email.message_id_domain),
        # RFC 2369 §2: clients use the first URL they support; the HTTPS one is the one-click one.
        list_unsubscribe=tuple(f"<{url}>" for url in unsubscribe),
        extra_headers=_extra_headers(email.extra_headers),
        text=_body("text", email.text),
        html=_body("html", email.html),
        boundary=boundary_for(email.delivery_id),
    )


def boundary_for(delivery_id: str) -> str:
    """A multipart boundary derived from the delivery: deterministic, and starting with `=_`,
    which quoted-printable can never produce (RFC 2045 §6.7), so no body can contain it."""
    digest = hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()
    return f"=_{digest[:32]}"


def fold_list(name: str, items: tuple[str, ...]) -> str:
    """`Name: a, b` on one line, or one item per line when that is too long. Never folds inside
    an item: URLs and message ids must arrive intact (RFC 2369 §2 brackets each URL)."""
    line = f"{name}: {', '.join(items)}"
    if len(line) <= MAX_LINE:
        return line + LINESEP
    return f"{name}: " + f",{LINESEP} ".join(items) + LINESEP


# --- the stdlib builder -------------------------------------------------------------------------

_ADDRESS_HEADERS = frozenset({"from", "to", "reply-to"})
# Structured headers the stdlib folds well; every other header we set is ASCII and written as is.
_STDLIB_FOLDED = frozenset(
    {"from", "to", "reply-to", "subject", "date", "mime-version", "content-type",
     "content-transfer-encoding"}
)  # fmt: skip


class _SmtpPolicy(EmailPolicy):
    """`email.policy.SMTP` with 76-character lines and some headers written verbatim.

    The stdlib folds an unstructured header whose single token is longer than a line into
    RFC 2047 encoded-words (CPython's `_refold_parse_tree`); a long List-Unsubscribe URL would
    arrive as `=?utf-8?q?=3Chttps=3A//...?=`, which no client decodes there (RFC 2369 §2 wants
    bracketed URLs). So List-Unsubscribe, List-Unsubscribe-Post, Message-ID and the extra headers
    (all ASCII by construction) are folded only between list items.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        key = name.lower()
        if key == "subject" and not str(value).isascii():
            # CPython 3.11's refolding of mixed encoded and plain words can drop the space
            # between them ("thân thiết" arrives as "thânthiết"); the legacy `Header` encoder
            # turns the whole text into encoded-words, each line within 76 (RFC 2047 §2).
            encoded = Header(str(value), "utf-8", MAX_LINE, name).encode(linesep=LINESEP)
            return f"{name}: {encoded}{LINESEP}".encode("ascii")
        if key in _ADDRESS_HEADERS and str(value).isascii():
            # CPython 3.11 refolds a long quoted display name without its quotes
            # (`"\"Hoa Sen\" Trading, ..." <a@b>` becomes `"Hoa Sen" Trading, ... <a@b>`,
            # which reads as two addresses). Its unfolded form is right: one line, within the
            # 998 of RFC 5322 §2.1.1. Non-ASCII names are encoded-words and fold correctly.
            return f"{name}: {value}{LINESEP}".encode("ascii")
        if key in _STDLIB_FOLDED:
            return super().fold_binary(name, value)
        text = str(value)
        items = tuple(text.split(", ")) if key == "list-unsubscribe" else (text,)
        return fold_list(name, items).encode("ascii")


POLICY = _SmtpPolicy(linesep=LINESEP, cte_type="7bit", max_line_length=MAX_LINE, utf8=False)


def build_email_message(email: OutboundEmail, *, now: datetime) -> EmailMessage:
    """The message as a stdlib `EmailMessage` (multipart/alternative: text/plain, text/html)."""
    ready = prepare(email, now=now)
    message = EmailMessage(policy=POLICY)
    message["From"] = _address(ready.from_name, ready.from_address)
    message["To"] = _address(ready.to_name, ready.to_address)
    if ready.reply_to is not None:
        message["Reply-To"] = _address(None, ready.reply_to)
    message["Subject"] = ready.subject
    message["Date"] = ready.date
    message["Message-ID"] = ready.message_id
    message["List-Unsubscribe"] = ", ".join(ready.list_unsubscribe)
    # RFC 8058 §3.1: both headers, and the POST body the receiver sends is exactly this value.
    message["List-Unsubscribe-Post"] = ONE_CLICK
    for name, value in ready.extra_headers:
        message[name] = value
    message.set_content(ready.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(ready.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.set_boundary(ready.boundary)
    for part in message.iter_parts():
        # `add_alternative` copies MIME-Version into the part; RFC 2045 §4 wants it at the top only.
        del part["MIME-Version"]
    return message


def build_message(email: OutboundEmail, *, now: datetime) -> bytes:
    """The message's bytes, CRLF line endings, 7-bit clean, ready for SMTP DATA."""
    return build_email_message(email, now=now).as_bytes(policy=POLICY)


# --- checks -------------------------------------------------------------------------------------


def _address(name: str | None, addr_spec: str) -> Address:
    return Address(display_name=name or "", addr_spec=addr_spec)


def check_address(field_name: str, value: str) -> None:
    """An ASCII `dot-atom@domain` within SMTP's lengths, else `MessageInvalid` for `field_name`."""
    if not value.isascii():
        raise MessageInvalid(
            field_name,
            "must be ASCII: give the IDNA form of the domain; SMTPUTF8 local parts are refused",
        )
    local, at, domain = value.rpartition("@")
    if not at or not _DOT_ATOM.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise MessageInvalid(field_name, "must be a plain address: dot-atom@domain")
    if len(local) > MAX_LOCAL_PART or len(value) > MAX_ADDRESS:
        raise MessageInvalid(field_name, "is longer than SMTP allows (RFC 5321 §4.5.3.1)")


def _check_delivery_id(value: str) -> None:
    # RFC 5322 §3.6.4: the left part of a msg-id is a dot-atom-text.
    if not _DOT_ATOM.fullmatch(value) or len(value) > MAX_DELIVERY_ID:
        raise MessageInvalid(
            "delivery_id", f"must be a dot-atom of at most {MAX_DELIVERY_ID} characters"
        )


def _check_domain(field_name: str, value: str) -> None:
    if not _DOMAIN.fullmatch(value) or len(value) > 253:
        raise MessageInvalid(field_name, "must be an ASCII domain name")


def _header_text(field_name: str, value: str | None) -> str:
    if value is None:
        return ""
    if _CONTROL.search(value):
        raise MessageInvalid(field_name, "must not contain control characters")
    _check_encodable(field_name, value)
    return " ".join(unicodedata.normalize("NFC", value).split())


def _body(field_name: str, value: str) -> str:
    _check_encodable(field_name, value)
    if not value.strip():
        raise MessageInvalid(field_name, "must not be empty")
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _check_encodable(field_name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageInvalid(field_name, "is not valid Unicode (lone surrogate)") from None


def _unsubscribe_url(url: str) -> str:
    name = "list_unsubscribe_url"
    _check_bracketable(name, url)
    parts = urlsplit(url)
    # RFC 8058 §3.1: the List-Unsubscribe header MUST contain one HTTPS URI.
    if parts.scheme != "https" or not parts.hostname:
        raise MessageInvalid(name, "must be an https:// URL (RFC 8058 §3.1)")
    return url


def _unsubscribe_mailto(url: str) -> str:
    name = "list_unsubscribe_mailto"
    _check_bracketable(name, url)
    if not url.startswith("mailto:") or "@" not in url:
        raise MessageInvalid(name, "must be a mailto: URL (RFC 6068)")
    return url


def _check_bracketable(field_name: str, url: str) -> None:
    # RFC 2369 §2: each URL is enclosed in angle brackets, so it may hold neither bracket nor
    # whitespace; it is written verbatim, so it must be printable ASCII (RFC 3986 percent-encodes).
    if (
        not url
        or len(url) > MAX_URL
        or not _PRINTABLE_ASCII.fullmatch(url)
        or any(char in url for char in " <>")
    ):
        raise MessageInvalid(field_name, "must be a printable ASCII URL without spaces or <>")


def _extra_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        key = name.lower()
        if not _FIELD_NAME.fullmatch(name) or key in RESERVED_HEADERS or key in seen:
            raise MessageInvalid(
                f"extra_headers[{name!r}]",
                "must be a field name the builder does not set, given once",
            )
        seen.add(key)
        flat = " ".join(value.split())
        if not flat or len(flat) > MAX_EXTRA_VALUE or not _PRINTABLE_ASCII.fullmatch(flat):
            raise MessageInvalid(
                f"extra_headers[{name!r}]", "value must be non-empty printable ASCII"
            )
        checked.append((name, flat))
    return tuple(checked)
