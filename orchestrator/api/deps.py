"""Request dependencies: resources, the transaction, the caller's workspace (STYLE.md rule 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.apikeys import authenticate
from orchestrator.errors import Unauthorized
from orchestrator.models import ApiKey
from orchestrator.resources import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    # The request owns the transaction: commit when the handler returns, roll back on any error,
    # and do it before the response is sent (scope="function") so a failed commit is reported.
    async with resources.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_now(resources: ResourcesDep) -> datetime:
    return resources.clock.now()


NowDep = Annotated[datetime, Depends(get_now)]


async def get_api_key(request: Request, session: SessionDep, now: NowDep) -> ApiKey:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "Send the API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "The Authorization header must be 'Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return await authenticate(session, key=key.strip(), now=now)
    except Unauthorized as exc:
        exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
        raise


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]


def get_workspace_id(api_key: ApiKeyDep) -> str:
    return api_key.workspace_id


WorkspaceIdDep = Annotated[str, Depends(get_workspace_id)]
