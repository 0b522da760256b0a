"""Messenger apps: the Meta app whose webhooks we receive (DESIGN section 4).

The app secret and the verify token are write-only: encrypted at rest, bound to the app's row
context, never returned or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator.crypto import KeyRing
from orchestrator.errors import Conflict, FieldError, NotFound
from orchestrator.ids import new_id
from orchestrator.models import MessengerApp


class MessengerAppNotFound(NotFound):
    slug = "messenger-app-not-found"
    title = "Messenger app not found"


class MessengerAppExists(Conflict):
    slug = "messenger-app-exists"
    title = "This Meta app is already registered"


@dataclass(frozen=True)
class AppSecrets:
    app_secret: str
    verify_token: str


def _context(kind: str, app_id: str) -> str:
    # The Meta app id, not the workspace: the webhook endpoint is per app and must decrypt the
    # secret before it knows which workspace an entry belongs to.
    return f"{kind}:{app_id}"


def seal_secret(keyring: KeyRing, app_id: str, secret: str) -> str:
    return keyring.encrypt(secret, context=_context("app_secret", app_id))


def seal_verify_token(keyring: KeyRing, app_id: str, token: str) -> str:
    return keyring.encrypt(token, context=_context("verify_token", app_id))


def open_secrets(keyring: KeyRing, app: MessengerApp) -> AppSecrets:
    return AppSecrets(
        app_secret=keyring.decrypt(app.app_secret_enc, context=_context("app_secret", app.app_id)),
        verify_token=keyring.decrypt(
            app.verify_token_enc, context=_context("verify_token", app.app_id)
        ),
    )


async def create_app(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    app_id: str,
    app_secret: str,
    verify_token: str,
    now: datetime,
) -> MessengerApp:
    app = MessengerApp(
        id=new_id("app"),
        workspace_id=workspace_id,
        app_id=app_id,
        app_secret_enc=seal_secret(keyring, app_id, app_secret),
        verify_token_enc=seal_verify_token(keyring, app_id, verify_token),
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(app)
    except IntegrityError as exc:
        raise MessengerAppExists(
            f"Meta app {app_id} is already registered",
            errors=[FieldError("app_id", "already registered")],
        ) from exc
    return app


async def get_app(session: AsyncSession, *, workspace_id: str, app_id: str) -> MessengerApp:
    """By Meta app id, within the workspace (another workspace's app is simply not found)."""
    app = (
        await session.execute(sa.select(MessengerApp).where(col(MessengerApp.app_id) == app_id))
    ).scalar_one_or_none()
    if app is None or app.workspace_id != workspace_id:
        raise MessengerAppNotFound(f"No Messenger app {app_id!r} in this workspace")
    return app


async def find_app(session: AsyncSession, *, app_id: str) -> MessengerApp | None:
    """For the webhook endpoint, which knows only the app id in its path."""
    return (
        await session.execute(sa.select(MessengerApp).where(col(MessengerApp.app_id) == app_id))
    ).scalar_one_or_none()


async def list_apps(session: AsyncSession, *, workspace_id: str) -> list[MessengerApp]:
    rows = await session.execute(
        sa.select(MessengerApp)
        .where(col(MessengerApp.workspace_id) == workspace_id)
        .order_by(col(MessengerApp.created_at), col(MessengerApp.id))
    )
    return list(rows.scalars())


async def update_app(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    app_id: str,
    app_secret: str | None,
    verify_token: str | None,
    now: datetime,
) -> MessengerApp:
    app = await get_app(session, workspace_id=workspace_id, app_id=app_id)
    if app_secret is not None:
        app.app_secret_enc = seal_secret(keyring, app_id, app_secret)
    if verify_token is not None:
        app.verify_token_enc = seal_verify_token(keyring, app_id, verify_token)
    app.updated_at = now
    await session.flush()
    return app
