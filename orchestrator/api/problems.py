"""Rendering errors as `application/problem+json` (RFC 9457) and refusing oversized bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.errors import (
    FieldError,
    MalformedBody,
    OutreachError,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_body(error: OutreachError, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:outreach:problem:{error.slug}",
        "title": error.title,
        "status": error.status_code,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    if error.errors:
        body["errors"] = [item.as_dict() for item in error.errors]
    body.update(error.extra)
    return body


def problem_response(error: OutreachError, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem_body(error, instance),
        status_code=error.status_code,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def field_path(loc: Sequence[int | str]) -> str:
    """`("body", "steps", 1, "delay")` -> `steps[1].delay`; the location goes in `location`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path or "body"


def _from_validation(exc: RequestValidationError) -> OutreachError:
    errors: list[FieldError] = []
    for item in exc.errors():
        loc = list(item.get("loc", ()))
        kind = str(item.get("type", "invalid"))
        if kind == "json_invalid":
            ctx = item.get("ctx") or {}
            return MalformedBody(
                f"The body is not valid JSON: {ctx.get('error', 'parse error')}",
                errors=[FieldError("body", "not valid JSON", "json_invalid")],
            )
        location = str(loc[0]) if loc and loc[0] in ("body", "query", "path", "header") else "body"
        rest = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
        name = field_path(rest) if rest else location
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        if location != "body":
            name = f"{location}.{name}" if rest else location
        errors.append(FieldError(name, message, kind))
    return ValidationFailed(
        "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request", errors=errors
    )


def install(app: FastAPI) -> None:
    async def on_outreach_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OutreachError)
        return problem_response(exc, request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_from_validation(exc), request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = OutreachError(str(exc.detail), headers=dict(exc.headers or {}))
        body = problem_body(error, request.url.path)
        body.update(
            type=f"urn:outreach:problem:http-{exc.status_code}",
            title=_http_title(exc.status_code),
            status=exc.status_code,
        )
        return JSONResponse(
            body, status_code=exc.status_code, media_type=PROBLEM_JSON, headers=exc.headers
        )

    async def on_database_busy(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OperationalError)
        if not _database_busy(exc):
            return await on_unexpected(request, exc)
        # SQLite's single writer stayed busy past the busy timeout: a temporary condition of
        # this deployment, not a fault in the request; its transaction rolled back, so nothing
        # was written. The client may retry; PostgreSQL never answers this.
        busy = ServiceUnavailable(
            "The database is busy; retry shortly", headers={"Retry-After": "1"}
        )
        return problem_response(busy, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", extra={"path": request.url.path})
        return problem_response(OutreachError("An unexpected error occurred"), request.url.path)

    app.add_exception_handler(OutreachError, on_outreach_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(OperationalError, on_database_busy)
    app.add_exception_handler(Exception, on_unexpected)


def _database_busy(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


def _http_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413, whether or not Content-Length is honest.

    A declared length over the limit is refused before reading. An undeclared (chunked) body is
    counted as it streams; once over, reading it fails (so no handler runs on a partial body) and
    whatever the app answers to that failure is replaced with 413. `path_limits` gives some
    (method, path) pairs their own limit: file uploads that stream to the database.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_limits: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get((scope["method"], scope["path"]), self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await self._refuse(scope, send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        error = PayloadTooLarge(f"The request body is larger than {limit} bytes")
        body = json.dumps(problem_body(error, scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
