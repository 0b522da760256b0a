"""The write side of campaigns: create, launch, pause, resume, cancel (DESIGN section 7).

Status changes are conditional updates (`WHERE status IN (...)`), so an operator's pause and the
scheduler starting a run cannot both win: whoever comes second sees the new status and gets 409.
Services never commit; the request owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.campaigns import runs
from orchestrator.campaigns.queries import get_campaign
from orchestrator.campaigns.spec import CampaignSpec, validate_campaign
from orchestrator.db import rows_affected
from orchestrator.delivery_states import Event, State, sources_of, transition
from orchestrator.errors import Conflict, FieldError, ValidationFailed
from orchestrator.ids import new_id
from orchestrator.models import Campaign, CampaignRun, Delivery, Page, table_of
from orchestrator.policy import Reason

PAUSABLE: Final = ("running", "scheduled")
FINAL_STATUSES: Final = frozenset({"completed", "cancelled"})
CANCELLABLE: Final = ("draft", "scheduled", "running", "paused")
OPEN_RUN_STATUSES: Final = ("planning", "running")
# A claimed delivery is in flight: the dispatcher owns it and sees the cancelled campaign itself.
CANCELLED_FROM: Final = tuple(
    sorted(s.value for s in sources_of(Event.CANCEL) if s is not State.CLAIMED)
)
(CANCELLED_TO,) = {transition(source, Event.CANCEL) for source in CANCELLED_FROM}


class CampaignStatusConflict(Conflict):
    slug = "campaign-status-conflict"
    title = "The campaign's status does not allow this"


class CampaignPagePaused(Conflict):
    slug = "campaign-page-paused"
    title = "The campaign's Page is paused"


def trigger_index(spec: CampaignSpec) -> tuple[str | None, str | None]:
    """(`trigger_on`, `trigger_key`): what a firing event is looked up by."""
    trigger = spec.trigger
    if trigger is None:
        return None, None
    if trigger.on == "captured":
        return trigger.on, trigger.form_id
    if trigger.on == "tag_added":
        return trigger.on, trigger.tag
    return trigger.on, trigger.page_id


def _page_references(body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, page id) pairs of the body that must name a Page of the workspace."""
    page_id = body.get("page_id")
    if isinstance(page_id, str) and page_id.strip():
        yield "page_id", page_id.strip()
    trigger = body.get("trigger")
    if isinstance(trigger, Mapping) and trigger.get("on") == "first_message":
        trigger_page = trigger.get("page_id")
        if isinstance(trigger_page, str) and trigger_page.strip():
            yield "trigger.page_id", trigger_page.strip()


async def _unknown_pages(
    session: AsyncSession, *, workspace_id: str, body: Mapping[str, Any]
) -> list[FieldError]:
    references = list(_page_references(body))
    if not references:
        return []
    pages = table_of(Page)
    known = set(
        (
            await session.execute(
                sa.select(pages.c.page_id).where(
                    pages.c.workspace_id == workspace_id,
                    pages.c.page_id.in_({page_id for _, page_id in references}),
                )
            )
        ).scalars()
    )
    return [
        FieldError(field, "no such Page in this workspace", "not_found")
        for field, page_id in references
        if page_id not in known
    ]


