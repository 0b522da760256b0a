"""The one error rendering raises: `RenderError(field, message)`.

It is a `ValidationFailed` (422) so that a template refused when a campaign is saved reaches the
API as a per-field problem without translation; at send time the dispatcher catches it and fails
that one delivery as `failed.render` (DESIGN section 7).
"""

from __future__ import annotations

from typing import Literal

from orchestrator.errors import FieldError, ValidationFailed

RenderErrorCode = Literal[
    "syntax",  # the template does not parse or compile
    "unknown_variable",  # a top-level name that no template receives
    "undefined",  # a value the template asked for is missing (StrictUndefined)
    "forbidden",  # the sandbox refused an attribute or a call
    "timeout",  # the render ran past its time limit
    "too_large",  # output, an intermediate value or a loop ran past its size limit
    "invalid",  # wrong shape of a non-template field (button labels)
    "error",  # anything else the template raised (division by zero, bad filter argument...)
]


class RenderError(ValidationFailed):
    slug = "template-invalid"
    title = "A template cannot be rendered"

    def __init__(self, field: str, message: str, *, code: RenderErrorCode = "error") -> None:
        super().__init__(f"{field}: {message}", errors=[FieldError(field, message, code)])
        self.field = field
        self.message = message
        self.code: RenderErrorCode = code
