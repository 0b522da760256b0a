"""`POST /v1/email/events`: bounce and complaint reports from a mail provider or relay.

The documented shape (DESIGN section 13 leaves provider-specific formats for later):

    {"events": [{"type": "bounce" | "complaint", "email": "lan@example.com",
                 "occurred_at": "2026-11-25T10:00:00+07:00"}]}

Each event writes the ledger and the suppression list; unknown addresses are suppressed too.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from orchestrator import email_feedback
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep, WorkspaceIdDep
from orchestrator.schemas import InputModel, OutputModel

router = APIRouter(prefix="/v1/email", tags=["email"])


class EmailEventIn(InputModel):
    type: Literal["bounce", "complaint"]
    email: str = Field(min_length=3, max_length=320)
    occurred_at: AwareDatetime


class EmailEventsIn(InputModel):
    events: list[EmailEventIn] = Field(min_length=1, max_length=1000)


class EmailEventsOut(OutputModel):
    accepted: int
    matched: int


@router.post("/events", response_model=EmailEventsOut)
async def post_events(
    body: EmailEventsIn,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> EmailEventsOut:
    matched = 0
    for event in body.events:
        matched += await email_feedback.record_feedback(
            session,
            resources.keyring,
            workspace_id=workspace_id,
            kind=event.type,
            address=event.email,
            occurred_at=min(event.occurred_at, now),
            now=now,
        )
    return EmailEventsOut(accepted=len(body.events), matched=matched)
