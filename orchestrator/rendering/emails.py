"""The emails we send: the fallback email of a campaign step and the double opt-in confirmation.

Pure: values in, a `RenderedEmail` out. The HTML has its CSS inlined; the text part is never
escaped; everything is NFC (Vietnamese typed on different keyboards arrives composed or not).
MIME building and sending belong to `channels.email`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup

from orchestrator.rendering.context import FallbackLinks, TemplateContext
from orchestrator.rendering.errors import RenderError
from orchestrator.rendering.inlining import inline_css
from orchestrator.rendering.layouts import render_layout
from orchestrator.rendering.phrases import LANGUAGES, PHRASES, Language, language_for
from orchestrator.rendering.plaintext import html_to_text
from orchestrator.rendering.sandbox import DEFAULT_LIMITS, RenderLimits
from orchestrator.rendering.user_templates import (
    check_template,
    render_user_html,
    render_user_text,
)

# The step's `email.buttons` object as DESIGN section 7 shows it:
# {"support": {"vi": "...", "en": "..."}, "subscribe": {"vi": "...", "en": "..."}}
ButtonOverrides = Mapping[str, Mapping[str, str]]

BUTTON_INTENTS: Final = ("support", "subscribe")


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """The workspace's sender, shown in every footer (anti-spam laws want the postal address)."""

    name: str
    postal_address: str


@dataclass(frozen=True, slots=True)
class ButtonLabels:
    support: str
    subscribe: str


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class EmailStepTemplates:
    """A step's `email` object, as written by the campaign author (user templates)."""

    subject: str
    html: str
    text: str | None = None
    buttons: ButtonOverrides | None = None


def default_button_labels(language: Language) -> ButtonLabels:
    phrases = PHRASES[language]
    return ButtonLabels(support=phrases.support_button, subscribe=phrases.subscribe_button)


def check_buttons(buttons: ButtonOverrides | None, *, field: str = "email.buttons") -> None:
    """Save-time check of a step's `buttons` object: known intents and languages, non-empty
    labels that compile as templates."""
    if buttons is None:
        return
    for intent, labels in buttons.items():
        if intent not in BUTTON_INTENTS:
            raise RenderError(
                f"{field}.{intent}",
                f"unknown button; the buttons are {', '.join(BUTTON_INTENTS)}",
                code="invalid",
            )
        for language, label in labels.items():
            label_field = f"{field}.{intent}.{language}"
            if language not in LANGUAGES:
                raise RenderError(
                    label_field,
                    f"unknown language; labels exist in {', '.join(LANGUAGES)}",
                    code="invalid",
                )
            if not isinstance(label, str) or not label.strip():
                raise RenderError(label_field, "a label must be non-empty text", code="invalid")
            check_template(label, field=label_field)


def render_step_email(
    *,
    email: EmailStepTemplates,
    context: TemplateContext,
    sender: SenderIdentity,
    field: str = "email",
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderedEmail:
    """Render a step's user templates for one contact and put them in the fallback layout.

    The contact's locale picks the button language; `context.links` are the buttons' and the
    footer's addresses (the same ones user templates see as `links`). Raises `RenderError`
    naming the field (`email.subject`, `email.buttons.support.en`...).
    """
    if context.links is None:
        raise ValueError("a fallback email needs links (support, subscribe, unsubscribe)")
    language = language_for(context.contact.locale)
    subject = render_user_text(email.subject, context, field=f"{field}.subject", limits=limits)
    content_html = render_user_html(email.html, context, field=f"{field}.html", limits=limits)
    content_text = (
        render_user_text(email.text, context, field=f"{field}.text", limits=limits)
        if email.text and email.text.strip()
        # A plain str: the parser walks a Markup object's characters far more slowly.
        else html_to_text(str(content_html))
    )
    labels = _render_labels(
        email.buttons, language, context, field=f"{field}.buttons", limits=limits
    )
    return render_fallback_email(
        content_html=content_html,
        content_text=content_text,
        subject=subject,
        labels=labels,
        locale=context.contact.locale,
        links=context.links,
        sender=sender,
    )


def render_fallback_email(
    *,
    content_html: Markup,
    content_text: str,
    subject: str,
    labels: ButtonLabels,
    locale: str | None,
    links: FallbackLinks,
    sender: SenderIdentity,
) -> RenderedEmail:
    """The fallback layout around content that is already rendered: `content_html` is trusted
    markup (from `render_user_html`), `subject` and `labels` are plain text."""
    language = language_for(locale)
    variables = {
        "lang": language,
        "t": PHRASES[language],
        "subject": _one_line(subject),
        "sender": sender,
        "unsubscribe_url": links.unsubscribe_url,
        "links": links,
        "labels": labels,
    }
    return RenderedEmail(
        subject=_nfc(_one_line(subject)),
        html=_nfc(
            inline_css(
                render_layout("email", "fallback.html", content_html=content_html, **variables)
            )
        ),
        text=_nfc(render_layout("email", "fallback.txt", content_text=content_text, **variables)),
    )


def render_confirmation_email(
    *, confirm_url: str, sender: SenderIdentity, locale: str | None
) -> RenderedEmail:
    """Double opt-in: one button to confirm. No unsubscribe link: the address is not subscribed
    until the button is pressed, and ignoring the email is the way out."""
    language = language_for(locale)
    phrases = PHRASES[language]
    subject = phrases.confirm_subject.format(sender=_one_line(sender.name))
    variables = {
        "lang": language,
        "t": phrases,
        "subject": subject,
        "sender": sender,
        "unsubscribe_url": None,
        "confirm_url": confirm_url,
    }
    return RenderedEmail(
        subject=_nfc(subject),
        html=_nfc(inline_css(render_layout("email", "confirm.html", **variables))),
        text=_nfc(render_layout("email", "confirm.txt", **variables)),
    )


def resolve_button_labels(buttons: ButtonOverrides | None, language: Language) -> ButtonLabels:
    """The label sources for `language`: the campaign's override if it has one, else ours."""
    defaults = default_button_labels(language)
    overrides = buttons or {}
    return ButtonLabels(
        support=overrides.get("support", {}).get(language) or defaults.support,
        subscribe=overrides.get("subscribe", {}).get(language) or defaults.subscribe,
    )


def _render_labels(
    buttons: ButtonOverrides | None,
    language: Language,
    context: TemplateContext,
    *,
    field: str,
    limits: RenderLimits,
) -> ButtonLabels:
    sources = resolve_button_labels(buttons, language)

    def label(intent: str, source: str) -> str:
        label_field = f"{field}.{intent}.{language}"
        text = _one_line(render_user_text(source, context, field=label_field, limits=limits))
        if not text:
            raise RenderError(label_field, "the label renders empty", code="invalid")
        return text

    return ButtonLabels(
        support=label("support", sources.support), subscribe=label("subscribe", sources.subscribe)
    )


def _one_line(text: str) -> str:
    # A subject or a label is one line: a newline in a header would end it (header injection).
    return " ".join(text.split())


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)
