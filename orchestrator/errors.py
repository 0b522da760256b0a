"""One error tree for the whole application (STYLE.md rule 4).

Services raise these; the API renders them as `application/problem+json` (RFC 9457) with a
per-field list. Services never raise HTTP exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class OutreachError(Exception):
    status_code: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(OutreachError):
    status_code = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedBody(BadRequest):
    slug = "malformed-body"
    title = "The request body is not valid JSON"


class Unauthorized(OutreachError):
    status_code = 401
    slug = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(OutreachError):
    status_code = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(OutreachError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class Conflict(OutreachError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(OutreachError):
    status_code = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(OutreachError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(OutreachError):
    status_code = 422
    slug = "validation-failed"
    title = "The request has invalid fields"


class TooManyRequests(OutreachError):
    status_code = 429
    slug = "rate-limited"
    title = "Too many requests"


class ServiceUnavailable(OutreachError):
    status_code = 503
    slug = "unavailable"
    title = "Service unavailable"


class WorkspaceNotFound(NotFound):
    slug = "workspace-not-found"
    title = "Workspace not found"


class WorkspaceExists(Conflict):
    slug = "workspace-exists"
    title = "A workspace with this name exists"


class ApiKeyNotFound(NotFound):
    slug = "api-key-not-found"
    title = "API key not found"
