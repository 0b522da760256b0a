"""API keys: random, looked up by a short prefix, stored only as SHA-256 (DESIGN section 11)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator.crypto import sha256_hex
from orchestrator.errors import ApiKeyNotFound, Unauthorized
from orchestrator.ids import new_id
from orchestrator.models import ApiKey

KEY_PREFIX = "ok"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    """The only moment the full key exists outside its holder."""

    key_id: str
    workspace_id: str
    key: str


def generate_key() -> tuple[str, str]:
    """(lookup prefix, full key). 32 random bytes of secret, the prefix is not secret."""
    prefix = secrets.token_hex(6)
    return prefix, f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or len(parts[2]) < 40:
        return None
    return parts[1]


async def create_api_key(
    session: AsyncSession, *, workspace_id: str, now: datetime, name: str | None = None
) -> IssuedKey:
    prefix, key = generate_key()
    row = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        prefix=prefix,
        key_hash=sha256_hex(key),
        name=name,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return IssuedKey(key_id=row.id, workspace_id=workspace_id, key=key)


async def revoke_api_key(session: AsyncSession, *, key_id: str, now: datetime) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise ApiKeyNotFound(f"No API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now
        await session.flush()
    return row


async def authenticate(session: AsyncSession, *, key: str, now: datetime) -> ApiKey:
    prefix = parse_key(key)
    if prefix is None:
        raise Unauthorized("The API key is malformed")
    row = (
        (await session.execute(sa.select(ApiKey).where(col(ApiKey.prefix) == prefix)))
        .scalars()
        .first()
    )
    if row is None or not hmac.compare_digest(row.key_hash, sha256_hex(key)):
        raise Unauthorized("The API key is not valid")
    if row.revoked_at is not None:
        raise Unauthorized("The API key has been revoked")
    if row.last_used_at is None or now - row.last_used_at >= _LAST_USED_GRANULARITY:
        row.last_used_at = now
        await session.flush()
    return row
