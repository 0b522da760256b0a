"""The demo's local SMTP server: every message it accepts is kept as `<n>.eml` in a folder.

It is aiosmtpd's protocol served on the demo's own event loop (no thread): the dispatcher's
SMTP client and this server then share one loop, and the emulated people read the files as soon
as they land. The stdlib parses the files back for the people and for the HTML copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any


@dataclass
class MailDrop:
    """aiosmtpd handler: writes each message to `folder/<n>.eml` and remembers, per recipient,
    the files addressed to them."""

    folder: Path
    by_recipient: dict[str, list[Path]] = field(default_factory=dict)
    received: int = 0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def saved(self) -> list[Path]:
        """The .eml files in the folder, in the order they arrived."""
        return sorted(self.folder.glob("*.eml"), key=lambda path: int(path.stem))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        path = self.folder / f"{next(self._numbers)}.eml"
        await asyncio.to_thread(path.write_bytes, bytes(raw))
        for recipient in envelope.rcpt_tos:
            self.by_recipient.setdefault(str(recipient).lower(), []).append(path)
        self.received += 1
        return "250 2.0.0 Ok: queued"


@contextlib.asynccontextmanager
async def smtp_server(drop: MailDrop, *, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Serve SMTP on a free loopback port of the running loop; yields the port. Raises
    ImportError where aiosmtpd is not installed."""
    # Imported here: an installation without aiosmtpd still runs everything but the demo.
    from aiosmtpd.smtp import SMTP  # noqa: PLC0415

    drop.folder.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    # `hostname` given: aiosmtpd would otherwise resolve this machine's FQDN, which can stall.
    server = await loop.create_server(lambda: SMTP(drop, hostname="localhost"), host=host, port=0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def read(path: Path) -> EmailMessage:
    return parse(path.read_bytes())


def button_links(message: EmailMessage, *, public_url: str) -> dict[str, str]:
    """The plain-text part lists each m.me button as `label: <public url>/r/<token>`."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return {}
    pattern = rf"^(.+): ({re.escape(public_url.rstrip('/'))}/r/\S+)\s*$"
    return {label.strip(): url for label, url in re.findall(pattern, part.get_content(), re.M)}


def unsubscribe_url(message: EmailMessage) -> str | None:
    """The RFC 8058 one-click URL: the https entry of List-Unsubscribe."""
    header = message.get("List-Unsubscribe")
    if header is None:
        return None
    for entry in str(header).split(","):
        url = entry.strip().strip("<>")
        if url.startswith("https://"):
            return url
    return None


def html_copy(message: EmailMessage, *, public_url: str, local_url: str) -> str | None:
    """The HTML part with the public base of its links replaced by the local server's, so that
    its buttons and unsubscribe link work from a browser on this machine."""
    part = message.get_body(preferencelist=("html",))
    if part is None:
        return None
    return str(part.get_content()).replace(public_url.rstrip("/"), local_url.rstrip("/"))
