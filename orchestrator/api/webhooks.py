"""`/webhooks/messenger/{app_id}`: Meta's verification handshake and the signed event POSTs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from orchestrator import webhooks
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep
from orchestrator.errors import Forbidden

router = APIRouter(prefix="/webhooks/messenger", tags=["webhooks"])


@router.get("/{app_id}", response_class=PlainTextResponse)
async def verify(
    app_id: str,
    session: SessionDep,
    resources: ResourcesDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=200)] = None,
) -> PlainTextResponse:
    """Reference 4.1: answer the raw `hub.challenge` for this app's verify token, else 403."""
    ok = await webhooks.verify_subscription(
        session, resources.keyring, app_id=app_id, mode=mode, token=token
    )
    if not ok or challenge is None:
        raise Forbidden("The verify token does not match this app")
    return PlainTextResponse(challenge)


@router.post("/{app_id}", status_code=200)
async def receive(app_id: str, request: Request, resources: ResourcesDep, now: NowDep) -> Response:
    """Checks the signature over the raw bytes, stores every event, commits, then answers 200
    (within Meta's 5 seconds: nothing is applied here). Concurrent deliveries share commits."""
    raw = await request.body()
    # A short read of its own (only on a cache miss), closed before the batched write: on SQLite
    # a transaction held here would block the batch's own.
    async with resources.sessions() as session:
        body = await webhooks.verify(
            session,
            resources.keyring,
            app_id=app_id,
            raw_body=raw,
            signature=request.headers.get("x-hub-signature-256"),
            now=now,
            cache=resources.webhook_routing,
        )
    stored, duplicates = await resources.inbox_batcher.submit(
        resources.sessions, body, cache=resources.webhook_routing
    )
    return Response(
        content=f'{{"stored":{stored},"duplicates":{duplicates}}}', media_type="application/json"
    )
