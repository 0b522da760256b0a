"""SmtpSender against a real aiosmtpd server on loopback: every TLS mode, AUTH, and the faults.

Each case of `MODES` runs the same contract: messages built by `channels.email` arrive intact,
connections are reused, answers map to the typed errors of `channels.email.errors`.

`Relay` is one aiosmtpd server on a free loopback port, in the test's event loop: plain, STARTTLS
(RFC 3207) or implicit TLS, optionally with AUTH. Its `Inbox` handler records what arrives and
answers what a test asks for: a refusal for one address at RCPT, one-shot answers to MAIL or DATA,
a connection dropped before the DATA reply. The TLS certificate is made here, self-signed for
127.0.0.1 and localhost, with `cryptography`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channels.email.errors import (
    ChannelMisconfigured,
    ConnectionFailed,
    MessageInvalid,
    RecipientRejected,
    SendTimedOut,
    SmtpStage,
    TemporaryFailure,
)
from channels.email.fastmime import build_message_fast
from channels.email.mime import OutboundEmail
from channels.email.smtp import SmtpSender

# --- the relay ---------------------------------------------------------------------------------

USERNAME = "relay-user"
PASSWORD = "s3cret-relay-password-0123"


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    pem: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only (host name checked: it names 127.0.0.1)."""
        return ssl.create_default_context(cadata=self.pem)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Fixed dates: no clock read, valid whenever the suite runs.
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(folder / "cert.pem", folder / "key.pem", pem.decode("ascii"))


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Inbox:
    """aiosmtpd handler: records messages, answers as told."""

    messages: list[Received] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    mail_answers: deque[str] = field(default_factory=deque)
    data_answers: deque[str] = field(default_factory=deque)
    drop_before_data_reply: int = 0
    drop_at_mail: int = 0
    noop_answers: deque[str] = field(default_factory=deque)
    hold_data: asyncio.Event | None = None
    data_arrived: asyncio.Event | None = None
    commands: list[str] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.commands.append("MAIL")
        if self.drop_at_mail > 0:
            self.drop_at_mail -= 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # a session the relay forgot: the client learns it now
            return "250 2.1.0 never sent"
        if self.mail_answers:
            return self.mail_answers.popleft()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.commands.append("RCPT")
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.commands.append("DATA")
        if self.hold_data is not None:
            if self.data_arrived is not None:
                self.data_arrived.set()
            await self.hold_data.wait()
        if self.drop_before_data_reply > 0:
            self.drop_before_data_reply -= 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # the client sees the connection drop, no answer
            return "250 2.0.0 never sent"
        if self.data_answers:
            return self.data_answers.popleft()
        content = envelope.original_content
        assert isinstance(content, bytes) and envelope.mail_from is not None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), content))
        return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"

    async def handle_NOOP(
        self, server: SMTPServer, session: Session, envelope: Envelope, arg: str
    ) -> str:
        self.commands.append("NOOP")
        if self.noop_answers:
            return self.noop_answers.popleft()
        return "250 2.0.0 Ok"

    async def handle_RSET(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.commands.append("RSET")
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.commands.append("QUIT")
        return "221 2.0.0 Bye"


def authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


@dataclass
class Relay:
    mode: str
    port: int
    inbox: Inbox
    server: asyncio.Server
    sessions: list[SMTPServer]

    def drop_all_sessions(self) -> None:
        """What a relay does to idle clients when its own timeout passes."""
        for session in self.sessions:
            if isinstance(session.transport, asyncio.Transport):
                session.transport.abort()


StartRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def start_relay(certificate: Certificate) -> AsyncIterator[StartRelay]:
    started: list[Relay] = []

    async def start(
        mode: str = "none", *, auth: bool = False, offer_starttls: bool = True, **options: Any
    ) -> Relay:
        loop = asyncio.get_running_loop()
        inbox = Inbox()
        sessions: list[SMTPServer] = []
        if auth:
            # aiosmtpd only sees TLS it negotiated itself (STARTTLS); over implicit TLS it would
            # hide AUTH, so the TLS requirement is lifted there: the channel is encrypted anyway.
            options.update(authenticator=authenticator, auth_require_tls=mode != "tls")
        if mode == "starttls" and offer_starttls:
            options.update(tls_context=certificate.server_context(), require_starttls=True)

        def protocol() -> SMTPServer:
            session = SMTPServer(inbox, hostname="mx.test", loop=loop, **options)
            sessions.append(session)
            return session

        server = await loop.create_server(
            protocol,
            host="127.0.0.1",
            port=0,
            ssl=certificate.server_context() if mode == "tls" else None,
        )
        port = server.sockets[0].getsockname()[1]
        relay = Relay(mode, port, inbox, server, sessions)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.server.close()
        relay.drop_all_sessions()
        await relay.server.wait_closed()
    await asyncio.sleep(0)  # let aiosmtpd's session tasks see their connections end


# --- the sender ---------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=7)))
BOUNCE = "bounces@shop.example.vn"

# (TLS mode, with AUTH)
MODES = [
    pytest.param("none", False, id="plain"),
    pytest.param("starttls", False, id="starttls"),
    pytest.param("starttls", True, id="starttls-auth"),
    pytest.param("tls", False, id="implicit-tls"),
    pytest.param("tls", True, id="implicit-tls-auth"),
]


def email_for(index: int, to: str = "nhung@example.org") -> OutboundEmail:
    return OutboundEmail(
        from_address="hello@shop.example.vn",
        from_name="Cửa hàng Hoa Sen",
        to_address=to,
        to_name="Nguyễn Thị Hồng Nhung",
        subject=f"Ưu đãi số {index} cho bạn",
        text=f"Chào bạn,\n.\n..dòng bắt đầu bằng dấu chấm\nƯu đãi {index} & quà\n",
        html=f"<p>Ưu đãi {index}</p>\n.<p>dấu chấm</p>",
        delivery_id=f"dlv-{index}",
        message_id_domain="mail.example.vn",
        list_unsubscribe_url=f"https://mail.example.vn/u/tok-{index}",
    )


def message_bytes(index: int, to: str = "nhung@example.org") -> bytes:
    return build_message_fast(email_for(index, to), now=NOW)


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class Senders:
    """Builds senders for a relay and closes them all at the end of the test."""

    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.made: list[SmtpSender] = []

    def __call__(self, relay: Relay, *, auth: bool = False, **options: Any) -> SmtpSender:
        if relay.mode != "none":
            options.setdefault("tls_context", self.certificate.client_context())
        if auth:
            options.update(username=USERNAME, password=PASSWORD)
        options.setdefault("timeout", 5.0)
        sender = SmtpSender(
            "127.0.0.1",
            relay.port,
            tls=relay.mode,  # type: ignore[arg-type]
            local_hostname="client.test",
            **options,
        )
        self.made.append(sender)
        return sender


@pytest.fixture
async def senders(certificate: Certificate) -> AsyncIterator[Senders]:
    made = Senders(certificate)
    yield made
    for sender in made.made:
        await sender.close()


# --- the contract, in every mode ------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "auth"), MODES)
async def test_messages_arrive_intact_over_reused_connections(
    mode: str, auth: bool, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode, auth=auth)
    sender = senders(relay, auth=auth, pool_size=2)
    receipts = [
        await sender.send(message_bytes(i), sender=BOUNCE, recipients=["nhung@example.org"])
        for i in range(3)
    ]
    assert [r.queue_id for r in receipts] == ["Q1", "Q2", "Q3"]
    assert receipts[0].reply.code == 250 and receipts[0].refused == {}
    assert len(relay.sessions) == 1  # one connection carried all three

    assert [m.mail_from for m in relay.inbox.messages] == [BOUNCE] * 3
    assert all(m.rcpt_tos == ["nhung@example.org"] for m in relay.inbox.messages)
    for index, received in enumerate(relay.inbox.messages):
        # Dot-stuffing was undone by the server: the bytes are exactly what we built.
        assert received.content == message_bytes(index)
        parsed = parse(received.content)
        assert parsed["Subject"] == f"Ưu đãi số {index} cho bạn"
        assert parsed["Message-ID"] == f"<dlv-{index}@mail.example.vn>"
        plain, _ = parsed.iter_parts()
        assert isinstance(plain, EmailMessage)
        assert "\n..dòng bắt đầu bằng dấu chấm\n" in plain.get_content().replace("\r\n", "\n")

    if mode == "starttls":
        assert relay.sessions[0].session is not None
        assert relay.sessions[0].session.ssl is not None  # the upgrade happened
    if auth:
        assert relay.sessions[0].session is not None
        assert relay.sessions[0].session.authenticated is True


@pytest.mark.parametrize(("mode", "auth"), MODES)
async def test_concurrent_sends_share_a_bounded_pool(
    mode: str, auth: bool, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode, auth=auth)
    sender = senders(relay, auth=auth, pool_size=3)
    receipts = await asyncio.gather(
        *(
            sender.send(message_bytes(i), sender=BOUNCE, recipients=[f"p{i}@example.org"])
            for i in range(12)
        )
    )
    assert len(receipts) == 12 and len(relay.inbox.messages) == 12
    assert 1 <= len(relay.sessions) <= 3
    assert sender.open_connections == len(relay.sessions)
    assert sorted(m.rcpt_tos[0] for m in relay.inbox.messages) == sorted(
        f"p{i}@example.org" for i in range(12)
    )


@pytest.mark.parametrize(("mode", "auth"), MODES)
async def test_retry_after_4xx_sends_the_same_message_id(
    mode: str, auth: bool, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode, auth=auth)
    relay.inbox.data_answers.append("451 4.3.0 Error: queue file write error")
    sender = senders(relay, auth=auth)
    with pytest.raises(TemporaryFailure) as caught:
        await sender.send(message_bytes(7), sender=BOUNCE, recipients=["nhung@example.org"])
    assert caught.value.retryable and caught.value.stage is SmtpStage.DATA
    assert (caught.value.code, caught.value.enhanced_status) == (451, "4.3.0")
    assert relay.inbox.messages == []

    receipt = await sender.send(message_bytes(7), sender=BOUNCE, recipients=["nhung@example.org"])
    assert receipt.queue_id == "Q1"
    (received,) = relay.inbox.messages
    assert parse(received.content)["Message-ID"] == "<dlv-7@mail.example.vn>"
    assert len(relay.sessions) == 1  # RSET, then the same connection
    assert "RSET" in relay.inbox.commands


@pytest.mark.parametrize(("mode", "auth"), MODES)
async def test_unknown_recipient_bounces_and_the_connection_survives(
    mode: str, auth: bool, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode, auth=auth)
    relay.inbox.refuse_rcpt["nobody@example.org"] = (
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"
    )
    sender = senders(relay, auth=auth)
    with pytest.raises(RecipientRejected) as caught:
        await sender.send(
            message_bytes(1, "nobody@example.org"), sender=BOUNCE, recipients=["nobody@example.org"]
        )
    error = caught.value
    assert (error.stage, error.code, error.enhanced_status) == (SmtpStage.RCPT, 550, "5.1.1")
    assert error.recipient == "nobody@example.org" and not error.retryable
    assert error.error_class.bounces

    await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.inbox.messages) == 1 and len(relay.sessions) == 1


