"""`/v1/campaigns`: create, launch, pause, resume, cancel; runs, deliveries, stats, preview."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Body, Query, Response

from orchestrator.api.deps import (
    IdempotencyDep,
    NowDep,
    ResourcesDep,
    SessionDep,
    WorkspaceIdDep,
)
from orchestrator.campaigns import control, preview, queries
from orchestrator.delivery_states import State
from orchestrator.models import CAMPAIGN_STATUSES
from orchestrator.policy import Reason
from orchestrator.schemas import ListPage, OutputModel

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
assert set(get_args(CampaignStatus)) == set(CAMPAIGN_STATUSES)
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=500)]


class CampaignPublic(OutputModel):
    id: str
    name: str
    page_id: str
    purpose: str
    topic: str | None
    status: str
    paused_reason: str | None
    audience: dict[str, Any] | None
    trigger: dict[str, Any] | None
    steps: list[dict[str, Any]]
    schedule: str | dict[str, Any] | None
    send_window: dict[str, Any] | None
    frequency_cap: int | None
    frequency_cap_period: str | None
    throttle: dict[str, Any] | None
    next_run_at: datetime | None
    launched_at: datetime | None
    paused_at: datetime | None
    cancelled_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignLaunched(CampaignPublic):
    run_id: str | None


class RunPublic(OutputModel):
    id: str
    kind: str
    occurrence: str
    contact_id: str | None
    status: str
    audience_count: int
    started_at: datetime
    planned_at: datetime | None
    completed_at: datetime | None


class CampaignDeliveryPublic(OutputModel):
    id: str
    run_id: str | None
    step_index: int | None
    contact_id: str
    state: str
    reason: str | None
    channel: str | None
    due_at: datetime
    sent_at: datetime | None
    attempts: int
    messaging_type: str | None
    tag: str | None
    last_error: dict[str, Any] | None
    delivered_at: datetime | None
    read_at: datetime | None
    clicked_at: datetime | None


class FunnelPublic(OutputModel):
    fallback_emails: int
    clicked: int
    reopened: int
    completed_on_messenger: int
    unsubscribed: int


class CampaignStatsPublic(OutputModel):
    audience: int
    by_state: dict[str, int]
    sent_by_route: dict[str, int]
    skipped_by_reason: dict[str, int]
    failed_by_reason: dict[str, int]
    funnel: FunnelPublic


class PreviewDecision(OutputModel):
    route: str
    reason: str
    messaging_type: str | None
    tag: str | None
    page_id: str | None
    due_at: str | None = None
    refused_tag: str | None = None


class PreviewMessenger(OutputModel):
    text: str
    quick_replies: list[dict[str, Any]]
    buttons: list[dict[str, Any]]


class PreviewEmail(OutputModel):
    subject: str
    html: str
    text: str


class PreviewError(OutputModel):
    field: str
    message: str
    code: str


class PreviewPublic(OutputModel):
    decision: PreviewDecision
    messenger: PreviewMessenger | None
    email: PreviewEmail | None
    error: PreviewError | None = None


def _public(view: dict[str, Any]) -> CampaignPublic:
    return CampaignPublic.model_validate(view)


@router.post("", status_code=201, response_model=CampaignPublic)
async def create_campaign(
    body: Annotated[dict[str, Any], Body()],
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """A draft campaign (DESIGN section 7). Every problem comes back at once, each naming its
    field (`steps[1].delay.after`, `page_id`); `POST /v1/campaigns/{id}/launch` starts it."""
    if idem.replayed is not None:
        return idem.replayed
    campaign = await control.create_campaign(session, workspace_id=workspace_id, body=body, now=now)
    view = await queries.view(session, workspace_id=workspace_id, campaign_id=campaign.id)
    return await idem.respond(201, _public(view))


@router.get("", response_model=ListPage[CampaignPublic])
async def list_campaigns(
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    status: Annotated[CampaignStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[CampaignPublic]:
    """Newest first; `status` filters on the stored status (a Page pause shows as `paused` in
    each campaign but is not stored, so `?status=paused` lists operators' pauses)."""
    views, next_cursor = await queries.list_campaigns(
        session, workspace_id=workspace_id, status=status, limit=limit, cursor=cursor
    )
    return ListPage[CampaignPublic](data=[_public(v) for v in views], next_cursor=next_cursor)


@router.get("/{campaign_id}", response_model=CampaignPublic)
async def read_campaign(
    campaign_id: str, session: SessionDep, workspace_id: WorkspaceIdDep
) -> CampaignPublic:
    return _public(await queries.view(session, workspace_id=workspace_id, campaign_id=campaign_id))


@router.post("/{campaign_id}/launch", status_code=202, response_model=CampaignLaunched)
async def launch_campaign(
    campaign_id: str,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """draft -> running (a run is created and planned by the scheduler), scheduled (`at`,
    `cron`), or running without a run (a trigger campaign). A repeated `Idempotency-Key` gets
    the first answer; launching anything but a draft is 409."""
    if idem.replayed is not None:
        return idem.replayed
    campaign, run = await control.launch_campaign(
        session, workspace_id=workspace_id, campaign_id=campaign_id, now=now
    )
    view = await queries.view(session, workspace_id=workspace_id, campaign_id=campaign.id)
    launched = CampaignLaunched.model_validate({**view, "run_id": run.id if run else None})
    return await idem.respond(202, launched)


@router.post("/{campaign_id}/pause", response_model=CampaignPublic)
async def pause_campaign(
    campaign_id: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> CampaignPublic:
    """running | scheduled -> paused: nothing of it is sent and no run starts until resumed."""
    await control.pause_campaign(
        session, workspace_id=workspace_id, campaign_id=campaign_id, now=now
    )
    return _public(await queries.view(session, workspace_id=workspace_id, campaign_id=campaign_id))


@router.post("/{campaign_id}/resume", response_model=CampaignPublic)
async def resume_campaign(
    campaign_id: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> CampaignPublic:
    """paused -> scheduled (a next run is planned) or running. 409 while the Page is paused."""
    await control.resume_campaign(
        session, workspace_id=workspace_id, campaign_id=campaign_id, now=now
    )
    return _public(await queries.view(session, workspace_id=workspace_id, campaign_id=campaign_id))


@router.post("/{campaign_id}/cancel", response_model=CampaignPublic)
async def cancel_campaign(
    campaign_id: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> CampaignPublic:
    """Any status but completed or cancelled -> cancelled. Deliveries not in flight become
    `cancelled` with reason `skipped.cancelled`; sent ones are untouched."""
    await control.cancel_campaign(
        session, workspace_id=workspace_id, campaign_id=campaign_id, now=now
    )
    return _public(await queries.view(session, workspace_id=workspace_id, campaign_id=campaign_id))


@router.get("/{campaign_id}/runs", response_model=ListPage[RunPublic])
async def list_runs(
    campaign_id: str,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[RunPublic]:
    rows, next_cursor = await queries.list_runs(
        session, workspace_id=workspace_id, campaign_id=campaign_id, limit=limit, cursor=cursor
    )
    return ListPage[RunPublic](
        data=[RunPublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{campaign_id}/deliveries", response_model=ListPage[CampaignDeliveryPublic])
async def list_deliveries(
    campaign_id: str,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    state: Annotated[State | None, Query()] = None,
    reason: Annotated[Reason | None, Query()] = None,
    channel: Annotated[Literal["messenger", "email"] | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ListPage[CampaignDeliveryPublic]:
    rows, next_cursor = await queries.list_deliveries(
        session,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        filters=queries.DeliveryFilter(
            state=state.value if state else None,
            reason=reason.value if reason else None,
            channel=channel,
        ),
        limit=limit,
        cursor=cursor,
    )
    return ListPage[CampaignDeliveryPublic](
        data=[CampaignDeliveryPublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{campaign_id}/stats", response_model=CampaignStatsPublic)
async def read_stats(
    campaign_id: str, session: SessionDep, workspace_id: WorkspaceIdDep
) -> CampaignStatsPublic:
    """`by_state` has every state and adds up to the number of deliveries; the funnel follows
    fallback emails to clicks, reopened conversations, later Messenger steps and unsubscribes."""
    stats = await queries.stats(session, workspace_id=workspace_id, campaign_id=campaign_id)
    return CampaignStatsPublic.model_validate(stats, from_attributes=True)


@router.post("/{campaign_id}/preview", response_model=PreviewPublic)
async def preview_campaign(
    campaign_id: str,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    contact_id: Annotated[str, Query(min_length=1, max_length=64)],
    step: Annotated[int, Query(ge=0)] = 0,
) -> PreviewPublic:
    """What step `step` would do for the contact now: the decision, and the message rendered
    for its route. Nothing is sent or written; a template that fails for this contact comes
    back as `error` next to the decision."""
    settings = resources.settings
    result = await preview.preview_step(
        session,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        contact_id=contact_id,
        step_index=step,
        now=now,
        settings=preview.PreviewSettings(
            public_url=settings.public_url,
            default_from=settings.email_from,
            takeover_quiet=timedelta(seconds=settings.takeover_quiet_seconds),
        ),
    )
    return PreviewPublic.model_validate(result, from_attributes=True)
