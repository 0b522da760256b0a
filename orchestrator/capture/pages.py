"""The double opt-in pages (`templates/pages/capture_*.html`): HTML strings, no I/O beyond the
templates loaded once."""

from __future__ import annotations

from orchestrator.capture.spins import SpinView
from orchestrator.rendering.layouts import render_layout


def render_confirm_page(*, action_url: str, address_hint: str, sender_name: str | None) -> str:
    return render_layout(
        "pages",
        "capture_confirm.html",
        action=action_url,
        address_hint=address_hint,
        sender_name=sender_name,
    )


def render_confirmed_page(
    *,
    address_hint: str,
    sender_name: str | None,
    spin: SpinView | None,
    messenger_url: str | None,
) -> str:
    return render_layout(
        "pages",
        "capture_confirmed.html",
        address_hint=address_hint,
        sender_name=sender_name,
        spin=spin,
        messenger_url=messenger_url,
    )
