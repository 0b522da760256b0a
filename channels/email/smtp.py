"""The SMTP sender: a small pool of reused aiosmtplib connections, paced, with typed errors.

`SmtpSender` receives every setting through its constructor; it never reads settings, never
touches a database and knows nothing of campaigns. `send` runs one mail transaction (MAIL, RCPT,
DATA; RFC 5321 §3.3) on a pooled connection and returns an `SmtpReceipt`, or raises an
`EmailError` leaf from `channels.email.errors`. It does not retry: the dispatcher records the next
attempt on the delivery row. The one exception is a pooled connection that turned out dead before
the relay accepted anything (the server closed it while idle): that transaction is replayed once on
a fresh connection, which cannot duplicate anything.

Connections are opened lazily, at most `pool_size` at once, and kept open between messages.
Before reusing one that sat idle for `noop_after` seconds we send NOOP (RFC 5321 §4.1.1.9): relays
drop idle sessions (RFC 5321 §4.5.3.2.7 lets a server time out after 5 minutes; many do sooner).
After a refused command RSET clears the transaction (RFC 5321 §4.1.1.5) and the connection is kept;
after a 421, a drop or a timeout it is discarded (RFC 5321 §3.8). The password goes to AUTH only
(RFC 4954) and appears in no error, log line or repr.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

from channels.email.errors import (
    ChannelMisconfigured,
    ConnectionFailed,
    EmailError,
    ErrorClass,
    MessageInvalid,
    SendTimedOut,
    SmtpStage,
    error_from_reply,
)
from channels.email.mime import check_address
from channels.email.pacing import MessagePacer
from channels.email.replies import SmtpReply, queue_id_of

log = logging.getLogger(__name__)

TlsMode = Literal["none", "starttls", "tls"]
TLS_MODES: frozenset[str] = frozenset({"none", "starttls", "tls"})

DEFAULT_POOL_SIZE = 4
DEFAULT_TIMEOUT = 30.0
DEFAULT_NOOP_AFTER = 10.0
_QUIT_TIMEOUT = 2.0
_NOOP_TIMEOUT = 5.0
_AUTH_PREFERENCE = ("plain", "login", "cram-md5")

SendObserver = Callable[[str, float], None]
"""Told of each mail transaction `send` ran: (outcome, seconds). The outcome is "ok" or the
error's `ErrorClass` value; the seconds run from taking a connection (opening one included) to the
relay's answer, not the wait for a pool slot or the pacer. It must be quick and must not raise
(an exception is logged and dropped, never turned into a failed send)."""


@dataclass(frozen=True)
class SmtpReceipt:
    """The relay's acceptance. `queue_id` is read from the DATA reply when the relay names one
    (Postfix "queued as ...", Exim "id=...": see `replies.queue_id_of`); `reply` is the whole
    answer. `refused` lists recipients the relay refused while it accepted others."""

    queue_id: str | None
    reply: SmtpReply
    refused: Mapping[str, SmtpReply] = field(default_factory=dict)


@dataclass(eq=False)
class _Connection:
    smtp: aiosmtplib.SMTP
    last_used: float
    sent: int = 0


class _Stale(Exception):
    """A reused connection failed before the relay accepted anything: replay on a fresh one."""

    def __init__(self, error: EmailError) -> None:
        super().__init__(str(error))
        self.error = error


class SmtpSender:
    """Send pre-built messages through one SMTP relay.

    `tls`: "none" (plain, for a relay on loopback), "starttls" (RFC 3207; required, never
    optional: a relay that does not offer it is misconfigured, not an excuse to send in clear) or
    "tls" (implicit TLS from the first byte, RFC 8314 §3, usually port 465). `tls_context`
    defaults to `ssl.create_default_context()` (certificate and host name checked).
    `max_per_second` paces message starts (None: unpaced); `pool_size` bounds connections and so
    messages in flight. `max_messages_per_connection` recycles a connection after that many
    messages, for relays that cap a session.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_per_second: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        max_messages_per_connection: int | None = None,
        noop_after: float = DEFAULT_NOOP_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_send: SendObserver | None = None,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError("tls must be 'none', 'starttls' or 'tls'")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        if max_messages_per_connection is not None and max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be at least 1")
        self.host = host
        self.port = port
        self.tls: TlsMode = tls
        self._username = username
        self._password = password
        self.pool_size = pool_size
        self._timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._max_per_connection = max_messages_per_connection
        self._noop_after = noop_after
        self._clock = clock
        self._on_send = on_send
        self._pacer = (
            MessagePacer(max_per_second, clock=clock, sleep=sleep)
            if max_per_second is not None
            else None
        )
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []
        self._open_connections: set[_Connection] = set()
        self._closed = False

    def __repr__(self) -> str:
        auth = f", username={self._username!r}" if self._username is not None else ""
        return f"SmtpSender({self.host!r}, {self.port}, tls={self.tls!r}{auth})"

    @property
    def open_connections(self) -> int:
        return len(self._open_connections)

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> SmtpReceipt:
        """One mail transaction. `sender` is the envelope MAIL FROM (the bounce address),
        `recipients` the RCPT TO addresses (normally one: messages are personalised)."""
        if isinstance(recipients, str):
            raise TypeError("recipients must be a sequence of addresses, not one string")
        check_address("sender", sender)
        if not recipients:
            raise MessageInvalid("recipients", "must not be empty")
        for index, recipient in enumerate(recipients):
            check_address(f"recipients[{index}]", recipient)
        if not message.endswith(b"\r\n"):
            raise MessageInvalid("message", "must end with CRLF (build it with channels.email)")
        self._check_open()
        async with self._slots:
            self._check_open()  # closed while this send waited for a slot
            if self._pacer is not None:
                await self._pacer.acquire()
            started = self._clock()
            try:
                receipt = await self._send_on_pool(message, sender, recipients)
            except EmailError as exc:
                self._observe(exc.error_class.value, started)
                raise
            self._observe("ok", started)
            return receipt

    def _observe(self, outcome: str, started: float) -> None:
        if self._on_send is None:
            return
        try:
            self._on_send(outcome, self._clock() - started)
        except Exception:  # metrics must never turn a sent message into a failure
            log.warning("SMTP send observer failed", exc_info=True)

    async def _send_on_pool(
        self, message: bytes, sender: str, recipients: Sequence[str]
    ) -> SmtpReceipt:
        """Under a pool slot: one transaction on a pooled (or fresh) connection."""
        connection, reused = await self._checkout()
        try:
            try:
                receipt = await self._transaction(
                    connection, message, sender, recipients, reused=reused
                )
            except _Stale as stale:
                log.info("SMTP pooled connection was stale (%s); reconnecting", stale.error)
                self._check_open()
                connection = await self._open()
                receipt = await self._transaction(
                    connection, message, sender, recipients, reused=False
                )
        except EmailError:
            # A refused command left the session usable (RSET answered); anything else
            # closed it already.
            await self._checkin(connection)
            raise
        except BaseException:
            # Cancelled mid-command: the session's state is unknown.
            self._discard(connection)
            raise
        await self._checkin(connection)
        return receipt

    async def verify(self) -> None:
        """Open (or reuse) a connection, TLS and AUTH included, and NOOP: raises what `send`
        would, so a misconfigured relay is reported before the first delivery."""
        self._check_open()
        async with self._slots:
            connection, _ = await self._checkout(force_noop=True)
            await self._checkin(connection)

    async def close(self) -> None:
        """QUIT and close the idle connections; those in use close when their send ends. Later
        sends raise `ConnectionFailed`."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(connection) for connection in idle))

    # --- the pool ---

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionFailed("the SMTP sender is closed")

    async def _checkout(self, *, force_noop: bool = False) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.smtp.is_connected:
                self._discard(connection)
                continue
            idle_for = self._clock() - connection.last_used
            if force_noop or idle_for >= self._noop_after:
                try:
                    await connection.smtp.noop(timeout=min(self._timeout, _NOOP_TIMEOUT))
                except (aiosmtplib.SMTPException, OSError):
                    self._discard(connection)
                    continue
                except BaseException:
                    self._discard(connection)  # cancelled mid-NOOP: the session is unusable
                    raise
                return connection, False  # just proven alive
            return connection, True
        return await self._open(), False

    async def _checkin(self, connection: _Connection) -> None:
        connection.sent += 1
        connection.last_used = self._clock()
        recycle = (
            self._max_per_connection is not None and connection.sent >= self._max_per_connection
        )
        if self._closed or recycle or not connection.smtp.is_connected:
            await self._quit(connection)
            return
        self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        self._open_connections.discard(connection)
        connection.smtp.close()

    async def _quit(self, connection: _Connection) -> None:
        # RFC 5321 §4.1.1.10: QUIT politely; a relay that does not answer is simply closed.
        try:
            if connection.smtp.is_connected:
                await connection.smtp.quit(timeout=_QUIT_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self._discard(connection)

    async def _open(self) -> _Connection:
        context = self._context()
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=False,  # done below, explicitly, so a failure is named by its stage
            tls_context=context,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )
        stage = SmtpStage.CONNECT
        try:
            await smtp.connect()
            stage = SmtpStage.EHLO
            await smtp.ehlo()
            if self.tls == "starttls":
                stage = SmtpStage.STARTTLS
                if not smtp.supports_extension("starttls"):
                    raise ChannelMisconfigured(
                        "the relay does not offer STARTTLS (RFC 3207) and tls='starttls' was asked",
                        stage=stage,
                    )
                await smtp.starttls(tls_context=context)
                # RFC 3207 §4.2: forget what the server said before TLS and ask again.
                stage = SmtpStage.EHLO
                await smtp.ehlo()
            if self._username is not None and self._password is not None:
                stage = SmtpStage.AUTH
                await self._login(smtp)
        except EmailError:
            smtp.close()
            raise
        except BaseException as exc:
            smtp.close()
            error = _map_exception(exc, stage, maybe_delivered=False)
            if error is None:
                raise
            raise error from exc
        connection = _Connection(smtp=smtp, last_used=self._clock())
        self._open_connections.add(connection)
        return connection

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        assert self._username is not None and self._password is not None
        if not smtp.supports_extension("auth"):
            # RFC 4954 §3: AUTH is available only when EHLO lists it (many relays list it only
            # after STARTTLS).
            raise ChannelMisconfigured(
                "the relay does not offer AUTH (RFC 4954) but credentials were given",
                stage=SmtpStage.AUTH,
            )
        # One mechanism, one attempt: aiosmtplib's `login` would try each offered mechanism in
        # turn, and repeated failures lock accounts on many relays. PLAIN (RFC 4616) first, as
        # the credentials travel inside TLS; LOGIN and CRAM-MD5 (RFC 2195) for older relays.
        offered = smtp.supported_auth_methods
        mechanism = next((name for name in _AUTH_PREFERENCE if name in offered), None)
        if mechanism is None:
            raise ChannelMisconfigured(
                f"the relay offers no AUTH mechanism we support ({', '.join(offered) or 'none'})",
                stage=SmtpStage.AUTH,
            )
        if mechanism == "plain":
            await smtp.auth_plain(self._username, self._password)
        elif mechanism == "login":
            await smtp.auth_login(self._username, self._password)
        else:
            await smtp.auth_crammd5(self._username, self._password)

    def _context(self) -> ssl.SSLContext | None:
        if self.tls == "none":
            return None
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    # --- one transaction ---

    async def _transaction(
        self,
        connection: _Connection,
        message: bytes,
        sender: str,
        recipients: Sequence[str],
        *,
        reused: bool,
    ) -> SmtpReceipt:
        smtp = connection.smtp
        stage = SmtpStage.MAIL
        refused: dict[str, SmtpReply] = {}
        try:
            # RFC 1870 §3: declare the size so an oversized message is refused before DATA.
            options = [f"SIZE={len(message)}"] if smtp.supports_extension("size") else []
            await smtp.mail(sender, options=options)
            stage = SmtpStage.RCPT
            for recipient in recipients:
                try:
                    await smtp.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if exc.code == 421:
                        raise
                    refused[recipient] = SmtpReply.parse(exc.code, exc.message)
            if len(refused) == len(recipients):
                await self._reset(connection)
                raise _worst_refusal(refused)
            stage = SmtpStage.DATA
            answer = await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            refused_one = (
                exc.recipient if isinstance(exc, aiosmtplib.SMTPRecipientRefused) else None
            )
            error = error_from_reply(stage, exc.code, exc.message, recipient=refused_one)
            if exc.code == 421:
                # RFC 5321 §3.8: the server is closing the channel; this session is over.
                self._discard(connection)
                if reused and stage is SmtpStage.MAIL:
                    raise _Stale(error) from exc
            else:
                await self._reset(connection)
            raise error from exc
        except EmailError:
            raise
        except BaseException as exc:
            # The end of data may have reached the relay before the failure (RFC 1047).
            mapped = _map_exception(exc, stage, maybe_delivered=stage is SmtpStage.DATA)
            self._discard(connection)
            if mapped is None:
                raise
            if reused and stage is SmtpStage.MAIL and isinstance(mapped, ConnectionFailed):
                raise _Stale(mapped) from exc
            raise mapped from exc
        reply = SmtpReply.parse(answer.code, answer.message)
        return SmtpReceipt(queue_id=queue_id_of(answer.message), reply=reply, refused=refused)

    async def _reset(self, connection: _Connection) -> None:
        """RSET after a refused command (RFC 5321 §4.1.1.5); a relay that cannot is dropped."""
        try:
            await connection.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._discard(connection)


_SEVERITY = (ErrorClass.CHANNEL_MISCONFIGURED, ErrorClass.TEMPORARY, ErrorClass.RECIPIENT_REJECTED)


def _worst_refusal(refused: Mapping[str, SmtpReply]) -> EmailError:
    """Every recipient was refused: the error that matters most (a configuration problem over a
    temporary one over a bounce), carrying its recipient."""
    errors = [
        error_from_reply(SmtpStage.RCPT, reply.code, reply.text, recipient=recipient)
        for recipient, reply in refused.items()
    ]
    return min(errors, key=lambda error: _SEVERITY.index(error.error_class))


def _map_exception(
    exc: BaseException, stage: SmtpStage, *, maybe_delivered: bool
) -> EmailError | None:
    """The typed error for a transport failure, or None for what we must not swallow
    (cancellation, our own bugs)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return error_from_reply(stage, exc.code, exc.message, maybe_delivered=maybe_delivered)
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return ChannelMisconfigured(
            f"the relay's TLS certificate is not trusted: {cause.verify_message}", stage=stage
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendTimedOut(
            f"the SMTP relay did not answer in time ({stage.value})",
            stage=stage,
            maybe_delivered=maybe_delivered,
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
        return ConnectionFailed(
            f"SMTP connection failed ({stage.value}): {type(cause).__name__}",
            stage=stage,
            maybe_delivered=maybe_delivered,
        )
    if isinstance(exc, aiosmtplib.SMTPException):
        # Raised by aiosmtplib for what the relay does not offer (no AUTH method we share, no
        # STARTTLS): our configuration does not fit this relay.
        return ChannelMisconfigured(f"{stage.value}: {exc}", stage=stage)
    return None
