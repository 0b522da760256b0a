"""The access log, in place of uvicorn's: one line per HTTP request with the method, the route
template, the status and the duration.

uvicorn's access line holds the raw path and query string, which carry link tokens (`/u/{token}`,
`/c/{token}`, `/r/{token}`) and Meta's `hub.verify_token`; the route template carries neither.
Client addresses are left out too (personal data; the proxy in front logs them if needed).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("outreach.access")

UNMATCHED = "<unmatched>"
# Probed every few seconds by orchestrators and Prometheus: DEBUG unless they fail.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/v1/contacts/{contact_id}`), else a constant:
    an unmatched path is whatever the caller typed, and is not logged."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A duration, not a time of day: the monotonic counter, not orchestrator.clock.
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_of(scope)
            quiet = route in PROBES and status < 500
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %d",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
