"""Facebook Pages of a workspace, and the two Graph API checks the reopen loop depends on.

Registering a Page sets its Get Started button (without it a new thread opened from an m.me link
never posts back its `ref`, reference section 5) and subscribes the app to the Page's webhook
fields (reference section 4.4). Each check's outcome is stored and reported, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from channels.messenger import MessengerClient, MessengerError
from orchestrator.crypto import KeyRing
from orchestrator.errors import Conflict, FieldError, NotFound
from orchestrator.ids import new_id
from orchestrator.messenger_apps import get_app
from orchestrator.models import MessengerApp, Page, table_of

GET_STARTED_PAYLOAD = "GET_STARTED"
# Reference section 4.4: the messaging fields the orchestrator applies (DESIGN sections 5 and 6);
# `feed` brings Page comments (reference section 8).
WEBHOOK_FIELDS = (
    "messages",
    "messaging_postbacks",
    "messaging_referrals",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "feed",
)
CheckStatus = Literal["not_done", "ok", "failed"]
CHECKS = ("get_started", "subscribed_apps")


class PageNotFound(NotFound):
    slug = "page-not-found"
    title = "Page not found"


class PageExists(Conflict):
    slug = "page-exists"
    title = "This Page is already registered"


@dataclass(frozen=True)
class PageSettings:
    username: str | None = None
    access_token: str | None = None
    graph_api_version: str | None = None
    policy_profile: str | None = None
    region: str | None = None
    human_agent_enabled: bool | None = None
    otn_enabled: bool | None = None


def token_context(page_id: str) -> str:
    return f"page_token:{page_id}"


def open_token(keyring: KeyRing, page: Page) -> str:
    return keyring.decrypt(page.access_token_enc, context=token_context(page.page_id))


def not_done() -> dict[str, Any]:
    return {name: {"status": "not_done", "detail": None, "checked_at": None} for name in CHECKS}


async def register_page(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    page_id: str,
    app_id: str,
    settings: PageSettings,
    default_graph_api_version: str,
    now: datetime,
) -> Page:
    app = await get_app(session, workspace_id=workspace_id, app_id=app_id)
    if settings.username is None or settings.access_token is None:
        raise ValueError("a Page needs a username and an access token")
    page = Page(
        id=new_id("pg"),
        workspace_id=workspace_id,
        page_id=page_id,
        messenger_app_id=app.id,
        username=settings.username,
        access_token_enc=keyring.encrypt(settings.access_token, context=token_context(page_id)),
        graph_api_version=settings.graph_api_version or default_graph_api_version,
        policy_profile=settings.policy_profile or "meta-2026-04",
        region=settings.region,
        human_agent_enabled=bool(settings.human_agent_enabled),
        otn_enabled=bool(settings.otn_enabled),
        checks=not_done(),
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(page)
    except IntegrityError as exc:
        # The same answer whether the Page is ours or another workspace's: a Page belongs to
        # one tenant, and we do not reveal which.
        raise PageExists(
            f"Page {page_id} is already registered",
            errors=[FieldError("page_id", "already registered")],
        ) from exc
    return page


async def get_page(session: AsyncSession, *, workspace_id: str, page_id: str) -> Page:
    page = (
        await session.execute(sa.select(Page).where(col(Page.page_id) == page_id))
    ).scalar_one_or_none()
    if page is None or page.workspace_id != workspace_id:
        raise PageNotFound(f"No Page {page_id!r} in this workspace")
    return page


async def app_id_of(session: AsyncSession, page: Page) -> str:
    app = await session.get(MessengerApp, page.messenger_app_id)
    assert app is not None
    return app.app_id


async def list_pages(session: AsyncSession, *, workspace_id: str) -> list[Page]:
    rows = await session.execute(
        sa.select(Page)
        .where(col(Page.workspace_id) == workspace_id)
        .order_by(col(Page.created_at), col(Page.id))
    )
    return list(rows.scalars())


async def update_page(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    workspace_id: str,
    page_id: str,
    settings: PageSettings,
    app_id: str | None,
    now: datetime,
) -> tuple[Page, bool]:
    """Returns the page and whether its checks must run again (new token, version or app)."""
    page = await get_page(session, workspace_id=workspace_id, page_id=page_id)
    recheck = False
    if app_id is not None:
        app = await get_app(session, workspace_id=workspace_id, app_id=app_id)
        recheck |= app.id != page.messenger_app_id
        page.messenger_app_id = app.id
    if settings.access_token is not None:
        page.access_token_enc = keyring.encrypt(
            settings.access_token, context=token_context(page_id)
        )
        # A new token is how an operator resumes a Page paused for a bad token.
        page.paused_at = None
        page.paused_reason = None
        recheck = True
    if settings.graph_api_version is not None:
        recheck |= settings.graph_api_version != page.graph_api_version
        page.graph_api_version = settings.graph_api_version
    for name in ("username", "policy_profile", "region", "human_agent_enabled", "otn_enabled"):
        value = getattr(settings, name)
        if value is not None:
            setattr(page, name, value)
    if recheck:
        page.checks = not_done()
    page.updated_at = now
    await session.flush()
    return page, recheck


@dataclass(frozen=True)
class CheckTarget:
    """What the checks need, read in one transaction and used outside it (no lock is held
    while the Graph API answers)."""

    workspace_id: str
    page_id: str
    app_id: str
    access_token: str
    graph_api_version: str


async def check_target(session: AsyncSession, keyring: KeyRing, page: Page) -> CheckTarget:
    return CheckTarget(
        workspace_id=page.workspace_id,
        page_id=page.page_id,
        app_id=await app_id_of(session, page),
        access_token=open_token(keyring, page),
        graph_api_version=page.graph_api_version,
    )


async def run_checks(
    client: MessengerClient, target: CheckTarget, *, now: datetime
) -> dict[str, Any]:
    """Set Get Started and subscribe the app, then read both back. Never raises for a Graph
    error: each check reports its own outcome (the parsed error, never a URL or token)."""
    results: dict[str, Any] = {}
    token, version, page_id = target.access_token, target.graph_api_version, target.page_id
    try:
        await client.set_get_started(page_id, token, version, GET_STARTED_PAYLOAD)
        payload = await client.get_started_payload(page_id, token, version)
        ok = payload == GET_STARTED_PAYLOAD
        results["get_started"] = _result(
            "ok" if ok else "failed",
            None if ok else f"Get Started payload reads back as {payload!r}",
            now,
        )
    except MessengerError as exc:
        results["get_started"] = _result("failed", _describe(exc), now)
    try:
        await client.subscribe_app(page_id, token, version, WEBHOOK_FIELDS)
        apps = await client.subscribed_apps(page_id, token, version)
        ours = next((a for a in apps if a.app_id == target.app_id), None)
        missing = sorted(set(WEBHOOK_FIELDS) - set(ours.subscribed_fields)) if ours else None
        if ours is None:
            results["subscribed_apps"] = _result(
                "failed", f"app {target.app_id} is not subscribed to the Page", now
            )
        elif missing:
            results["subscribed_apps"] = _result(
                "failed", f"fields not subscribed: {', '.join(missing)}", now
            )
        else:
            results["subscribed_apps"] = _result("ok", None, now)
    except MessengerError as exc:
        results["subscribed_apps"] = _result("failed", _describe(exc), now)
    return results


def _result(status: CheckStatus, detail: str | None, now: datetime) -> dict[str, Any]:
    return {"status": status, "detail": detail, "checked_at": now.isoformat()}


def _describe(exc: MessengerError) -> str:
    code = (
        f" (code {exc.code}" + (f"/{exc.subcode}" if exc.subcode else "") + ")" if exc.code else ""
    )
    return f"{type(exc).__name__}{code}: {exc.message}"


async def store_checks(
    session: AsyncSession, *, page_id: str, results: dict[str, Any], now: datetime
) -> None:
    table = table_of(Page)
    await session.execute(
        sa.update(table).where(table.c.page_id == page_id).values(checks=results, updated_at=now)
    )
