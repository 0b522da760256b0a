"""SMTP answer classification: one literal case per row of `errors.RULES`, plus reply parsing."""

from __future__ import annotations

import pytest

from channels.email.errors import (
    RULES,
    ChannelMisconfigured,
    ConnectionFailed,
    EmailError,
    ErrorClass,
    MessageInvalid,
    RecipientRejected,
    SmtpStage,
    TemporaryFailure,
    classify,
    error_from_reply,
    matching_rule,
)
from channels.email.replies import SmtpReply, enhanced_status_of, queue_id_of, short_text

T = ErrorClass.TEMPORARY
R = ErrorClass.RECIPIENT_REJECTED
M = ErrorClass.CHANNEL_MISCONFIGURED
S = SmtpStage

# (rule name, stage, code, reply text as the relay sends it, expected class)
TABLE: list[tuple[str, SmtpStage, int, str, ErrorClass]] = [
    ("421 closing", S.CONNECT, 421, "4.3.2 Service not available, closing channel", T),
    ("421 closing", S.MAIL, 421, "4.4.2 mx.example Error: timeout exceeded", T),
    ("421 closing", S.RCPT, 421, "Too many concurrent SMTP connections", T),
    (
        "4xx transient",
        S.RCPT,
        450,
        "4.2.0 <a@example.org>: Recipient address rejected: Greylisted",
        T,
    ),
    ("4xx transient", S.RCPT, 451, "4.7.1 Please try again later", T),
    ("4xx transient", S.MAIL, 452, "4.3.1 Insufficient system storage", T),
    ("4xx transient", S.AUTH, 454, "4.7.0 Temporary authentication failure", T),
    ("4xx transient", S.DATA, 451, "4.3.0 Error: queue file write error", T),
    ("4xx transient", S.STARTTLS, 454, "4.7.0 TLS not available due to local problem", T),
    ("4xx transient", S.RCPT, 452, "4.5.3 Too many recipients", T),
    ("552 at RCPT", S.RCPT, 552, "5.2.2 <a@example.org>: Mailbox full", T),
    ("552 at RCPT", S.RCPT, 552, "Too many recipients", T),
    ("552 at RCPT", S.RCPT, 552, "5.5.3 Too many recipients", T),
    ("5.1.x at RCPT", S.RCPT, 550, "5.1.1 <nobody@example.org>: Recipient address rejected", R),
    ("5.1.x at RCPT", S.RCPT, 550, "5.1.2 Host unknown (Name server: example.invalid)", R),
    ("5.1.x at RCPT", S.RCPT, 553, "5.1.3 Bad recipient address syntax", R),
    ("5.1.x at RCPT", S.RCPT, 551, "5.1.6 User has moved", R),
    ("5.1.x at RCPT", S.RCPT, 556, "5.1.10 Recipient address has null MX", R),
    ("5.1.x at RCPT", S.RCPT, 550, "5.1.0 Address rejected", R),
    (
        "5.2.1 at RCPT",
        S.RCPT,
        550,
        "5.2.1 The email account that you tried to reach is disabled",
        R,
    ),
    ("other 5xx", S.AUTH, 535, "5.7.8 Authentication credentials invalid", M),
    ("other 5xx", S.AUTH, 534, "5.7.9 Authentication mechanism is too weak", M),
    ("other 5xx", S.MAIL, 530, "5.7.0 Authentication required", M),
    ("other 5xx", S.RCPT, 550, "5.7.1 <a@example.org>: Relay access denied", M),
    ("other 5xx", S.RCPT, 554, "5.7.1 Service unavailable; Client host blocked", M),
    ("other 5xx", S.MAIL, 552, "5.3.4 Message size exceeds fixed limit", M),
    ("other 5xx", S.DATA, 552, "5.3.4 Message too big for system", M),
    ("other 5xx", S.RCPT, 552, "5.3.4 Message size exceeds fixed maximum message size", M),
    ("other 5xx", S.RCPT, 553, "5.1.8 <bounce@shop.example>: Sender address rejected", M),
    ("other 5xx", S.RCPT, 550, "5.1.7 Invalid sender address syntax", M),
    ("other 5xx", S.MAIL, 550, "5.1.1 Sender address rejected: undeliverable", M),
    ("other 5xx", S.MAIL, 553, "5.7.1 Sender address rejected: not owned by user", M),
    ("other 5xx", S.DATA, 554, "5.7.1 Message rejected as spam by Content Filtering", M),
    ("other 5xx", S.DATA, 550, "5.1.1 user unknown", M),
    ("other 5xx", S.CONNECT, 554, "No SMTP service here", M),
    ("other 5xx", S.EHLO, 501, "5.5.4 Syntax: EHLO hostname", M),
    ("other 5xx", S.RCPT, 550, "No such user here", M),
    ("other 5xx", S.RCPT, 550, "4.1.1 class disagrees with the reply code", M),
    ("unexpected reply", S.DATA, 250, "2.0.0 Ok", T),
    ("unexpected reply", S.CONNECT, 220, "not expected here", T),
]


