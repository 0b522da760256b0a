"""Receiving Messenger webhooks durably (DESIGN section 8, reference section 4).

Verify the signature over the raw bytes with the app's secret before parsing anything; store each
event in the inbox under its unique key; commit; acknowledge. Applying the events is a separate
job that reads the inbox in event-time order.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from channels.messenger.webhooks import (
    WebhookBodyInvalid,
    parse_body,
    signature_valid,
    split_events,
)
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts
from orchestrator.errors import BadRequest, Forbidden
from orchestrator.ids import new_id
from orchestrator.messenger_apps import find_app, open_secrets
from orchestrator.models import Page, WebhookBody, WebhookInbox, table_of


class SignatureInvalid(Forbidden):
    slug = "signature-invalid"
    title = "The webhook signature does not verify"


async def verify_subscription(
    session: AsyncSession, keyring: KeyRing, *, app_id: str, mode: str | None, token: str | None
) -> bool:
    """Reference 4.1: echo `hub.challenge` only when `hub.verify_token` is this app's token."""
    app = await find_app(session, app_id=app_id)
    if app is None or mode != "subscribe" or not token:
        return False
    return _equal(open_secrets(keyring, app).verify_token, token)


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class RoutingCache:
    """Per-process memory of app secrets and Page owners, so an acknowledgement costs two
    inserts and a commit (Meta wants the 200 within 5 seconds, reference 4.3).

    A secret is re-read when a signature fails against the cached one (a rotated secret takes
    effect at once); both expire after `ttl` seconds. Unknown Pages are never cached.
    """

    def __init__(self, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._secrets: dict[str, tuple[str, float]] = {}
        self._owners: dict[str, tuple[str, float]] = {}

    async def secret(
        self, session: AsyncSession, keyring: KeyRing, app_id: str, *, fresh: bool = False
    ) -> str | None:
        cached = self._secrets.get(app_id)
        if cached and not fresh and self._clock() - cached[1] < self._ttl:
            return cached[0]
        app = await find_app(session, app_id=app_id)
        if app is None:
            self._secrets.pop(app_id, None)
            return None
        secret = open_secrets(keyring, app).app_secret
        self._secrets[app_id] = (secret, self._clock())
        return secret

    def forget(self, app_id: str) -> None:
        """After a rotation here; other processes follow within `ttl`."""
        self._secrets.pop(app_id, None)

    async def owners(self, session: AsyncSession, page_ids: set[str]) -> dict[str, str]:
        now = self._clock()
        found = {
            page: hit[0]
            for page in page_ids
            if (hit := self._owners.get(page)) and now - hit[1] < self._ttl
        }
        missing = page_ids - found.keys()
        if missing:
            pages = table_of(Page)
            rows = await session.execute(
                sa.select(pages.c.page_id, pages.c.workspace_id).where(pages.c.page_id.in_(missing))
            )
            for page_id, workspace_id in rows.all():
                found[page_id] = workspace_id
                self._owners[page_id] = (workspace_id, now)
        return found


async def receive(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    app_id: str,
    raw_body: bytes,
    signature: str | None,
    now: datetime,
    cache: RoutingCache | None = None,
) -> tuple[int, int]:
    """Store every event of a verified body; returns (events stored, duplicates ignored).

    Entries for Pages we do not know are recorded with status `dropped` and no workspace.
    """
    cache = cache or RoutingCache(ttl=0)
    secret = await cache.secret(session, keyring, app_id)
    valid = secret is not None and signature_valid(raw_body, signature, secret)
    if secret is not None and not valid:
        secret = await cache.secret(session, keyring, app_id, fresh=True)
        valid = secret is not None and signature_valid(raw_body, signature, secret)
    if not valid:
        raise SignatureInvalid("The X-Hub-Signature-256 header does not match the body")
    try:
        events = split_events(parse_body(raw_body), received_at=now)
    except WebhookBodyInvalid as exc:
        raise BadRequest(f"The webhook body is not a Messenger envelope: {exc}") from exc
    body_id = new_id("wb")
    await session.execute(
        sa.insert(table_of(WebhookBody)).values(
            id=body_id, app_id=app_id, raw=raw_body, signature=signature or "", received_at=now
        )
    )
    if not events:
        return 0, 0
    owners = await cache.owners(session, {e.page_id for e in events})
    inbox = table_of(WebhookInbox)
    rows = [
        {
            "id": new_id("wh"),
            "workspace_id": owners.get(event.page_id),
            "app_id": app_id,
            "body_id": body_id,
            "page_id": event.page_id or None,
            "event_key": event.event_key,
            "event_type": event.event_type,
            "event_time": event.event_time,
            "payload": json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")),
            "status": "pending" if event.page_id in owners else "dropped",
            "received_at": now,
            "applied_at": None if event.page_id in owners else now,
        }
        for event in events
    ]
    # RETURNING counts what was new: executemany rowcount is -1 on psycopg.
    result = await session.execute(
        insert_ignoring_conflicts(session, inbox, ["event_key"]).returning(inbox.c.id), rows
    )
    stored = len(result.all())
    return stored, len(rows) - stored
