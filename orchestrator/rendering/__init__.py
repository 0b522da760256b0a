"""Rendering: our own templates (`templates/`) and the templates campaign authors write.

- `user_templates`: check a user template when it is saved (`check_template`) and render it per
  contact in a time- and size-capped sandbox (`render_user_text`, `render_user_html`,
  `render_messenger_text`); failures are `RenderError(field, message)`.
- `emails`: the fallback email (`render_step_email` from a step's templates, or
  `render_fallback_email` around content already rendered) and the double opt-in email.
- `pages`: the unsubscribe, subscription-confirmed and bad-link pages.

All of it is pure apart from reading the template files once.
"""

from orchestrator.rendering.context import (
    TEMPLATE_VARIABLES,
    ContactVars,
    FallbackLinks,
    TemplateContext,
    template_variables,
)
from orchestrator.rendering.emails import (
    BUTTON_INTENTS,
    ButtonLabels,
    ButtonOverrides,
    EmailStepTemplates,
    RenderedEmail,
    SenderIdentity,
    check_buttons,
    default_button_labels,
    render_confirmation_email,
    render_fallback_email,
    render_step_email,
    resolve_button_labels,
)
from orchestrator.rendering.errors import RenderError, RenderErrorCode
from orchestrator.rendering.layouts import TEMPLATES_DIR, layout_environment
from orchestrator.rendering.pages import (
    LinkProblem,
    render_link_error_page,
    render_subscription_confirmed_page,
    render_unsubscribe_page,
    render_unsubscribed_page,
)
from orchestrator.rendering.phrases import PHRASES, Language, language_for
from orchestrator.rendering.plaintext import html_to_text
from orchestrator.rendering.sandbox import DEFAULT_LIMITS, RenderLimits
from orchestrator.rendering.user_templates import (
    check_template,
    render_messenger_text,
    render_user_html,
    render_user_text,
)

__all__ = [
    "BUTTON_INTENTS",
    "DEFAULT_LIMITS",
    "PHRASES",
    "TEMPLATES_DIR",
    "TEMPLATE_VARIABLES",
    "ButtonLabels",
    "ButtonOverrides",
    "ContactVars",
    "EmailStepTemplates",
    "FallbackLinks",
    "Language",
    "LinkProblem",
    "RenderError",
    "RenderErrorCode",
    "RenderLimits",
    "RenderedEmail",
    "SenderIdentity",
    "TemplateContext",
    "check_buttons",
    "check_template",
    "default_button_labels",
    "html_to_text",
    "language_for",
    "layout_environment",
    "render_confirmation_email",
    "render_fallback_email",
    "render_link_error_page",
    "render_messenger_text",
    "render_step_email",
    "render_subscription_confirmed_page",
    "render_unsubscribe_page",
    "render_unsubscribed_page",
    "render_user_html",
    "render_user_text",
    "resolve_button_labels",
    "template_variables",
]