async def create_campaign(
    session: AsyncSession, *, workspace_id: str, body: Mapping[str, Any], now: datetime
) -> Campaign:
    """A draft. Every problem is reported at once: the body's and unknown Pages together."""
    errors: list[FieldError] = []
    spec: CampaignSpec | None = None
    try:
        spec = validate_campaign(body)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    errors.extend(await _unknown_pages(session, workspace_id=workspace_id, body=body))
    if errors or spec is None:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
    trigger_on, trigger_key = trigger_index(spec)
    campaign = Campaign(
        id=new_id("cmp"),
        workspace_id=workspace_id,
        name=spec.name,
        page_id=spec.page_id,
        purpose=spec.purpose,
        topic=spec.topic,
        spec=spec.model_dump(mode="json"),
        status="draft",
        trigger_on=trigger_on,
        trigger_key=trigger_key,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def launch_campaign(
    session: AsyncSession, *, workspace_id: str, campaign_id: str, now: datetime
) -> tuple[Campaign, CampaignRun | None]:
    campaign = await get_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    if campaign.status != "draft":
        raise CampaignStatusConflict(
            f"Only a draft can be launched; this campaign is {campaign.status}",
            errors=[FieldError("status", f"is {campaign.status}", "conflict")],
        )
    run = await runs.launch(session, campaign=campaign, now=now)
    await session.flush()
    await session.refresh(campaign)
    return campaign, run


def _rowcount(result: Any) -> int:
    return rows_affected(result)


async def _page_paused_reason(session: AsyncSession, campaign: Campaign) -> str | None:
    pages = table_of(Page)
    row = (
        await session.execute(
            sa.select(pages.c.paused_at, pages.c.paused_reason).where(
                pages.c.page_id == campaign.page_id,
                pages.c.workspace_id == campaign.workspace_id,
            )
        )
    ).first()
    if row is None or row.paused_at is None:
        return None
    return row.paused_reason or "paused"


async def _set_status(
    session: AsyncSession,
    campaign: Campaign,
    *,
    allowed: tuple[str, ...],
    action: str,
    values: Mapping[str, Any],
) -> Campaign:
    campaigns = table_of(Campaign)
    result = await session.execute(
        sa.update(campaigns)
        .where(campaigns.c.id == campaign.id, campaigns.c.status.in_(allowed))
        .values(**values)
    )
    if _rowcount(result) == 0:
        await session.refresh(campaign)
        raise CampaignStatusConflict(
            f"A {campaign.status} campaign cannot be {action}; it must be " + " or ".join(allowed),
            errors=[FieldError("status", f"is {campaign.status}", "conflict")],
        )
    await session.refresh(campaign)
    return campaign


async def pause_campaign(
    session: AsyncSession, *, workspace_id: str, campaign_id: str, now: datetime
) -> Campaign:
    """running | scheduled -> paused. The dispatcher claims nothing of a paused campaign and the
    scheduler starts no run of it; `next_run_at` is kept, which is how resume knows where to go."""
    campaign = await get_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    return await _set_status(
        session,
        campaign,
        allowed=PAUSABLE,
        action="paused",
        values={"status": "paused", "paused_at": now, "updated_at": now},
    )


async def resume_campaign(
    session: AsyncSession, *, workspace_id: str, campaign_id: str, now: datetime
) -> Campaign:
    """paused -> scheduled when a next run is planned, running otherwise. Refused while the Page
    is paused: resuming would only fail its sends as `failed.page_paused`."""
    campaign = await get_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    page_reason = await _page_paused_reason(session, campaign)
    if page_reason is not None and campaign.status == "paused":
        raise CampaignPagePaused(
            f"Page {campaign.page_id} is paused ({page_reason}); fix the Page first "
            "(a new access token resumes it), then resume the campaign",
            errors=[FieldError("page_id", "the Page is paused", "page_paused")],
        )
    campaigns = table_of(Campaign)
    return await _set_status(
        session,
        campaign,
        allowed=("paused",),
        action="resumed",
        values={
            "status": sa.case((campaigns.c.next_run_at.is_not(None), "scheduled"), else_="running"),
            "paused_at": None,
            "updated_at": now,
        },
    )


async def cancel_campaign(
    session: AsyncSession, *, workspace_id: str, campaign_id: str, now: datetime
) -> Campaign:
    """Any non-final status -> cancelled. Deliveries not yet in flight are cancelled in one
    statement; open runs end."""
    campaign = await get_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    await _set_status(
        session,
        campaign,
        allowed=CANCELLABLE,
        action="cancelled",
        values={
            "status": "cancelled",
            "cancelled_at": now,
            "next_run_at": None,
            "updated_at": now,
        },
    )
    deliveries = table_of(Delivery)
    await session.execute(
        sa.update(deliveries)
        .where(
            deliveries.c.campaign_id == campaign.id,
            deliveries.c.workspace_id == workspace_id,
            deliveries.c.state.in_(CANCELLED_FROM),
        )
        .values(
            state=CANCELLED_TO.value,
            reason=Reason.SKIPPED_CANCELLED.value,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    runs = table_of(CampaignRun)
    await session.execute(
        sa.update(runs)
        .where(runs.c.campaign_id == campaign.id, runs.c.status.in_(OPEN_RUN_STATUSES))
        .values(status="cancelled", completed_at=now)
    )
    return campaign
