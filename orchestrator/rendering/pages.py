"""The public pages behind email links (`templates/pages/`): HTML strings, no I/O beyond the
templates loaded once. Vietnamese first with English beneath, since the reader's language is
rarely known when a link is opened."""

from __future__ import annotations

from typing import Literal

from orchestrator.rendering.layouts import render_layout

LinkProblem = Literal["invalid", "expired"]


def render_unsubscribe_page(*, action_url: str, sender_name: str | None = None) -> str:
    """One button that POSTs to `action_url`; opening the page changes nothing."""
    return render_layout(
        "pages", "unsubscribe.html", action=action_url, done=False, sender_name=sender_name
    )


def render_unsubscribed_page(
    *, address_hint: str | None = None, sender_name: str | None = None
) -> str:
    return render_layout(
        "pages",
        "unsubscribe.html",
        action="",
        done=True,
        address_hint=address_hint,
        sender_name=sender_name,
    )


def render_subscription_confirmed_page(
    *, address_hint: str | None = None, sender_name: str | None = None
) -> str:
    return render_layout(
        "pages", "confirmed.html", address_hint=address_hint, sender_name=sender_name
    )


def render_link_error_page(*, problem: LinkProblem) -> str:
    return render_layout("pages", "error.html", reason=problem)
