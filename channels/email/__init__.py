"""Email adapter: pure MIME building, SMTP answer classification, the SMTP sender.

- `mime`: `OutboundEmail`, `build_message` (stdlib `EmailMessage`, the reference) and the shared
  validation (`prepare`, raising `MessageInvalid`).
- `fastmime`: `build_message_fast`, the same message written directly (~15x faster); checked
  against `mime` by property-based tests. Use it on the sending path.
- `errors`: the `EmailError` tree and the pure `classify(stage, code, enhanced_status, message)`.
- `replies`: pure reading of SMTP replies (enhanced status codes, queue ids).
- `pacing`: `MessagePacer`, messages per second for one relay.
- `smtp`: `SmtpSender`, the only module here that does I/O.
"""

from channels.email.errors import (
    ChannelMisconfigured,
    ConnectionFailed,
    EmailError,
    ErrorClass,
    MessageInvalid,
    RecipientRejected,
    SendTimedOut,
    SmtpStage,
    TemporaryFailure,
    classify,
    error_from_reply,
)
from channels.email.fastmime import build_message_fast
from channels.email.mime import (
    OutboundEmail,
    build_email_message,
    build_message,
    message_id_for,
)
from channels.email.pacing import MessagePacer
from channels.email.replies import SmtpReply
from channels.email.smtp import SmtpReceipt, SmtpSender, TlsMode

__all__ = [
    "ChannelMisconfigured",
    "ConnectionFailed",
    "EmailError",
    "ErrorClass",
    "MessageInvalid",
    "MessagePacer",
    "OutboundEmail",
    "RecipientRejected",
    "SendTimedOut",
    "SmtpReceipt",
    "SmtpReply",
    "SmtpSender",
    "SmtpStage",
    "TemporaryFailure",
    "TlsMode",
    "build_email_message",
    "build_message",
    "build_message_fast",
    "classify",
    "error_from_reply",
    "message_id_for",
]
