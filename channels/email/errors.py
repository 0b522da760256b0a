"""Email error tree and the pure classification of SMTP answers.

`classify(stage, code, enhanced_status, message)` decides what a refused SMTP command means for the
caller, from one table (`RULES`, first match wins). Three outcomes matter:

- `TEMPORARY`: try again later, the message is not lost (4xx, dropped connections, timeouts).
- `RECIPIENT_REJECTED`: the address bounced; the caller marks it `bounced` (DESIGN section 4).
- `CHANNEL_MISCONFIGURED`: our side is wrong (credentials, relaying, size, policy); the caller pauses
  email sending and says so. Never a bounce: a wrong bounce suppresses an address for good, while a
  wrong pause is visible and lifted by an operator.

Errors carry the stage, the reply code, the enhanced status and the server's text, never the SMTP
password or the message (DESIGN section 11). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from channels.email.replies import enhanced_status_of, short_text


class SmtpStage(StrEnum):
    """Where in the session a command was refused (RFC 5321 §3 and §4.1.1)."""

    CONNECT = "connect"  # the greeting, RFC 5321 §3.1
    EHLO = "ehlo"  # RFC 5321 §4.1.1.1
    STARTTLS = "starttls"  # RFC 3207
    AUTH = "auth"  # RFC 4954
    MAIL = "mail"  # RFC 5321 §4.1.1.2
    RCPT = "rcpt"  # RFC 5321 §4.1.1.3
    DATA = "data"  # RFC 5321 §4.1.1.4, the command and the end of data


class ErrorClass(StrEnum):
    """What a failure means for the caller; one value per exception leaf."""

    TEMPORARY = "temporary"
    RECIPIENT_REJECTED = "recipient_rejected"
    CHANNEL_MISCONFIGURED = "channel_misconfigured"
    MESSAGE_INVALID = "message_invalid"

    @property
    def retryable(self) -> bool:
        """Send the same bytes again later (same Message-ID, so a duplicate is recognisable)."""
        return self is ErrorClass.TEMPORARY

    @property
    def bounces(self) -> bool:
        """The address is dead: mark it bounced and suppress it."""
        return self is ErrorClass.RECIPIENT_REJECTED

    @property
    def pauses_channel(self) -> bool:
        """Stop sending email through this relay until an operator acts."""
        return self is ErrorClass.CHANNEL_MISCONFIGURED


# --- the tree ---------------------------------------------------------------------------------


class EmailError(Exception):
    """Root of everything the email adapter raises.

    `maybe_delivered` is True when the relay may have taken the message although we saw a failure
    (the connection dropped or timed out after the end of data was written: RFC 1047's duplicate
    problem). Resending is still right (sends are at-least-once, DESIGN section 8); the stable
    Message-ID lets a duplicate be recognised.
    """

    error_class: ClassVar[ErrorClass] = ErrorClass.TEMPORARY

    def __init__(
        self,
        message: str,
        *,
        stage: SmtpStage | None = None,
        code: int | None = None,
        enhanced_status: str | None = None,
        reply: str | None = None,
        recipient: str | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.code = code
        self.enhanced_status = enhanced_status
        self.reply = reply
        self.recipient = recipient
        self.maybe_delivered = maybe_delivered

    @property
    def retryable(self) -> bool:
        return self.error_class.retryable

    def as_dict(self) -> dict[str, Any]:
        """The parsed error, safe to store on a delivery row (no password, no message body)."""
        return {
            "class": self.error_class.value,
            "stage": self.stage.value if self.stage is not None else None,
            "code": self.code,
            "enhanced_status": self.enhanced_status,
            "reply": self.reply,
            "message": self.message,
            "maybe_delivered": self.maybe_delivered,
        }

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            answer = (
                f"{self.code} {self.enhanced_status}" if self.enhanced_status else str(self.code)
            )
            parts.append(f"({self.stage.value if self.stage else 'smtp'}: {answer})")
        return " ".join(parts)


class TemporaryFailure(EmailError):
    """A 4xx answer or an unexpected one: try again later."""

    error_class = ErrorClass.TEMPORARY


class ConnectionFailed(TemporaryFailure):
    """The relay could not be reached or the connection dropped."""


class SendTimedOut(TemporaryFailure):
    """The relay did not answer in time."""


class RecipientRejected(EmailError):
    """The relay says the address does not exist or is disabled (RFC 3463 X.1.x, X.2.1)."""

    error_class = ErrorClass.RECIPIENT_REJECTED


class ChannelMisconfigured(EmailError):
    """Credentials, relaying, size or policy: our configuration, not the recipient."""

    error_class = ErrorClass.CHANNEL_MISCONFIGURED


class MessageInvalid(EmailError, ValueError):
    """An outbound email breaks a rule before anything is sent: our bug, never retried.

    The message names the field and the rule, never the offending value (it may be personal data).
    """

    error_class = ErrorClass.MESSAGE_INVALID

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_LEAVES: dict[ErrorClass, type[EmailError]] = {
    ErrorClass.TEMPORARY: TemporaryFailure,
    ErrorClass.RECIPIENT_REJECTED: RecipientRejected,
    ErrorClass.CHANNEL_MISCONFIGURED: ChannelMisconfigured,
}


# --- the table --------------------------------------------------------------------------------

_T = ErrorClass.TEMPORARY
_R = ErrorClass.RECIPIENT_REJECTED
_M = ErrorClass.CHANNEL_MISCONFIGURED

_ANY_STAGE = frozenset(SmtpStage)
_RCPT = frozenset({SmtpStage.RCPT})


@dataclass(frozen=True)
class Rule:
    """One row: stages, a test on the reply code, a test on the enhanced status, the outcome."""

    name: str
    stages: frozenset[SmtpStage]
    code: Callable[[int], bool]
    enhanced: Callable[[str | None], bool]
    outcome: ErrorClass


def _any(_: object) -> bool:
    return True


def _transient(code: int) -> bool:
    return 400 <= code <= 499


def _permanent(code: int) -> bool:
    return 500 <= code <= 599


def _address_status(status: str | None) -> bool:
    # X.1.7 and X.1.8 are about the *sender's* address (RFC 3463 §3.2): not the recipient's fault.
    return status is not None and status.startswith("5.1.") and status not in {"5.1.7", "5.1.8"}


RULES: tuple[Rule, ...] = (
    # RFC 5321 §3.8: 421 means the server is closing the channel; the sender drops the connection.
    Rule("421 closing", _ANY_STAGE, lambda c: c == 421, _any, _T),
    # RFC 5321 §4.2.1: 4yz is a transient negative completion; the same command may succeed later.
    Rule("4xx transient", _ANY_STAGE, _transient, _any, _T),
    # RFC 5321 §4.5.3.1.10: RFC 821 wrongly listed 552 for "too many recipients"; clients SHOULD
    # read 552 at RCPT as 452. RFC 3463 §3.3 makes X.2.2 (mailbox full) persistent transient.
    Rule(
        "552 at RCPT",
        _RCPT,
        lambda c: c == 552,
        lambda s: s in {None, "5.2.2", "5.5.3"},
        _T,
    ),
    # RFC 3463 §3.2 address status: 5.1.1 bad mailbox, 5.1.2 bad domain, 5.1.3 bad syntax, 5.1.6
    # moved, 5.1.10 null MX (RFC 7505 §4.2). The recipient bounced.
    Rule("5.1.x at RCPT", _RCPT, _permanent, _address_status, _R),
    # RFC 3463 §3.3: 5.2.1 mailbox disabled, not accepting messages.
    Rule("5.2.1 at RCPT", _RCPT, _permanent, lambda s: s == "5.2.1", _R),
    # Everything else permanent says our side is wrong: 535 5.7.8 bad credentials (RFC 4954 §6),
    # 530 5.7.0 auth required, 550 5.7.1 relaying denied and other 5.7.x policy (RFC 3463 §3.8),
    # 552 / 5.3.4 too big (RFC 1870, RFC 3463 §3.4), 5.1.7/5.1.8 bad sender, any 5xx at MAIL or
    # DATA, 554 at the greeting (RFC 5321 §3.1), and a bare 550 at RCPT without an enhanced status,
    # which is too vague to suppress an address on.
    Rule("other 5xx", _ANY_STAGE, _permanent, _any, _M),
    # RFC 5321 §4.2.1: anything but 4yz/5yz where a refusal was seen is a protocol error (a 250 to
    # DATA instead of 354, a garbled line). A fresh connection later is the only sensible answer.
    Rule("unexpected reply", _ANY_STAGE, _any, _any, _T),
)


def classify(
    stage: SmtpStage, code: int, enhanced_status: str | None, message: str = ""
) -> ErrorClass:
    """Classify a refused SMTP command. When `enhanced_status` is None it is read from the start
    of `message`, the reply text (RFC 2034 §4)."""
    return matching_rule(stage, code, enhanced_status, message).outcome


def matching_rule(stage: SmtpStage, code: int, enhanced_status: str | None, message: str) -> Rule:
    status = enhanced_status if enhanced_status is not None else enhanced_status_of(code, message)
    for rule in RULES:
        if stage in rule.stages and rule.code(code) and rule.enhanced(status):
            return rule
    raise AssertionError("the last rule matches everything")  # pragma: no cover


def error_from_reply(
    stage: SmtpStage,
    code: int,
    text: str,
    *,
    recipient: str | None = None,
    maybe_delivered: bool = False,
) -> EmailError:
    """The typed exception for a refused command (pure; the sender raises it)."""
    status = enhanced_status_of(code, text)
    outcome = classify(stage, code, status, text)
    reply = short_text(text)
    what = {
        ErrorClass.TEMPORARY: "temporary SMTP failure",
        ErrorClass.RECIPIENT_REJECTED: "recipient rejected",
        ErrorClass.CHANNEL_MISCONFIGURED: "SMTP relay refused our configuration",
    }[outcome]
    return _LEAVES[outcome](
        f"{what}: {reply}" if reply else what,
        stage=stage,
        code=code,
        enhanced_status=status,
        reply=reply,
        recipient=recipient,
        maybe_delivered=maybe_delivered,
    )
