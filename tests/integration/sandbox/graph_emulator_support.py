"""Shared pieces of the Graph API emulator tests: constants, a frozen clock, a tiny webhook
receiver that keeps raw bytes, and request helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

PAGE_ID = "1122334455667788"
PAGE_USERNAME = "aothun.saigon"
PAGE_TOKEN = "EAAG-page-token-1"
APP_ID = "555000111222333"
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-me"
RECEIVER_URL = "http://receiver.test/webhook"
GRAPH_BASE = "https://graph.facebook.com/v25.0"
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class TestClock:
    """A clock that moves only when told to."""

    __test__ = False

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_ok(self, secret: str = APP_SECRET) -> bool:
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return self.headers.get("x-hub-signature-256") == f"sha256={expected}"

    def messaging(self) -> dict[str, Any]:
        """The single messaging item of a one-event body."""
        entries = self.json()["entry"]
        assert len(entries) == 1
        items = entries[0]["messaging"]
        assert len(items) == 1
        item: dict[str, Any] = items[0]
        return item


@dataclass
class WebhookReceiver:
    """A tiny Starlette app standing in for our webhook endpoint; keeps raw bytes."""

    received: list[Received] = field(default_factory=list)
    answer_status: int = 200

    @property
    def app(self) -> Starlette:
        async def webhook(request: Request) -> Response:
            if request.method == "GET":
                params = request.query_params
                if (
                    params.get("hub.mode") == "subscribe"
                    and params.get("hub.verify_token") == VERIFY_TOKEN
                ):
                    return PlainTextResponse(params.get("hub.challenge", ""))
                return PlainTextResponse("forbidden", status_code=403)
            self.received.append(Received(await request.body(), dict(request.headers)))
            return PlainTextResponse("EVENT_RECEIVED", status_code=self.answer_status)

        return Starlette(routes=[Route("/webhook", webhook, methods=["GET", "POST"])])

    @property
    def last(self) -> Received:
        assert self.received, "no webhook received"
        return self.received[-1]


async def send(
    graph: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    token: str | None = PAGE_TOKEN,
    node: str = PAGE_ID,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await graph.post(f"/{node}/messages", json=body, headers=headers)


def text_to(psid: str, text: str = "Xin chào", messaging_type: str = "RESPONSE") -> dict[str, Any]:
    return {"recipient": {"id": psid}, "messaging_type": messaging_type, "message": {"text": text}}


def error_of(response: httpx.Response) -> tuple[int, int | None]:
    error = response.json()["error"]
    return error["code"], error.get("error_subcode")
