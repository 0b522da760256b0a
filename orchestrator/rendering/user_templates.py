"""Campaign step content written by users: check it when saved, render it per contact.

Two sandboxes: text (Messenger text, email subject and plain part, button labels) is not escaped,
so `Tôi & bạn` stays `Tôi & bạn`; the email HTML body escapes every value it prints, because the
campaign author is trusted to write HTML but the contact's name and attributes are not. What the
author typed literally is theirs and is not sanitised (mail clients drop scripts anyway).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from functools import lru_cache

from jinja2 import Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from orchestrator.rendering.context import TEMPLATE_VARIABLES, TemplateContext, template_variables
from orchestrator.rendering.errors import RenderError
from orchestrator.rendering.sandbox import (
    DEFAULT_LIMITS,
    GuardedSandbox,
    LimitExceeded,
    RenderLimits,
    compile_guarded,
    render_guarded,
)

_TEXT = GuardedSandbox(autoescape=False)
_HTML = GuardedSandbox(autoescape=True)


def check_template(
    source: str,
    *,
    field: str,
    allowed_variables: Collection[str] = TEMPLATE_VARIABLES,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> None:
    """Refuse a template that does not compile or names a top-level variable no render gives it.

    Checked at save time (DESIGN section 7); per-contact values (a missing attribute) can only
    fail at render time.
    """
    _check_source_size(source, field=field, limits=limits)
    try:
        ast = _TEXT.parse(source)
        _compiled(html=False, source=source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(field, exc) from None
    unknown = sorted(
        meta.find_undeclared_variables(ast) - set(_TEXT.globals) - set(allowed_variables)
    )
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        allowed = ", ".join(sorted(allowed_variables))
        raise RenderError(
            field,
            f"unknown variable{'s' if len(unknown) > 1 else ''} {names}; templates can use {allowed}",
            code="unknown_variable",
        )


def render_user_text(
    source: str, context: TemplateContext, *, field: str, limits: RenderLimits = DEFAULT_LIMITS
) -> str:
    """Render a text template (nothing escaped), NFC-normalised."""
    return _render(source, context, html=False, field=field, limits=limits)


def render_user_html(
    source: str, context: TemplateContext, *, field: str, limits: RenderLimits = DEFAULT_LIMITS
) -> Markup:
    """Render the HTML body of an email step: printed values are escaped, the markup is kept."""
    return Markup(_render(source, context, html=True, field=field, limits=limits))  # noqa: S704 - the sandbox escaped every printed value


def render_messenger_text(
    source: str,
    context: TemplateContext,
    *,
    field: str = "messenger.text",
    limits: RenderLimits = DEFAULT_LIMITS,
) -> str:
    """A Messenger message text: plain, NFC, never HTML-escaped (Messenger shows it verbatim)."""
    return render_user_text(source, context, field=field, limits=limits)


def _render(
    source: str, context: TemplateContext, *, html: bool, field: str, limits: RenderLimits
) -> str:
    _check_source_size(source, field=field, limits=limits)
    try:
        template = _compiled(html=html, source=source)
        rendered = render_guarded(template, template_variables(context), limits)
    except LimitExceeded as exc:
        raise RenderError(field, exc.message, code=exc.code) from None
    except TemplateSyntaxError as exc:
        raise _syntax_error(field, exc) from None
    except UndefinedError as exc:
        raise RenderError(
            field,
            f"{exc.message}; give a value that may be missing a fallback with | default(...)",
            code="undefined",
        ) from None
    except SecurityError as exc:
        raise RenderError(field, f"not allowed in templates: {exc}", code="forbidden") from None
    except OverflowError as exc:  # the sandbox's `range` refuses more than 100000 items
        raise RenderError(field, str(exc), code="too_large") from None
    # A user template can raise anything a filter or operator raises; it fails this render only.
    except Exception as exc:
        raise RenderError(field, f"{type(exc).__name__}: {exc}", code="error") from exc
    return unicodedata.normalize("NFC", rendered)


@lru_cache(maxsize=256)
def _compiled(*, html: bool, source: str) -> Template:
    # One campaign step is rendered for every contact of the audience: compile it once.
    return compile_guarded(_HTML if html else _TEXT, source)


def _check_source_size(source: str, *, field: str, limits: RenderLimits) -> None:
    if len(source) > limits.max_source_chars:
        raise RenderError(
            field,
            f"the template is longer than {limits.max_source_chars} characters",
            code="too_large",
        )


def _syntax_error(field: str, exc: TemplateSyntaxError) -> RenderError:
    return RenderError(field, f"line {exc.lineno}: {exc.message}", code="syntax")