@pytest.mark.parametrize(("rule", "stage", "code", "text", "expected"), TABLE)
def test_classify_table(
    rule: str, stage: SmtpStage, code: int, text: str, expected: ErrorClass
) -> None:
    assert matching_rule(stage, code, None, text).name == rule
    assert classify(stage, code, None, text) is expected


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} == {row[0] for row in TABLE}


def test_explicit_enhanced_status_wins_over_the_text() -> None:
    assert classify(S.RCPT, 550, "5.1.1", "Mailbox unavailable") is R
    assert classify(S.RCPT, 550, "5.7.1", "5.1.1 ignored when given") is M


@pytest.mark.parametrize(
    ("expected", "leaf"),
    [(T, TemporaryFailure), (R, RecipientRejected), (M, ChannelMisconfigured)],
)
def test_error_from_reply_builds_the_leaf(expected: ErrorClass, leaf: type[EmailError]) -> None:
    code, stage, text = {
        T: (451, S.RCPT, "4.7.1 Try again later"),
        R: (550, S.RCPT, "5.1.1 <x@example.org>: User unknown\nin virtual mailbox table"),
        M: (535, S.AUTH, "5.7.8 Error: authentication failed"),
    }[expected]
    error = error_from_reply(stage, code, text, recipient="x@example.org")
    assert type(error) is leaf
    assert error.error_class is expected
    assert error.retryable is (expected is T)
    assert error.error_class.bounces is (expected is R)
    assert error.error_class.pauses_channel is (expected is M)
    assert error.code == code and error.stage is stage and error.recipient == "x@example.org"
    assert "\n" not in (error.reply or "")
    stored = error.as_dict()
    assert stored["class"] == expected.value and stored["code"] == code
    assert stored["stage"] == stage.value
    assert str(code) in str(error)


def test_transport_errors_and_invalid_messages() -> None:
    dropped = ConnectionFailed("dropped", stage=S.DATA, maybe_delivered=True)
    assert dropped.retryable and dropped.as_dict()["maybe_delivered"] is True
    assert str(dropped) == "dropped"
    invalid = MessageInvalid("subject", "must not be empty")
    assert isinstance(invalid, ValueError) and not invalid.retryable
    assert (invalid.field, invalid.reason) == ("subject", "must not be empty")
    assert not ErrorClass.MESSAGE_INVALID.bounces and not ErrorClass.MESSAGE_INVALID.pauses_channel


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (550, "5.1.1 <a@example.org>: Recipient address rejected", "5.1.1"),
        (556, "5.1.10 null MX", "5.1.10"),
        (451, "4.7.1 Greylisted, see https://example.org", "4.7.1"),
        (250, "2.0.0 Ok: queued as 4ZxY", "2.0.0"),
        (550, "  5.7.1 leading space", "5.7.1"),
        (550, "5.7.1", "5.7.1"),
        (550, "4.7.1 class mismatch", None),
        (550, "User unknown", None),
        (550, "5.1.1000 detail too long", None),
        (550, "see 5.1.1 not at the start", None),
        (550, "first line\n5.1.1 second line", None),
    ],
)
def test_enhanced_status(code: int, text: str, expected: str | None) -> None:
    assert enhanced_status_of(code, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.0.0 Ok: queued as 4ZxY7B2kQmz3", "4ZxY7B2kQmz3"),
        ("OK id=1tXyZa-000AbC-7q", "1tXyZa-000AbC-7q"),
        ("2.0.0 5ABC12345678 Message accepted for delivery", "5ABC12345678"),
        (
            "Ok 0100018c2f6e7d3a-5b1c0b9e-aaaa-bbbb-cccc-000000000000-000000",
            "0100018c2f6e7d3a-5b1c0b9e-aaaa-bbbb-cccc-000000000000-000000",
        ),
        ("Ok short", None),
        ("2.0.0 OK  1700000000 a1b2c3d4e5f6.123 - gsmtp", "a1b2c3d4e5f6.123"),
        ("2.6.0 <id@x> [InternalId=1234567, Hostname=EX1] Queued mail for delivery", "1234567"),
        ("OK", None),
    ],
)
def test_queue_id(text: str, expected: str | None) -> None:
    assert queue_id_of(text) == expected


def test_reply_text_is_flat_and_bounded() -> None:
    reply = SmtpReply.parse(550, "5.1.1 first\n  second  \n\nthird")
    assert reply.text == "5.1.1 first | second | third"
    assert reply.enhanced_status == "5.1.1"
    assert str(reply) == "550 5.1.1 first | second | third"
    long = short_text("x" * 2000)
    assert len(long) == 512 and long.endswith("…")
