"""Pure reading of SMTP replies: the enhanced status code and the relay's queue id.

Nothing here does I/O. `aiosmtplib` hands us a reply as (code, text), the text being the lines of a
multi-line reply joined by newlines with the code stripped from each line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3463 §2: class "." subject "." detail, class 2/4/5, subject and detail 1 to 3 digits. RFC 2034
# §4 puts it first in the text of each reply line, followed by a space.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

# Relays word their DATA acceptance differently; each pattern names where it comes from. A miss is
# fine: the queue id is a convenience for operators, the whole answer is kept beside it.
_QUEUE_ID_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bqueued as ([A-Za-z0-9]+)"),  # Postfix, smtp-sink: "2.0.0 Ok: queued as 4Zx..."
    re.compile(r"\bInternalId=(\d+)"),  # Microsoft 365: "2.6.0 <...> [InternalId=123, ...]"
    re.compile(r"\bid=([A-Za-z0-9._-]+)"),  # Exim: "OK id=1tXyZa-000AbC-7q"
    re.compile(r"^(?:[245]\.\d{1,3}\.\d{1,3} )?([A-Za-z0-9]+) Message accepted"),  # Sendmail
    re.compile(r"^(?:[245]\.\d{1,3}\.\d{1,3} )?Ok ([A-Za-z0-9-]{16,})$"),  # Amazon SES
    re.compile(r"\b([A-Za-z0-9]+\.\d+) - gsmtp$"),  # Gmail: "2.0.0 OK  1700000000 abc.123 - gsmtp"
)

_MAX_TEXT = 512


@dataclass(frozen=True)
class SmtpReply:
    """One server answer: the basic code (RFC 5321 §4.2), its enhanced status if any, the text."""

    code: int
    text: str
    enhanced_status: str | None = None

    @classmethod
    def parse(cls, code: int, text: str) -> SmtpReply:
        return cls(code=code, text=short_text(text), enhanced_status=enhanced_status_of(code, text))

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def enhanced_status_of(code: int | None, text: str) -> str | None:
    """The enhanced status code at the start of the reply text, e.g. `5.1.1`, or None.

    The class digit must agree with the reply code's (RFC 3463 §2: 4 is transient, 5 permanent);
    when a server disagrees we drop the enhanced code and trust the reply code, the digit RFC 5321
    §4.2.1 tells a client to act on.
    """
    first_line = text.lstrip().split("\n", 1)[0]
    found = _ENHANCED.match(first_line)
    if found is None:
        return None
    status = ".".join(str(int(part)) for part in found.groups())
    if code is not None and str(code)[:1] != status[:1]:
        return None
    return status


def queue_id_of(text: str) -> str | None:
    """The relay's id for an accepted message, read from the DATA reply, or None."""
    line = text.strip().split("\n", 1)[0].strip()
    for pattern in _QUEUE_ID_PATTERNS:
        found = pattern.search(line)
        if found is not None:
            return found.group(1)
    return None


def short_text(text: str) -> str:
    """The reply text on one line, bounded: it goes into logs and onto delivery rows."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= _MAX_TEXT else flat[: _MAX_TEXT - 1] + "…"
