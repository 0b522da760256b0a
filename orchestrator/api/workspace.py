"""`/v1/workspace`: the caller's own workspace and its sender identity."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter
from pydantic import Field, field_validator

from orchestrator import workspaces
from orchestrator.api.deps import NowDep, SessionDep, WorkspaceIdDep
from orchestrator.schemas import InputModel, OutputModel

router = APIRouter(prefix="/v1", tags=["workspace"])


class WorkspacePublic(OutputModel):
    id: str
    name: str
    from_name: str | None
    from_address: str | None
    reply_to: str | None
    postal_address: str | None
    timezone: str
    transactional_to_unconfirmed: bool
    created_at: datetime
    updated_at: datetime


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


class WorkspaceUpdate(InputModel):
    from_name: str | None = Field(default=None, max_length=200)
    from_address: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    postal_address: str | None = Field(default=None, max_length=500)
    timezone: str | None = Field(default=None, max_length=64)
    transactional_to_unconfirmed: bool | None = None

    _check_from = field_validator("from_address", "reply_to")(_address)

    @field_validator("timezone", "transactional_to_unconfirmed")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Optional only so a PATCH may leave them out; an explicit null is refused.
        if value is None:
            raise ValueError("may not be null")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value


@router.get("/workspace", response_model=WorkspacePublic)
async def read_workspace(session: SessionDep, workspace_id: WorkspaceIdDep) -> WorkspacePublic:
    workspace = await workspaces.get_workspace(session, workspace_id=workspace_id)
    return WorkspacePublic.model_validate(workspace)


@router.patch("/workspace", response_model=WorkspacePublic)
async def patch_workspace(
    body: WorkspaceUpdate, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> WorkspacePublic:
    changes = body.model_dump(exclude_unset=True)
    workspace = await workspaces.update_workspace(
        session, workspace_id=workspace_id, changes=changes, now=now
    )
    return WorkspacePublic.model_validate(workspace)
