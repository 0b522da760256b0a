"""A campaign step as the dispatcher and the preview see it: its policy input, its content, its
send window, and the frequency cap. Pure, except `frequency_cap_reached`, which counts.

Step deliveries reference their campaign and step index instead of carrying a copy of the
content (100,000 rows would each hold the same templates); `content_of` rebuilds the content
shape the dispatcher sends from (`messenger.text`, `email.subject/html/text/buttons`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.campaigns.durations import parse_duration
from orchestrator.campaigns.spec import DEFAULT_ZONE, CampaignSpec
from orchestrator.delivery_states import State
from orchestrator.models import Contact, Delivery, table_of
from orchestrator.policy import (
    Decision,
    Fallback,
    MessageSpec,
    MessengerFailure,
    Purpose,
    SendContext,
    decide,
    decide_after_messenger_failure,
)
from orchestrator.policy.send_window import SendWindow
from orchestrator.rendering import RenderError, check_template, html_to_text

# Marks a step delivery whose Messenger window cannot be used inside the send window: the
# step's fallback applies at once (DESIGN section 7).
FALLBACK_NOW = "fallback_now"

_SPECS: dict[tuple[str, str], CampaignSpec] = {}
_SPEC_CACHE_SIZE = 256


def parse_stored(campaign_id: str, spec: dict[str, Any], version: str) -> CampaignSpec:
    """The stored (already validated) spec as a model; cached per campaign and version."""
    key = (campaign_id, version)
    found = _SPECS.get(key)
    if found is None:
        if len(_SPECS) >= _SPEC_CACHE_SIZE:
            _SPECS.clear()
        found = _SPECS[key] = CampaignSpec.model_validate(spec)
    return found


def message_spec(
    spec: CampaignSpec, step_index: int, *, hold_deadline: datetime | None
) -> MessageSpec:
    step = spec.steps[step_index]
    return MessageSpec(
        purpose=Purpose(spec.purpose),
        topic=spec.topic,
        fallback=Fallback(step.fallback),
        hold_deadline=hold_deadline,
    )


def content_of(spec: CampaignSpec, step_index: int) -> dict[str, Any]:
    """The content a `step` delivery is sent from (the dispatcher's shape)."""
    step = spec.steps[step_index]
    content: dict[str, Any] = {
        "purpose": spec.purpose,
        "fallback": step.fallback,
        "campaign_name": spec.name,
    }
    if step.messenger is not None:
        content["messenger"] = step.messenger.model_dump(mode="json")
    if step.email is not None:
        content["email"] = step.email.model_dump(mode="json", exclude_none=True)
        if step.email.text is None:
            derived = text_template_from_html(step.email.html)
            if derived is not None:
                content["email"]["text"] = derived
    elif step.messenger is not None:
        content["email"] = _email_from_messenger(spec.name, step.messenger.text)
    if step.max_wait is not None:
        content["max_wait_seconds"] = int(parse_duration(step.max_wait).total_seconds())
    return content


@lru_cache(maxsize=256)
def text_template_from_html(html: str) -> str | None:
    """The text part's template for a step written without one: its HTML template read as text
    once per step, then rendered per contact, instead of parsing every rendered email's HTML
    (about 2 ms an email: bench/campaign.py). None when the result is not a valid template (a
    Jinja tag split across HTML), so each email's text is then derived from its HTML."""
    text = html_to_text(html, template=True)
    try:
        check_template(text, field="email.text")
    except RenderError:
        return None
    return text


def _email_from_messenger(name: str, text: str) -> dict[str, Any]:
    """A step without email content that still ends up as an email (`wait_for_window` past its
    `max_wait`, as DESIGN section 7's example has it) sends its Messenger text, with the m.me
    buttons the fallback layout adds, under the campaign's name."""
    subject = name if "{" not in name and "%" not in name else name.replace("{", "(")
    # Only &, < and > need escaping to put the template's literal text into HTML; quotes stay,
    # so the Jinja expressions inside still parse.
    return {
        "subject": subject.replace("}", ")"),
        "html": f'<p style="white-space:pre-line">{html.escape(text, quote=False)}</p>',
        "text": text,
    }


def decide_step(context: SendContext, content: Mapping[str, Any]) -> Decision:
    """The policy's decision for a campaign step. A step planned without a usable Messenger
    window, or one with no Messenger content, goes straight to its fallback, still through the
    stop and takeover checks every automated send gets."""
    if content.get(FALLBACK_NOW) or not content.get("messenger"):
        return decide_after_messenger_failure(context, MessengerFailure.WINDOW_CLOSED)
    return decide(context)


def send_window_for(spec: CampaignSpec, contact_zone: str | None) -> SendWindow | None:
    """The campaign's send window in the contact's zone (DESIGN section 7's default when the
    contact has none, or names a zone that no longer parses)."""
    if spec.send_window is None:
        return None
    try:
        return spec.send_window.in_zone(contact_zone or DEFAULT_ZONE)
    except ValueError:
        return spec.send_window.in_zone(DEFAULT_ZONE)


def cap_period(spec: CampaignSpec) -> timedelta:
    return parse_duration(spec.frequency_cap_period)


async def campaign_context(
    session: AsyncSession,
    context: SendContext,
    *,
    spec: CampaignSpec,
    cancelled: bool,
    contact: Contact,
    now: datetime,
    exclude_delivery_id: str | None = None,
) -> SendContext:
    """The campaign's part of the decision: cancelled, its send window in the contact's zone,
    and the frequency cap over promotional sends on every channel (DESIGN section 7)."""
    capped = False
    if spec.frequency_cap is not None and context.message.purpose is Purpose.PROMOTIONAL:
        capped = await frequency_cap_reached(
            session,
            contact_id=contact.id,
            cap=spec.frequency_cap,
            period=cap_period(spec),
            now=now,
            exclude_delivery_id=exclude_delivery_id,
        )
    return replace(
        context,
        cancelled=cancelled,
        send_window=send_window_for(spec, contact.timezone),
        frequency_cap_reached=capped,
    )


async def frequency_cap_reached(
    session: AsyncSession,
    *,
    contact_id: str,
    cap: int | None,
    period: timedelta,
    now: datetime,
    exclude_delivery_id: str | None = None,
) -> bool:
    """Whether the contact already got `cap` promotional messages, on any channel and from any
    campaign, in the `period` before `now` (DESIGN section 7: the cap counts across channels)."""
    if cap is None:
        return False
    table = table_of(Delivery)
    query = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(
            table.c.contact_id == contact_id,
            table.c.state == State.SENT.value,
            table.c.purpose == Purpose.PROMOTIONAL.value,
            table.c.sent_at > now - period,
        )
    )
    if exclude_delivery_id is not None:
        query = query.where(table.c.id != exclude_delivery_id)
    sent = (await session.execute(query)).scalar_one()
    return int(sent) >= cap
