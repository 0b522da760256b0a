"""Request dependencies: resources, the transaction, the caller's workspace (STYLE.md rule 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import idempotency
from orchestrator.apikeys import authenticate
from orchestrator.errors import Unauthorized
from orchestrator.models import ApiKey
from orchestrator.resources import Resources


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def` one in a
# worker thread, a thread hop per dependency per request.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    # The request owns the transaction: commit when the handler returns, roll back on any error,
    # and do it before the response is sent (scope="function") so a failed commit is reported.
    async with resources.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_now(resources: ResourcesDep) -> datetime:
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


class Idempotency:
    """Per-request handle: `replayed` is the stored answer to return as is, else call `respond`."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        workspace_id: str,
        method: str,
        path: str,
        key: str | None,
        replayed: Response | None,
    ) -> None:
        self._session = session
        self._workspace_id = workspace_id
        self._method = method
        self._path = path
        self._key = key
        self.replayed = replayed

    async def respond(self, status_code: int, payload: BaseModel) -> Response:
        body = payload.model_dump_json()
        if self._key is not None:
            await idempotency.store(
                self._session,
                workspace_id=self._workspace_id,
                method=self._method,
                path=self._path,
                key=self._key,
                status_code=status_code,
                body=body,
            )
        return self.rendered(status_code, body)

    @staticmethod
    def rendered(status_code: int, body: str) -> Response:
        return Response(content=body, status_code=status_code, media_type="application/json")


async def get_idempotency(
    request: Request, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> Idempotency:
    key = request.headers.get("idempotency-key")
    method, path = request.method, request.url.path
    if key is None:
        return Idempotency(
            session=session, workspace_id=workspace_id, method=method, path=path, key=None,
            replayed=None,
        )  # fmt: skip
    stored = await idempotency.claim(
        session,
        workspace_id=workspace_id,
        method=method,
        path=path,
        key=key,
        request_hash=idempotency.body_hash(await request.body()),
        now=now,
    )
    replayed = None
    if stored is not None:
        replayed = Idempotency.rendered(stored.status_code, stored.body)
        replayed.headers["idempotent-replayed"] = "true"
    return Idempotency(
        session=session, workspace_id=workspace_id, method=method, path=path, key=key,
        replayed=replayed,
    )  # fmt: skip


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
