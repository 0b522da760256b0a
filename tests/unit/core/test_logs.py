"""Process logging: JSON lines with the context ids, text for a terminal, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from orchestrator.logs import (
    REDACTED,
    JsonFormatter,
    Redactor,
    build_handler,
    configure_logging,
    log_context,
    resolve_format,
)
from orchestrator.settings import Settings

SECRET_KEY = "outreach-secret-key-for-tests-" + "k" * 20
PAGE_TOKEN = "EAAGm0PX4ZCpsBAKZCZBn0mexampleZDZD"
SMTP_PASSWORD = "relay-pass-0123456789"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": "sqlite:///:memory:",
        "secret_key": SECRET_KEY,
        "smtp_username": "relay",
        "smtp_password": SMTP_PASSWORD,
        "log_format": "json",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing through the production handler into a buffer."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs")
    handler = build_handler(settings(), stream=stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_fields_and_the_ids(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info(
        "sent %s",
        "ok",
        extra={"delivery_id": "dl_1", "campaign_id": "cmp_1", "contact_id": "ct_1", "body": "Hi"},
    )
    [line] = lines(stream)
    assert line["message"] == "sent ok"
    assert (line["level"], line["logger"]) == ("INFO", "tests.logs")
    assert (line["delivery_id"], line["campaign_id"], line["contact_id"]) == (
        "dl_1", "cmp_1", "ct_1",
    )  # fmt: skip
    assert str(line["ts"]).endswith("+00:00")
    # Only the known context fields: an arbitrary extra (here a message body) is not emitted.
    assert "body" not in line
    assert "job" not in line


def test_log_context_binds_fields_and_explicit_extra_wins(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with log_context(job="deliveries.dispatch", worker_id="wk_1", delivery_id="dl_ctx"):
        logger.info("inside", extra={"delivery_id": "dl_explicit"})
    logger.info("outside")
    inside, outside = lines(stream)
    assert (inside["job"], inside["worker_id"], inside["delivery_id"]) == (
        "deliveries.dispatch", "wk_1", "dl_explicit",
    )  # fmt: skip
    assert "job" not in outside and "worker_id" not in outside


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        (f"calling graph with {PAGE_TOKEN}", PAGE_TOKEN),
        ("GET /webhooks/messenger/1?hub.verify_token=vt-secret-42&hub.challenge=1", "vt-secret-42"),
        ("{'access_token': 'tok-abcdef-123456'}", "tok-abcdef-123456"),
        ('{"app_secret": "s3cr3t-app-secret"}', "s3cr3t-app-secret"),
        ("key ok_ab12cd34_" + "Z" * 43 + " used", "ok_ab12cd34_" + "Z" * 43),
        (f"signing with {SECRET_KEY}", SECRET_KEY),
        (f"smtp login failed for {SMTP_PASSWORD}", SMTP_PASSWORD),
    ],
)
def test_secrets_are_masked_in_messages(
    captured: tuple[logging.Logger, io.StringIO], text: str, secret: str
) -> None:
    logger, stream = captured
    logger.warning("%s", text)
    output = stream.getvalue()
    assert secret not in output
    assert REDACTED in output


def test_secrets_are_masked_in_tracebacks_and_context_fields(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"token {PAGE_TOKEN} refused")
    except RuntimeError:
        logger.exception("send failed", extra={"job": f"job {PAGE_TOKEN}"})
    [line] = lines(stream)
    assert PAGE_TOKEN not in stream.getvalue()
    assert "RuntimeError: token [REDACTED] refused" in str(line["exc"])
    assert line["job"] == f"job {REDACTED}"


def test_ordinary_text_is_left_alone() -> None:
    redactor = Redactor([SECRET_KEY])
    text = "secret rotation done; EAA is short; ok_1 kept; password reset mail queued"
    assert redactor.redact(text) == text


def test_text_format_for_a_terminal_names_the_ids() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs.text")
    handler = build_handler(settings(log_format="text"), stream=stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("lost the lease", extra={"delivery_id": "dl_9"})
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "WARNING tests.logs.text: lost the lease delivery_id=dl_9" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


@pytest.mark.parametrize(
    ("setting", "is_tty", "chosen"),
    [
        ("auto", True, "text"),
        ("auto", False, "json"),
        ("json", True, "json"),
        ("text", False, "text"),
    ],
)
def test_format_choice(setting: str, is_tty: bool, chosen: str) -> None:
    assert resolve_format(setting, is_tty=is_tty) == chosen


def test_configure_logging_routes_uvicorn_through_the_root_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        handler = configure_logging(settings(log_level="INFO"), stream=stream)
        assert root.handlers == [handler]
        assert isinstance(handler.formatter, JsonFormatter)
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("httpx").info("HTTP Request: POST https://graph/?access_token=x")
        [line] = lines(stream)
        assert (line["logger"], line["message"]) == ("uvicorn.error", "Started server process")
        for quiet in ("httpx", "sqlalchemy.engine.Engine", "aiosqlite", "apscheduler"):
            # SQL parameters are addresses and message bodies: never logged, even at DEBUG.
            assert logging.getLogger(quiet).getEffectiveLevel() >= logging.WARNING, quiet
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
