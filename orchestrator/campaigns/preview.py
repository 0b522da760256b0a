"""What one step of a campaign would do for one contact now: the policy's decision and the
rendered message, built the way the dispatcher builds them (dispatch.py `_plan`). Reads only:
nothing is sent, no delivery or link token is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from channels.messenger.errors import PayloadInvalid
from channels.messenger.payloads import validate_message
from orchestrator import outbound_email, reachability, rendering
from orchestrator.campaigns import runs, steps
from orchestrator.campaigns.queries import get_campaign
from orchestrator.campaigns.spec import Step
from orchestrator.errors import FieldError, ValidationFailed
from orchestrator.models import Page
from orchestrator.policy import Decision, Route

# Preview links lead nowhere on purpose: a real click token would name a delivery that does
# not exist, and a click on a previewed email must not record anything.
PREVIEW_LINK_PATHS: Final = ("r/preview-support", "r/preview-subscribe", "u/preview")


@dataclass(frozen=True)
class PreviewSettings:
    public_url: str
    default_from: str
    takeover_quiet: timedelta


@dataclass(frozen=True)
class Preview:
    decision: dict[str, Any]
    messenger: dict[str, Any] | None = None
    email: dict[str, str] | None = None
    error: dict[str, str] | None = None


def decision_shape(decision: Decision, page_id: str) -> dict[str, Any]:
    """DESIGN section 7's decision shape, as reachability shows it (never a token id)."""
    shape = decision.as_dict()
    shape.pop("token_id", None)
    shape["page_id"] = page_id
    return shape


def preview_links(public_url: str) -> rendering.FallbackLinks:
    base = public_url.rstrip("/")
    support, subscribe, unsubscribe = (f"{base}/{path}" for path in PREVIEW_LINK_PATHS)
    return rendering.FallbackLinks(
        support_url=support, subscribe_url=subscribe, unsubscribe_url=unsubscribe
    )


async def preview_step(
    session: AsyncSession,
    *,
    workspace_id: str,
    campaign_id: str,
    contact_id: str,
    step_index: int,
    now: datetime,
    settings: PreviewSettings,
) -> Preview:
    campaign = await get_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    spec = runs.spec_of(campaign)
    if not 0 <= step_index < len(spec.steps):
        raise ValidationFailed(
            f"This campaign has steps 0 to {len(spec.steps) - 1}",
            errors=[FieldError("query.step", f"no step {step_index}", "out_of_range")],
        )
    facts = await reachability.load_facts(
        session, workspace_id=workspace_id, contact_id=contact_id, page_id=campaign.page_id
    )
    page = facts.pages.get(campaign.page_id)
    # The context the dispatcher would build (dispatch.py `_plan`), campaign part included.
    context = await steps.campaign_context(
        session,
        reachability.send_context(
            facts,
            page_id=campaign.page_id,
            message=steps.message_spec(spec, step_index, hold_deadline=None),
            now=now,
            quiet=settings.takeover_quiet,
        ),
        spec=spec,
        cancelled=campaign.status == "cancelled",
        contact=facts.contact,
        now=now,
    )
    content = steps.content_of(spec, step_index)
    decision = steps.decide_step(context, content)
    shape = decision_shape(decision, campaign.page_id)
    step = spec.steps[step_index]
    at = f"steps[{step_index}]"
    try:
        if decision.route is Route.MESSENGER:
            return Preview(shape, messenger=_messenger(step, facts, page, at=at, name=spec.name))
        if decision.route is Route.EMAIL:
            return Preview(
                shape, email=_email(content, facts, page, at=at, settings=settings, name=spec.name)
            )
    except rendering.RenderError as exc:
        return Preview(shape, error=exc.errors[0].as_dict())
    except PayloadInvalid as exc:
        return Preview(shape, error=FieldError(exc.field, exc.reason).as_dict())
    return Preview(shape)


def _messenger(
    step: Step, facts: reachability.ContactFacts, page: Page | None, *, at: str, name: str
) -> dict[str, Any]:
    if step.messenger is None:
        raise rendering.RenderError(
            f"{at}.messenger", "the step has no Messenger content", code="invalid"
        )
    text = rendering.render_messenger_text(
        step.messenger.text,
        outbound_email.template_context(facts.contact, facts.email, page, None, name),
        field=f"{at}.messenger.text",
    )
    # The message as the dispatcher builds it; Meta's length limits apply to the rendered text.
    message: dict[str, Any] = {"text": text}
    if step.messenger.quick_replies:
        message["quick_replies"] = step.messenger.quick_replies
    if step.messenger.buttons:
        template = {"template_type": "button", "text": text, "buttons": step.messenger.buttons}
        message = {"attachment": {"type": "template", "payload": template}}
    validate_message(message, f"{at}.messenger")
    return {
        "text": text,
        "quick_replies": step.messenger.quick_replies,
        "buttons": step.messenger.buttons,
    }


def _email(
    content: dict[str, Any],
    facts: reachability.ContactFacts,
    page: Page | None,
    *,
    at: str,
    settings: PreviewSettings,
    name: str,
) -> dict[str, str]:
    email = content.get("email")
    if not email or facts.email is None:
        raise rendering.RenderError(f"{at}.email", "the step has no email content", code="invalid")

    workspace = facts.workspace
    sender, _ = outbound_email.sender_of(workspace, settings.default_from)
    rendered = rendering.render_step_email(
        email=rendering.EmailStepTemplates(
            subject=str(email.get("subject", "")),
            html=str(email.get("html", "")),
            text=email.get("text"),
            buttons=email.get("buttons"),
        ),
        context=outbound_email.template_context(
            facts.contact, facts.email, page, preview_links(settings.public_url), name
        ),
        sender=sender,
        field=f"{at}.email",
    )
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}
