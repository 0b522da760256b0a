"""Process logging for `outreach serve` and `outreach worker`: one JSON object per line (or text
for a person at a terminal), with the ids a log line is about, and never a secret.

A log line carries its context as `extra` fields (`log.info("...", extra={"delivery_id": ...})`)
or from `log_context(...)`, which binds fields for everything logged inside it (one task's work).
Only the fields in `CONTEXT_FIELDS` are emitted: ids and labels, never message bodies or addresses.

Redaction is defence in depth (DESIGN section 11): tokens are kept out of log calls in the first
place; the `Redactor` filter also masks what looks like one (a Bearer value, a Meta access token,
an API key, `key=value` pairs named like secrets, and the configured secret values verbatim).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

from orchestrator.settings import Settings

LogFormat = Literal["json", "text"]

CONTEXT_FIELDS = (
    "campaign_id",
    "run_id",
    "delivery_id",
    "contact_id",
    "workspace_id",
    "job",
    "worker_id",
    # The access log (orchestrator.api.access_log): the route template, never the raw path.
    "method",
    "route",
    "status",
    "duration_ms",
)
REDACTED = "[REDACTED]"

QUIET_LOGGERS = (
    # Full request URLs at INFO, connection traces at DEBUG (DESIGN section 11).
    "httpx",
    "httpcore",
    # At INFO and DEBUG, every SQL statement with its parameters: addresses and message bodies.
    "sqlalchemy",
    "aiosqlite",
    # Every job run at INFO ("Running job ... executed successfully").
    "apscheduler",
)
"""Held at WARNING whatever OUTREACH_LOG_LEVEL says."""

_context: ContextVar[Mapping[str, object]] = ContextVar(
    "outreach_log_context", default=MappingProxyType({})
)

_PATTERNS = (
    # An Authorization header value, wherever it was pasted.
    re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"),
    # Meta access tokens (Page, user and app tokens all start with EAA).
    re.compile(r"\bEAA[0-9A-Za-z_\-]{8,}"),
    # Our API keys: ok_<prefix>_<secret> (orchestrator.apikeys).
    re.compile(r"\bok_[0-9A-Za-z]+_[0-9A-Za-z_\-]{16,}"),
    # key=value and "key": "value" pairs named like a secret (query strings, dict reprs, JSON).
    re.compile(
        r"(?i)((?:access_token|app_secret|verify_token|client_secret|password|secret_key|secret)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
    ),
)


class Redactor(logging.Filter):
    """Masks secrets in the message, the formatted exception and the context fields.

    `secrets` are literal values (the secret keys, the SMTP password) masked wherever they appear.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


class ContextFields(logging.Filter):
    """Copies the fields bound by `log_context` onto each record (an explicit `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Bind context fields (see `CONTEXT_FIELDS`) to everything logged inside, in this task."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def context_of(record: logging.LogRecord) -> dict[str, object]:
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) is not None
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context fields, and `exc`.

    Written here rather than taken from python-json-logger: it is thirty lines over the stdlib
    `json` module, and emitting only the `CONTEXT_FIELDS` (not every `extra`) is the point.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            # The record's own timestamp, taken by `logging` when the call was made.
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(context_of(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = context_of(record)
        if not fields:
            return text
        head, _, rest = text.partition("\n")
        extra = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{head} {extra}" + (f"\n{rest}" if rest else "")


def resolve_format(setting: str, *, is_tty: bool) -> LogFormat:
    if setting == "json":
        return "json"
    if setting == "text":
        return "text"
    return "text" if is_tty else "json"


def secrets_of(settings: Settings) -> list[str]:
    """The configured secret values, to be masked verbatim."""
    values = [key.get_secret_value() for key in settings.secret_keys_old]
    if settings.secret_key is not None:
        values.append(settings.secret_key.get_secret_value())
    if settings.smtp_password is not None:
        values.append(settings.smtp_password.get_secret_value())
    return values


def build_handler(
    settings: Settings, *, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> logging.Handler:
    """A stream handler with the chosen format, the context fields and redaction."""
    target = stream if stream is not None else sys.stderr
    is_tty = bool(getattr(target, "isatty", lambda: False)())
    handler = logging.StreamHandler(target)
    fmt = resolve_format(settings.log_format, is_tty=is_tty)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFields())
    handler.addFilter(Redactor([*secrets_of(settings), *secrets]))
    return handler


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> logging.Handler:
    """Route every logger (ours, uvicorn's, APScheduler's) through one handler on the root.

    uvicorn is started with `log_config=None` and `access_log=False`: its error logger propagates
    here, and the access log is ours (`orchestrator.api.access_log`), which names the route
    template rather than the raw path (paths and query strings carry link tokens and
    `hub.verify_token`).
    """
    handler = build_handler(settings, stream=stream, secrets=secrets)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        # A uvicorn started earlier in this process with its own log config may have set these.
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
