"""One-off Messenger sends (human replies, opt-in requests), conversations, deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from orchestrator import conversations
from orchestrator.api.deps import (
    IdempotencyDep,
    NowDep,
    ResourcesDep,
    SessionDep,
    WorkspaceIdDep,
)
from orchestrator.schemas import InputModel, ListPage, OutputModel

router = APIRouter(prefix="/v1", tags=["messaging"])


class HumanReplyIn(InputModel):
    page_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    text: str = Field(min_length=1, max_length=1999)


class OptinRequestIn(InputModel):
    page_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    topic: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=65)


class DeliveryPublic(OutputModel):
    id: str
    kind: str
    contact_id: str
    page_id: str | None
    campaign_id: str | None
    purpose: str
    topic: str | None
    state: str
    channel: str | None
    reason: str | None
    messaging_type: str | None
    tag: str | None
    attempts: int
    due_at: datetime
    next_attempt_at: datetime | None
    provider_message_id: str | None
    last_error: dict[str, Any] | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    clicked_at: datetime | None
    created_at: datetime


class ConversationPublic(OutputModel):
    contact_id: str
    page_id: str
    psid: str
    waiting_since: datetime | None
    taken_over_at: datetime | None
    last_user_message_at: datetime | None
    window_opened_at: datetime | None


def _quiet(resources: Any) -> timedelta:
    return timedelta(seconds=resources.settings.takeover_quiet_seconds)


@router.post("/contacts/{contact_id}/messages", status_code=202, response_model=DeliveryPublic)
async def send_message(
    contact_id: str,
    body: HumanReplyIn,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """A message written by a person: `RESPONSE` inside the window, `HUMAN_AGENT` up to 7 days
    after the person's last message where the Page allows it; otherwise 409 with the reason.
    Accepted as a delivery; `GET /v1/deliveries/{id}` shows when it went out."""
    if idem.replayed is not None:
        return idem.replayed
    delivery = await conversations.send_human_reply(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=body.page_id,
        text=body.text,
        now=now,
        quiet=_quiet(resources),
    )
    return await idem.respond(202, DeliveryPublic.model_validate(delivery))


@router.post(
    "/contacts/{contact_id}/optin-requests", status_code=202, response_model=DeliveryPublic
)
async def request_optin(
    contact_id: str,
    body: OptinRequestIn,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """Ask the person for a one-time notification on `topic` (inside the window, where the Page
    has `otn_enabled`); the token that comes back lets one message through after the window."""
    if idem.replayed is not None:
        return idem.replayed
    delivery = await conversations.request_optin(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        page_id=body.page_id,
        topic=body.topic,
        title=body.title,
        now=now,
        quiet=_quiet(resources),
    )
    return await idem.respond(202, DeliveryPublic.model_validate(delivery))


@router.get("/conversations", response_model=ListPage[ConversationPublic])
async def list_conversations(
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    status: Annotated[Literal["waiting_for_human", "taken_over"], Query()] = "waiting_for_human",
) -> ListPage[ConversationPublic]:
    rows = await conversations.conversations(
        session, workspace_id=workspace_id, status=status, now=now, quiet=_quiet(resources)
    )
    return ListPage[ConversationPublic](data=[ConversationPublic.model_validate(r) for r in rows])


@router.get("/deliveries/{delivery_id}", response_model=DeliveryPublic)
async def read_delivery(
    delivery_id: str, session: SessionDep, workspace_id: WorkspaceIdDep
) -> DeliveryPublic:
    delivery = await conversations.get_delivery(
        session, workspace_id=workspace_id, delivery_id=delivery_id
    )
    return DeliveryPublic.model_validate(delivery)
