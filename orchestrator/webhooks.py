"""Receiving Messenger webhooks durably (DESIGN section 8, reference section 4).

Verify the signature over the raw bytes with the app's secret before parsing anything; store each
event in the inbox under its unique key; commit; acknowledge. Applying the events is a separate
job that reads the inbox in event-time order.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.messenger.webhooks import (
    InboundEvent,
    WebhookBodyInvalid,
    parse_body,
    signature_valid,
    split_events,
)
from orchestrator.crypto import KeyRing
from orchestrator.db import insert_ignoring_conflicts, transaction
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


@dataclass(frozen=True)
class VerifiedBody:
    app_id: str
    raw: bytes
    signature: str
    events: list[InboundEvent]
    received_at: datetime


async def verify(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    app_id: str,
    raw_body: bytes,
    signature: str | None,
    now: datetime,
    cache: RoutingCache,
) -> VerifiedBody:
    """The signature over the raw bytes first (reference 4.2), then the envelope."""
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
    return VerifiedBody(app_id, raw_body, signature or "", events, now)


async def store(
    session: AsyncSession, bodies: list[VerifiedBody], *, cache: RoutingCache
) -> list[tuple[int, int]]:
    """Write verified bodies and their events in the caller's transaction; per body returns
    (events stored, duplicates ignored)."""
    body_rows = []
    event_rows: list[dict[str, object]] = []
    owners = await cache.owners(session, {e.page_id for b in bodies for e in b.events})
    for body in bodies:
        body_id = new_id("wb")
        body_rows.append(
            {
                "id": body_id,
                "app_id": body.app_id,
                "raw": body.raw,
                "signature": body.signature,
                "received_at": body.received_at,
            }
        )
        for event in body.events:
            known = event.page_id in owners
            event_rows.append(
                {
                    "id": new_id("wh"),
                    "workspace_id": owners.get(event.page_id),
                    "app_id": body.app_id,
                    "body_id": body_id,
                    "page_id": event.page_id or None,
                    "event_key": event.event_key,
                    "event_type": event.event_type,
                    "event_time": event.event_time,
                    "payload": json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")),
                    "status": "pending" if known else "dropped",
                    "received_at": body.received_at,
                    "applied_at": None if known else body.received_at,
                }
            )
    await session.execute(sa.insert(table_of(WebhookBody)), body_rows)
    new_ids: set[object] = set()
    if event_rows:
        inbox = table_of(WebhookInbox)
        # RETURNING tells which rows were new: executemany rowcount is -1 on psycopg.
        result = await session.execute(
            insert_ignoring_conflicts(session, inbox, ["event_key"]).returning(inbox.c.id),
            event_rows,
        )
        new_ids = {row.id for row in result.all()}
    outcome = []
    position = 0
    for body in bodies:
        mine = event_rows[position : position + len(body.events)]
        position += len(body.events)
        stored = sum(1 for row in mine if row["id"] in new_ids)
        outcome.append((stored, len(mine) - stored))
    return outcome


class InboxBatcher:
    """Group commit for webhook acknowledgements.

    Concurrent requests queue their verified bodies; one draining task writes everything
    queued in one transaction (one insert per table, one commit), answers the waiting requests, and goes
    on while more arrive. Every request still answers only after its events are committed, and
    a burst costs a few commits instead of one per request. The draining task lives only while
    the queue is non-empty: nothing to start or stop.
    """

    def __init__(self, *, max_batch: int = 500) -> None:
        self._max_batch = max_batch
        self._queue: list[tuple[VerifiedBody, asyncio.Future[tuple[int, int]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(
        self,
        sessions: async_sessionmaker[AsyncSession],
        body: VerifiedBody,
        *,
        cache: RoutingCache,
    ) -> tuple[int, int]:
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._queue.append((body, future))
        if self._drainer is None or self._drainer.done():
            # A task of its own, not the first request's coroutine: a cancelled request must not
            # leave the others waiting. It ends as soon as the queue is empty.
            self._drainer = asyncio.ensure_future(self._drain(sessions, cache))
        return await future

    async def _drain(self, sessions: async_sessionmaker[AsyncSession], cache: RoutingCache) -> None:
        await asyncio.sleep(0)  # let requests already in flight join this batch
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._write(sessions, batch, cache=cache)

    @staticmethod
    async def _write(
        sessions: async_sessionmaker[AsyncSession],
        batch: list[tuple[VerifiedBody, asyncio.Future[tuple[int, int]]]],
        *,
        cache: RoutingCache,
    ) -> None:
        try:
            async with transaction(sessions) as session:
                results = await store(session, [body for body, _ in batch], cache=cache)
        except Exception as exc:  # every waiting request learns of it and answers 5xx
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
