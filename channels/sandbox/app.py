"""The emulator's ASGI surface: Graph API routes plus the `/_emulator/` control routes.

Thin on purpose: each handler turns the HTTP request into plain values, asks the emulator, and
writes its answer back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channels.sandbox.control_api import control_routes
from channels.sandbox.webhook_events import WebhookEvent

if TYPE_CHECKING:
    from channels.sandbox.emulator import GraphEmulator


@dataclass(frozen=True)
class IncomingRequest:
    """A Graph API request as the ASGI layer hands it to the emulator."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass
class GraphAnswer:
    """What the emulator answers; `background` events are posted after the response is sent."""

    status_code: int
    body: bytes
    content_type: str = "application/json"
    background: list[WebhookEvent] = field(default_factory=list)


def build_app(emulator: GraphEmulator) -> Starlette:
    async def graph(request: Request) -> Response:
        incoming = IncomingRequest(
            method=request.method,
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            headers=dict(request.headers),
            body=await request.body(),
        )
        answer = await emulator.handle(incoming)
        background = (
            BackgroundTask(emulator.post_background, answer.background)
            if answer.background
            else None
        )
        return Response(
            answer.body,
            status_code=answer.status_code,
            media_type=answer.content_type,
            background=background,
        )

    routes = [
        *control_routes(emulator),
        Route("/{path:path}", graph, methods=["GET", "POST", "DELETE"]),
    ]
    return Starlette(routes=routes)
