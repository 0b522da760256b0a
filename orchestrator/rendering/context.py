"""What user-written templates can see: `contact`, `page`, `campaign`, `links`.

A value we do not have is left out rather than set to None, so that `{{ contact.name }}` fails
the render (StrictUndefined) and `{{ contact.name | default('bạn') }}` falls back, as DESIGN
section 7 asks. Empty strings count as missing for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

TEMPLATE_VARIABLES: Final = frozenset({"contact", "page", "campaign", "links"})


@dataclass(frozen=True, slots=True)
class FallbackLinks:
    """Where the fallback email's buttons and footer point (`/r/<token>`, `/u/<token>`)."""

    support_url: str
    subscribe_url: str
    unsubscribe_url: str


@dataclass(frozen=True, slots=True)
class ContactVars:
    name: str | None = None
    locale: str | None = None
    email: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TemplateContext:
    contact: ContactVars
    page_username: str | None = None
    campaign_name: str | None = None
    links: FallbackLinks | None = None


def template_variables(context: TemplateContext) -> dict[str, object]:
    """The mapping handed to a user template; every value is plain data (str, dict, list)."""
    contact = context.contact
    variables: dict[str, object] = {
        "contact": _present(
            name=contact.name,
            locale=contact.locale,
            email=contact.email,
            attributes=dict(contact.attributes),
        ),
        "page": _present(username=context.page_username),
        "campaign": _present(name=context.campaign_name),
    }
    if context.links is not None:
        variables["links"] = {
            "support": context.links.support_url,
            "subscribe": context.links.subscribe_url,
            "unsubscribe": context.links.unsubscribe_url,
        }
    return variables


def _present(**values: object) -> dict[str, object]:
    return {
        key: value
        for key, value in values.items()
        if value is not None and not (isinstance(value, str) and not value.strip())
    }
