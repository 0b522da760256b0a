"""A visitor's browser as the widget drives it: fetch the form token from an allowed page, wait
the minimum fill time on the test clock, submit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.capture import inbox
from orchestrator.capture.guard import CaptureSettings
from orchestrator.clock import FrozenClock
from orchestrator.resources import Resources
from tests.fixtures.api import Tenant

SITE = "https://shop.aodaihong.vn"
FILL = timedelta(seconds=3)
CONSENT = {"text": "Tôi đồng ý nhận email ưu đãi từ Áo Dài Hồng.", "version": "2026-11-01"}
# Every table a capture writes to, besides the counters a rejection may touch.
CAPTURE_TABLES = (
    "contacts", "email_identities", "consent_ledger", "contact_tags", "deliveries",
    "interaction_events", "capture_token_uses", "capture_spins", "campaign_runs", "capture_inbox",
)  # fmt: skip


def form_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Popup Tết",
        "kind": "popup",
        "allowed_origins": [SITE],
        "tags": ["tet2027"],
        "consent": CONSENT,
    }
    body.update(overrides)
    return body


async def create_form(
    client: httpx.AsyncClient, tenant: Tenant, **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/v1/forms", headers=tenant.headers, json=form_body(**overrides))
    assert response.status_code == 201, response.text
    form: dict[str, Any] = response.json()
    return form


@dataclass
class Visitor:
    client: httpx.AsyncClient
    clock: FrozenClock
    form_id: str
    origin: str | None = SITE
    headers: dict[str, str] = field(default_factory=dict)

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "Mozilla/5.0 (test)", **self.headers}
        if self.origin is not None:
            headers["Origin"] = self.origin
        return headers

    async def fetch_token(self) -> httpx.Response:
        return await self.client.get(f"/f/{self.form_id}/token", headers=self._headers())

    async def token(self, *, wait: timedelta = FILL) -> str:
        response = await self.fetch_token()
        assert response.status_code == 200, response.text
        self.clock.advance(wait)
        token: str = response.json()["token"]
        return token

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/capture/{self.form_id}", headers=self._headers(), json=body
        )

    async def submit(self, email: str, **extra: Any) -> httpx.Response:
        token = extra.pop("token", None) or await self.token()
        return await self.post({"email": email, "consent": True, "token": token, **extra})


class ApplyingTransport(httpx.ASGITransport):
    """Applies the capture inbox after every accepted capture, as the `capture.apply` job does a
    moment later in a running server."""

    def __init__(self, app: FastAPI, resources: Resources) -> None:
        super().__init__(app=app)
        self.resources = resources

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path.startswith("/capture/") and response.status_code == 200:
            await inbox.apply_until_idle(
                self.resources.sessions,
                self.resources.keyring,
                settings=CaptureSettings.of(self.resources.settings),
            )
        return response


async def row_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as s:
        return {
            table: int((await s.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608
            for table in CAPTURE_TABLES
        }
