"""HTTP control routes under `/_emulator/`, for driving a standalone emulator (the demo, or a
`python -m channels.sandbox` process). In-process tests call the `GraphEmulator` methods instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.sandbox.records import Page, WebhookDelivery
from channels.sandbox.webhook_events import WebhookEvent

if TYPE_CHECKING:
    from channels.sandbox.emulator import GraphEmulator

PREFIX = "/_emulator"

# URL action name -> GraphEmulator method name.
ACTIONS = {
    "writes": "person_writes",
    "taps_quick_reply": "person_taps_quick_reply",
    "shares_email": "person_shares_email",
    "shares_phone": "person_shares_phone",
    "taps_postback": "person_taps_postback",
    "taps_get_started": "person_taps_get_started",
    "clicks_mme_link": "person_clicks_mme_link",
    "clicks_ad": "person_clicks_ad",
    "accepts_one_time_notification": "person_accepts_one_time_notification",
    "opts_in_to_notifications": "person_opts_in_to_notifications",
    "stops_notifications": "person_stops_notifications",
    "resumes_notifications": "person_resumes_notifications",
    "opts_in_via_plugin": "person_opts_in_via_plugin",
    "reacts": "person_reacts",
    "reads": "person_reads",
    "delivered": "message_delivered",
    "page_inbox_reply": "page_inbox_reply",
    "comments": "person_comments",
}
_DATETIME_KEYS = frozenset(
    {"at", "watermark", "token_expiry", "window_opened_at", "last_message_at", "until"}
)


def plain(value: Any) -> Any:
    """JSON-ready copy of emulator records (datetimes as ISO 8601, bytes as text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Page):
        return {
            "page_id": value.page_id,
            "username": value.username,
            "app_id": value.app_id,
            "webhook_url": value.webhook_url,
            "get_started_payload": value.get_started_payload,
            "subscribed_fields": sorted(value.subscribed_fields),
            "messenger_profile": plain(value.messenger_profile),
            "threads": {psid: plain(state) for psid, state in value.threads.items()},
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return value


def _kwargs(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return {
        key: datetime.fromisoformat(item)
        if key in _DATETIME_KEYS and isinstance(item, str)
        else item
        for key, item in body.items()
    }


Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except (TypeError, ValueError, KeyError) as exc:
            return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=400)

    return guarded


def control_routes(emulator: GraphEmulator) -> list[Route]:
    async def state(_: Request) -> Response:
        return JSONResponse({"pages": [plain(page) for page in emulator.pages.values()]})

    async def pages(request: Request) -> Response:
        page = emulator.register_page(**_kwargs(await request.json()))
        return JSONResponse(plain(page), status_code=201)

    async def people(request: Request) -> Response:
        psid = emulator.add_person(**_kwargs(await request.json()))
        return JSONResponse({"psid": psid}, status_code=201)

    async def action(request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ACTIONS:
            return JSONResponse({"detail": f"unknown action {name!r}"}, status_code=404)
        before = len(emulator.deliveries)
        method = getattr(emulator, ACTIONS[name])
        event: WebhookEvent | None = await method(**_kwargs(await request.json()))
        delivered: list[WebhookDelivery] = emulator.deliveries[before:]
        return JSONResponse(
            {
                "event": plain(event.item) if event is not None else None,
                "deliveries": [_delivery(item) for item in delivered],
            }
        )

    async def requests(_: Request) -> Response:
        return JSONResponse([plain(item) for item in emulator.requests])

    async def sent(_: Request) -> Response:
        return JSONResponse([plain(item) for item in emulator.sent])

    async def deliveries(_: Request) -> Response:
        return JSONResponse([_delivery(item) for item in emulator.deliveries])

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.clear_faults()
            return JSONResponse({"cleared": True})
        if request.method == "GET":
            return JSONResponse([plain(item) for item in emulator.faults.faults])
        spec = _kwargs(await request.json())
        kind = spec.pop("kind", "error")
        if "duration_seconds" in spec:
            spec["duration"] = timedelta(seconds=float(spec.pop("duration_seconds")))
        if kind == "error":
            fault = emulator.inject_error(**spec)
        elif kind == "http_status":
            if isinstance(spec.get("body"), str):
                spec["body"] = spec["body"].encode("utf-8")
            fault = emulator.inject_http_status(**spec)
        elif kind == "delay":
            fault = emulator.inject_delay(**spec)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return JSONResponse(plain(fault), status_code=201)

    async def flush(request: Request) -> Response:
        body = await request.body()
        batch = bool((await request.json()).get("batch")) if body else False
        done = await emulator.flush(batch=batch)
        return JSONResponse([_delivery(item) for item in done])

    return [
        Route(f"{PREFIX}/state", _guard(state), methods=["GET"]),
        Route(f"{PREFIX}/pages", _guard(pages), methods=["POST"]),
        Route(f"{PREFIX}/people", _guard(people), methods=["POST"]),
        Route(f"{PREFIX}/actions/{{action}}", _guard(action), methods=["POST"]),
        Route(f"{PREFIX}/requests", _guard(requests), methods=["GET"]),
        Route(f"{PREFIX}/sent", _guard(sent), methods=["GET"]),
        Route(f"{PREFIX}/deliveries", _guard(deliveries), methods=["GET"]),
        Route(f"{PREFIX}/faults", _guard(faults), methods=["GET", "POST", "DELETE"]),
        Route(f"{PREFIX}/flush", _guard(flush), methods=["POST"]),
    ]


def _delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "at": plain(delivery.at),
        "url": delivery.url,
        "status_code": delivery.status_code,
        "error": delivery.error,
        "skipped": delivery.skipped,
        "body": plain(delivery.body),
        "headers": dict(delivery.headers),
        "fields": [event.field for event in delivery.events],
    }
