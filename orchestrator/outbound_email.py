"""Composing a delivery's email: the fallback email with the m.me buttons (DESIGN section 6).

The buttons point at `/r/<click token>` (support, subscribe), the footer and the List-Unsubscribe
header at `/u/<token>`; the Message-ID is derived from the delivery id, so a retry carries the
same one. Rendering is the sandboxed user template of the step (orchestrator.rendering).
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parseaddr
from typing import Any

from channels.email import OutboundEmail, build_message_fast
from orchestrator import links, rendering
from orchestrator.crypto import KeyRing
from orchestrator.models import Contact, EmailIdentity, Page, Workspace


def template_context(
    contact: Contact,
    email: EmailIdentity | None,
    page: Page | None,
    link_urls: rendering.FallbackLinks | None,
    campaign_name: str | None = None,
) -> rendering.TemplateContext:
    return rendering.TemplateContext(
        contact=rendering.ContactVars(
            name=contact.name,
            locale=contact.locale,
            email=email.address if email else None,
            attributes=dict(contact.attributes or {}),
        ),
        page_username=page.username if page else None,
        campaign_name=campaign_name,
        links=link_urls,
    )


def fallback_links(
    keyring: KeyRing,
    *,
    public_url: str,
    workspace_id: str,
    contact_id: str,
    page_id: str | None,
    email_identity_id: str,
    delivery_id: str,
    now: datetime,
) -> rendering.FallbackLinks:
    def click(intent: links.Intent) -> str:
        if page_id is None:
            return public_url  # no Page to invite to: the button leads home
        token = links.make_click_token(
            keyring,
            links.Click(workspace_id, contact_id, page_id, intent, delivery_id),
            now=now,
        )
        return links.public_url(public_url, "r", token)

    unsubscribe = links.make_unsubscribe_token(
        keyring,
        links.Unsubscribe(workspace_id, contact_id, email_identity_id, delivery_id),
        now=now,
    )
    return rendering.FallbackLinks(
        support_url=click(links.Intent.SUPPORT),
        subscribe_url=click(links.Intent.SUBSCRIBE),
        unsubscribe_url=links.public_url(public_url, "u", unsubscribe),
    )


def sender_of(workspace: Workspace, default_from: str) -> tuple[rendering.SenderIdentity, str]:
    """Who an email is from: the workspace's sender, else the settings' default, and the From
    address; one place for campaign emails, the preview and the double opt-in email."""
    default_name, default_address = parseaddr(default_from)
    sender = rendering.SenderIdentity(
        name=workspace.from_name or default_name or workspace.name,
        postal_address=workspace.postal_address or "",
    )
    return sender, workspace.from_address or default_address


def compose(
    *,
    step_email: dict[str, Any],
    context: rendering.TemplateContext,
    workspace: Workspace,
    default_from: str,
    to_address: str,
    delivery_id: str,
    unsubscribe_mailto: str | None,
    now: datetime,
) -> tuple[bytes, str]:
    """The message bytes and the envelope sender. Raises `RenderError` or `MessageInvalid`."""
    sender, from_address = sender_of(workspace, default_from)
    rendered = rendering.render_step_email(
        email=rendering.EmailStepTemplates(
            subject=str(step_email.get("subject", "")),
            html=str(step_email.get("html", "")),
            text=step_email.get("text"),
            buttons=step_email.get("buttons"),
        ),
        context=context,
        sender=sender,
    )
    assert context.links is not None
    message = OutboundEmail(
        from_address=from_address,
        from_name=sender.name,
        reply_to=workspace.reply_to,
        to_address=to_address,
        to_name=context.contact.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        delivery_id=delivery_id,
        message_id_domain=from_address.rpartition("@")[2] or "localhost",
        list_unsubscribe_url=context.links.unsubscribe_url,
        list_unsubscribe_mailto=unsubscribe_mailto,
    )
    return build_message_fast(message, now=now), from_address
