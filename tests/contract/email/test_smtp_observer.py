"""SmtpSender's `on_send` hook against a real aiosmtpd relay: one call per mail transaction with
the outcome ("ok" or the error class) and the seconds; a failing observer never fails a send."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from channels.email.errors import RecipientRejected
from channels.email.smtp import SmtpSender

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


class Relay:
    """Accepts everything but one address."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address == "gone@example.com":
            return "550 5.1.1 <gone@example.com>: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.received += 1
        return "250 2.0.0 Ok: queued as ABC123"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_each_transaction_is_observed_with_its_outcome(relay: tuple[Relay, int]) -> None:
    handler, port = relay
    seen: list[tuple[str, float]] = []
    sender = SmtpSender(
        "127.0.0.1",
        port,
        tls="none",
        pool_size=1,
        on_send=lambda outcome, seconds: seen.append((outcome, seconds)),
    )
    try:
        await sender.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"])
        with pytest.raises(RecipientRejected):
            await sender.send(MESSAGE, sender="a@example.com", recipients=["gone@example.com"])
        await sender.send(MESSAGE, sender="a@example.com", recipients=["c@example.com"])
    finally:
        await sender.close()
    assert [outcome for outcome, _ in seen] == ["ok", "recipient_rejected", "ok"]
    assert all(0 <= seconds < 30 for _, seconds in seen)
    assert handler.received == 2


async def test_a_refused_connection_is_observed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = int(s.getsockname()[1])
    seen: list[str] = []
    sender = SmtpSender(
        "127.0.0.1", closed_port, tls="none", on_send=lambda outcome, _: seen.append(outcome)
    )
    with pytest.raises(Exception, match="SMTP connection failed"):
        await sender.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"])
    assert seen == ["temporary"]


async def test_a_failing_observer_never_fails_a_send(
    relay: tuple[Relay, int], caplog: pytest.LogCaptureFixture
) -> None:
    handler, port = relay

    def broken(outcome: str, seconds: float) -> None:
        raise ValueError("metrics bug")

    sender = SmtpSender("127.0.0.1", port, tls="none", on_send=broken)
    try:
        with caplog.at_level(logging.WARNING, logger="channels.email.smtp"):
            receipt = await sender.send(
                MESSAGE, sender="a@example.com", recipients=["b@example.com"]
            )
    finally:
        await sender.close()
    assert receipt.queue_id == "ABC123"
    assert handler.received == 1
    assert "observer failed" in caplog.text
