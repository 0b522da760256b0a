"""`Idempotency-Key` on creating POSTs and launches (DESIGN section 9).

A key is stored per (workspace, method, path, key) with a hash of the body, in the request's own
transaction: the first request writes the row, runs, and stores its answer; a retry with the same
body gets the stored answer; the same key with another body is 422.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.db import rows_affected
from orchestrator.errors import Conflict, FieldError, ValidationFailed
from orchestrator.models import IdempotencyRecord, table_of

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class IdempotencyKeyReused(ValidationFailed):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with another request body"


class IdempotencyInProgress(Conflict):
    slug = "idempotency-in-progress"
    title = "A request with this Idempotency-Key is still being processed"


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: str


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1-200 printable ASCII characters",
            errors=[FieldError("header.Idempotency-Key", "invalid key")],
        )


async def claim(
    session: AsyncSession,
    *,
    workspace_id: str,
    method: str,
    path: str,
    key: str,
    request_hash: str,
    now: datetime,
) -> StoredAnswer | None:
    """None when this request is the first with the key (go ahead, then `store`); otherwise the
    stored answer to replay."""
    check_key(key)
    table = table_of(IdempotencyRecord)
    where = (
        table.c.workspace_id == workspace_id,
        table.c.method == method,
        table.c.path == path,
        table.c.key == key,
    )
    existing = (await session.execute(sa.select(table).where(*where))).first()
    if existing is not None and existing.created_at < now - RETENTION:
        await session.execute(sa.delete(table).where(*where))
        existing = None
    if existing is None:
        try:
            async with session.begin_nested():
                await session.execute(
                    sa.insert(table).values(
                        workspace_id=workspace_id,
                        method=method,
                        path=path,
                        key=key,
                        request_hash=request_hash,
                        created_at=now,
                    )
                )
            return None
        except IntegrityError:
            # Another request with this key committed first; read what it stored.
            existing = (await session.execute(sa.select(table).where(*where))).first()
            if existing is None:  # pragma: no cover - it was deleted in between
                raise IdempotencyInProgress("Retry the request") from None
    if existing.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "The same Idempotency-Key was sent with a different body",
            errors=[FieldError("header.Idempotency-Key", "reused with another body")],
        )
    if existing.status_code is None:
        raise IdempotencyInProgress("Retry the request in a moment")
    return StoredAnswer(existing.status_code, existing.response_body or "")


async def store(
    session: AsyncSession,
    *,
    workspace_id: str,
    method: str,
    path: str,
    key: str,
    status_code: int,
    body: str,
) -> None:
    table = table_of(IdempotencyRecord)
    await session.execute(
        sa.update(table)
        .where(
            table.c.workspace_id == workspace_id,
            table.c.method == method,
            table.c.path == path,
            table.c.key == key,
        )
        .values(status_code=status_code, response_body=body)
    )


async def expire(session: AsyncSession, *, now: datetime) -> int:
    table = table_of(IdempotencyRecord)
    result = await session.execute(sa.delete(table).where(table.c.created_at < now - RETENTION))
    return rows_affected(result)