# --- faults -----------------------------------------------------------------------------------------


async def test_connection_dropped_before_the_data_reply_is_retryable_and_the_pool_recovers(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    relay.inbox.drop_before_data_reply = 1
    sender = senders(relay)
    with pytest.raises(ConnectionFailed) as caught:
        await sender.send(message_bytes(3), sender=BOUNCE, recipients=["nhung@example.org"])
    assert caught.value.retryable and caught.value.stage is SmtpStage.DATA
    assert caught.value.maybe_delivered  # the end of data was written: RFC 1047
    assert sender.open_connections == 0

    receipt = await sender.send(message_bytes(3), sender=BOUNCE, recipients=["nhung@example.org"])
    assert receipt.queue_id == "Q1"
    assert len(relay.sessions) == 2
    assert parse(relay.inbox.messages[0].content)["Message-ID"] == "<dlv-3@mail.example.vn>"


async def test_relay_down_is_connection_failed(senders: Senders, start_relay: StartRelay) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = await start_relay("none")
    relay.port = port  # nothing listens there any more
    sender = senders(relay)
    with pytest.raises(ConnectionFailed) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert caught.value.stage is SmtpStage.CONNECT
    assert not caught.value.maybe_delivered and caught.value.retryable


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_wrong_password_is_channel_misconfigured(
    mode: str, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode, auth=True)
    sender = senders(relay, username=USERNAME, password="wrong-password-42")
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    error = caught.value
    assert (error.stage, error.code, error.enhanced_status) == (SmtpStage.AUTH, 535, "5.7.8")
    assert error.error_class.pauses_channel and not error.error_class.bounces
    assert "wrong-password-42" not in str(error) and "wrong-password-42" not in repr(sender)
    assert relay.inbox.messages == []


async def test_auth_required_without_credentials_is_channel_misconfigured(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("starttls", auth=True, auth_required=True)
    sender = senders(relay)
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert (caught.value.stage, caught.value.code) == (SmtpStage.MAIL, 530)


async def test_credentials_for_a_relay_without_auth_are_channel_misconfigured(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay, auth=True)
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.verify()
    assert caught.value.stage is SmtpStage.AUTH


async def test_starttls_not_offered_is_channel_misconfigured(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("starttls", offer_starttls=False)
    sender = senders(relay)
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert caught.value.stage is SmtpStage.STARTTLS
    assert relay.inbox.commands == []  # nothing was sent in clear


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_untrusted_certificate_is_channel_misconfigured(
    mode: str, start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay(mode)
    sender = senders(relay, tls_context=ssl.create_default_context())
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert "certificate" in str(caught.value)
    assert relay.inbox.messages == []


async def test_oversized_message_is_refused_at_mail_from_its_declared_size(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none", data_size_limit=500)
    sender = senders(relay)
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert (caught.value.stage, caught.value.code) == (SmtpStage.MAIL, 552)


async def test_4xx_at_rcpt_is_temporary(start_relay: StartRelay, senders: Senders) -> None:
    relay = await start_relay("none")
    relay.inbox.refuse_rcpt["grey@example.org"] = "450 4.2.0 <grey@example.org>: Greylisted"
    sender = senders(relay)
    with pytest.raises(TemporaryFailure) as caught:
        await sender.send(
            message_bytes(1, "grey@example.org"), sender=BOUNCE, recipients=["grey@example.org"]
        )
    assert (caught.value.stage, caught.value.code, caught.value.recipient) == (
        SmtpStage.RCPT,
        450,
        "grey@example.org",
    )


async def test_some_recipients_refused_is_a_receipt_all_refused_is_the_worst_error(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    relay.inbox.refuse_rcpt.update(
        {
            "gone@example.org": "550 5.1.1 User unknown",
            "full@example.org": "452 4.2.2 Mailbox full",
        }
    )
    sender = senders(relay)
    receipt = await sender.send(
        message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org", "gone@example.org"]
    )
    assert list(receipt.refused) == ["gone@example.org"]
    assert receipt.refused["gone@example.org"].enhanced_status == "5.1.1"
    assert relay.inbox.messages[0].rcpt_tos == ["nhung@example.org"]

    with pytest.raises(TemporaryFailure) as caught:
        await sender.send(
            message_bytes(2), sender=BOUNCE, recipients=["gone@example.org", "full@example.org"]
        )
    assert caught.value.recipient == "full@example.org"  # temporary beats a bounce


async def test_stale_pooled_connection_is_replaced_without_an_error(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay)
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    # The relay timed the idle session out with 421 at our next command (RFC 5321 §3.8).
    relay.inbox.mail_answers.append("421 4.4.2 mx.test Error: timeout exceeded")
    await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.inbox.messages) == 2 and len(relay.sessions) == 2

    relay.drop_all_sessions()  # and one that the relay closed outright
    await asyncio.sleep(0)  # let the client's transport see the close
    await sender.send(message_bytes(3), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.inbox.messages) == 3 and len(relay.sessions) == 3


async def test_idle_connection_is_checked_with_noop(
    start_relay: StartRelay, senders: Senders
) -> None:
    now = [1000.0]
    relay = await start_relay("none")
    sender = senders(relay, noop_after=30.0, clock=lambda: now[0])
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    now[0] += 10
    await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])
    assert "NOOP" not in relay.inbox.commands
    now[0] += 31
    await sender.send(message_bytes(3), sender=BOUNCE, recipients=["nhung@example.org"])
    assert relay.inbox.commands.count("NOOP") == 1
    assert len(relay.sessions) == 1


async def test_pacing_spaces_message_starts(start_relay: StartRelay, senders: Senders) -> None:
    now = [0.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    relay = await start_relay("none")
    sender = senders(relay, max_per_second=20, clock=lambda: now[0], sleep=fake_sleep)
    for i in range(5):
        await sender.send(message_bytes(i), sender=BOUNCE, recipients=["nhung@example.org"])
    assert waits == pytest.approx([0.05] * 4)
    assert len(relay.inbox.messages) == 5


async def test_silent_relay_times_out(senders: Senders, start_relay: StartRelay) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        relay = await start_relay("none")
        relay.port = server.sockets[0].getsockname()[1]
        sender = senders(relay, timeout=0.2)
        with pytest.raises(SendTimedOut) as caught:
            await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
        assert caught.value.stage is SmtpStage.CONNECT and caught.value.retryable
    finally:
        server.close()
        await server.wait_closed()


async def test_close_quits_and_later_sends_fail(start_relay: StartRelay, senders: Senders) -> None:
    relay = await start_relay("none")
    sender = senders(relay)
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    await sender.close()
    assert relay.inbox.commands[-1] == "QUIT" and sender.open_connections == 0
    with pytest.raises(ConnectionFailed):
        await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])


async def test_envelope_is_checked_before_any_connection(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay)
    cases: list[tuple[str, list[str], str]] = [
        ("bad sender", ["a@example.org"], "sender"),
        (BOUNCE, [], "recipients"),
        (BOUNCE, ["ok@example.org", "x\r\nRCPT"], "recipients[1]"),
    ]
    for envelope_sender, recipients, field_name in cases:
        with pytest.raises(MessageInvalid) as caught:
            await sender.send(message_bytes(1), sender=envelope_sender, recipients=recipients)
        assert caught.value.field == field_name
    with pytest.raises(MessageInvalid):
        await sender.send(b"no final CRLF", sender=BOUNCE, recipients=["a@example.org"])
    with pytest.raises(TypeError):
        await sender.send(message_bytes(1), sender=BOUNCE, recipients="a@example.org")
    assert relay.sessions == []


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="tls"):
        SmtpSender("127.0.0.1", 25, tls="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="username"):
        SmtpSender("127.0.0.1", 25, username="u")
    with pytest.raises(ValueError, match="pool_size"):
        SmtpSender("127.0.0.1", 25, pool_size=0)
    with pytest.raises(ValueError, match="timeout"):
        SmtpSender("127.0.0.1", 25, timeout=0)
    with pytest.raises(ValueError, match="max_messages_per_connection"):
        SmtpSender("127.0.0.1", 25, max_messages_per_connection=0)


async def test_connections_are_recycled_after_max_messages(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay, max_messages_per_connection=2)
    for i in range(5):
        await sender.send(message_bytes(i), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.sessions) == 3
    assert relay.inbox.commands.count("QUIT") == 2


async def test_half_open_pooled_connection_is_replayed_on_a_fresh_one(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay)
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    relay.inbox.drop_at_mail = 1  # the client still believes the session is open
    receipt = await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])
    assert receipt.queue_id == "Q2"
    assert len(relay.sessions) == 2 and len(relay.inbox.messages) == 2


async def test_a_fresh_connection_that_drops_at_mail_is_not_replayed(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    relay.inbox.drop_at_mail = 1
    sender = senders(relay)
    with pytest.raises(ConnectionFailed) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert caught.value.stage is SmtpStage.MAIL and not caught.value.maybe_delivered
    assert len(relay.sessions) == 1


async def test_verify_checks_an_idle_connection_and_replaces_a_dead_one(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    sender = senders(relay)
    await sender.verify()
    assert len(relay.sessions) == 1 and "NOOP" not in relay.inbox.commands
    await sender.verify()
    assert relay.inbox.commands.count("NOOP") == 1
    relay.inbox.noop_answers.append("421 4.4.2 mx.test Error: timeout exceeded")
    await sender.verify()
    assert len(relay.sessions) == 2
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.sessions) == 2


async def test_cancelled_send_drops_its_connection(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    relay.inbox.hold_data = asyncio.Event()
    relay.inbox.data_arrived = asyncio.Event()
    sender = senders(relay)
    task = asyncio.create_task(
        sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    )
    await relay.inbox.data_arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sender.open_connections == 0
    relay.inbox.hold_data.set()
    relay.inbox.hold_data = None
    await sender.send(message_bytes(2), sender=BOUNCE, recipients=["nhung@example.org"])
    assert len(relay.sessions) == 2


async def test_421_at_rcpt_is_temporary_and_drops_the_session(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("none")
    relay.inbox.refuse_rcpt["a@example.org"] = "421 4.7.0 mx.test Too many errors, closing"
    sender = senders(relay)
    with pytest.raises(TemporaryFailure) as caught:
        await sender.send(message_bytes(1), sender=BOUNCE, recipients=["a@example.org"])
    assert (caught.value.stage, caught.value.code) == (SmtpStage.RCPT, 421)
    assert sender.open_connections == 0


async def test_login_mechanism_when_plain_is_not_offered(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("starttls", auth=True, auth_exclude_mechanism=["PLAIN"])
    sender = senders(relay, auth=True)
    await sender.send(message_bytes(1), sender=BOUNCE, recipients=["nhung@example.org"])
    assert relay.sessions[0].session is not None
    assert relay.sessions[0].session.authenticated is True


async def test_no_shared_auth_mechanism_is_channel_misconfigured(
    start_relay: StartRelay, senders: Senders
) -> None:
    relay = await start_relay("starttls", auth=True, auth_exclude_mechanism=["PLAIN", "LOGIN"])
    sender = senders(relay, auth=True)
    with pytest.raises(ChannelMisconfigured) as caught:
        await sender.verify()
    assert caught.value.stage is SmtpStage.AUTH
