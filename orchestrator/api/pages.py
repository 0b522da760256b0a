"""`/v1/messenger-apps` and `/v1/pages`. Secrets and tokens are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import Field, SecretStr, field_validator

from orchestrator import messenger_apps, pages
from orchestrator.api.deps import (
    IdempotencyDep,
    NowDep,
    ResourcesDep,
    SessionDep,
    WorkspaceIdDep,
)
from orchestrator.db import transaction
from orchestrator.resources import Resources
from orchestrator.schemas import InputModel, ListPage, OutputModel

apps_router = APIRouter(prefix="/v1/messenger-apps", tags=["messenger apps"])
pages_router = APIRouter(prefix="/v1/pages", tags=["pages"])

MetaId = Field(min_length=1, max_length=64, pattern=r"^\d+$")
Profile = Literal["meta-2026-04", "meta-2020-03"]


def _secret(min_length: int, **kwargs: Any) -> Any:
    return Field(min_length=min_length, max_length=2048, **kwargs)


class MessengerAppCreate(InputModel):
    app_id: str = MetaId
    app_secret: SecretStr = _secret(8)
    verify_token: SecretStr = _secret(8)


class MessengerAppUpdate(InputModel):
    app_secret: SecretStr | None = _secret(8, default=None)
    verify_token: SecretStr | None = _secret(8, default=None)


class MessengerAppPublic(OutputModel):
    app_id: str
    webhook_url: str
    created_at: datetime
    updated_at: datetime


class _PageFields(InputModel):
    username: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9.]+$"
    )
    access_token: SecretStr | None = _secret(10, default=None)
    graph_api_version: str | None = Field(default=None, pattern=r"^v\d{1,3}\.\d{1,3}$")
    policy_profile: Profile | None = None
    region: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    human_agent_enabled: bool | None = None
    otn_enabled: bool | None = None

    @field_validator(
        "policy_profile", "human_agent_enabled", "otn_enabled", "username", "access_token"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value

    def settings(self) -> pages.PageSettings:
        return pages.PageSettings(
            username=self.username,
            access_token=self.access_token.get_secret_value() if self.access_token else None,
            graph_api_version=self.graph_api_version,
            policy_profile=self.policy_profile,
            region=self.region.upper() if self.region else None,
            human_agent_enabled=self.human_agent_enabled,
            otn_enabled=self.otn_enabled,
        )


class PageCreate(_PageFields):
    page_id: str = MetaId
    app_id: str = MetaId
    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9.]+$")
    access_token: SecretStr = _secret(10)


class PageUpdate(_PageFields):
    app_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^\d+$")


class CheckPublic(OutputModel):
    status: Literal["not_done", "ok", "failed"]
    detail: str | None
    checked_at: datetime | None


class PagePublic(OutputModel):
    page_id: str
    app_id: str
    username: str
    m_me_url: str
    graph_api_version: str
    policy_profile: Profile
    region: str | None
    human_agent_enabled: bool
    otn_enabled: bool
    paused: bool
    paused_reason: str | None
    checks: dict[str, CheckPublic]
    created_at: datetime
    updated_at: datetime


def _app_public(app: Any, resources: Resources) -> MessengerAppPublic:
    base = resources.settings.public_url.rstrip("/")
    return MessengerAppPublic(
        app_id=app.app_id,
        webhook_url=f"{base}/webhooks/messenger/{app.app_id}",
        created_at=app.created_at,
        updated_at=app.updated_at,
    )


async def _page_public(session: Any, page: Any) -> PagePublic:
    return PagePublic(
        page_id=page.page_id,
        app_id=await pages.app_id_of(session, page),
        username=page.username,
        m_me_url=f"https://m.me/{page.username}",
        graph_api_version=page.graph_api_version,
        policy_profile=page.policy_profile,
        region=page.region,
        human_agent_enabled=page.human_agent_enabled,
        otn_enabled=page.otn_enabled,
        paused=page.paused_at is not None,
        paused_reason=page.paused_reason,
        checks={**pages.not_done(), **(page.checks or {})},
        created_at=page.created_at,
        updated_at=page.updated_at,
    )


# -- apps ----------------------------------------------------------------------------------------


@apps_router.post("", status_code=201, response_model=MessengerAppPublic)
async def create_app(
    body: MessengerAppCreate,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """Register the Meta app whose webhooks this workspace receives; its webhook URL is in the
    answer. The secret and the verify token are never returned."""
    if idem.replayed is not None:
        return idem.replayed
    app = await messenger_apps.create_app(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        app_id=body.app_id,
        app_secret=body.app_secret.get_secret_value(),
        verify_token=body.verify_token.get_secret_value(),
        now=now,
    )
    return await idem.respond(201, _app_public(app, resources))


@apps_router.get("", response_model=ListPage[MessengerAppPublic])
async def list_apps(
    session: SessionDep, resources: ResourcesDep, workspace_id: WorkspaceIdDep
) -> ListPage[MessengerAppPublic]:
    apps = await messenger_apps.list_apps(session, workspace_id=workspace_id)
    return ListPage[MessengerAppPublic](data=[_app_public(a, resources) for a in apps])


@apps_router.get("/{app_id}", response_model=MessengerAppPublic)
async def read_app(
    app_id: str, session: SessionDep, resources: ResourcesDep, workspace_id: WorkspaceIdDep
) -> MessengerAppPublic:
    app = await messenger_apps.get_app(session, workspace_id=workspace_id, app_id=app_id)
    return _app_public(app, resources)


@apps_router.patch("/{app_id}", response_model=MessengerAppPublic)
async def patch_app(
    app_id: str,
    body: MessengerAppUpdate,
    background: BackgroundTasks,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> MessengerAppPublic:
    """Rotate the app secret or the verify token."""
    app = await messenger_apps.update_app(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        app_id=app_id,
        app_secret=body.app_secret.get_secret_value() if body.app_secret else None,
        verify_token=body.verify_token.get_secret_value() if body.verify_token else None,
        now=now,
    )
    # Forget now and again once committed, so no request in between re-caches the old secret.
    resources.webhook_routing.forget(app_id)
    background.add_task(resources.webhook_routing.forget, app_id)
    return _app_public(app, resources)


# -- pages ---------------------------------------------------------------------------------------


async def _check_in_background(resources: Resources, target: pages.CheckTarget) -> None:
    """After the Page is committed: call the Graph API with no database transaction open, then
    store the outcome in a short transaction of its own."""
    results = await pages.run_checks(resources.messenger, target, now=resources.clock.now())
    async with transaction(resources.sessions) as session:
        await pages.store_checks(
            session, page_id=target.page_id, results=results, now=resources.clock.now()
        )


@pages_router.post("", status_code=201, response_model=PagePublic)
async def create_page(
    body: PageCreate,
    background: BackgroundTasks,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """Register a Page. The answer shows both checks as `not_done`; they run right after it
    (setting Get Started, subscribing the app) and `GET /v1/pages/{page_id}` reports them."""
    if idem.replayed is not None:
        return idem.replayed
    page = await pages.register_page(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        page_id=body.page_id,
        app_id=body.app_id,
        settings=body.settings(),
        default_graph_api_version=resources.settings.graph_api_version,
        now=now,
    )
    background.add_task(
        _check_in_background, resources, await pages.check_target(session, resources.keyring, page)
    )
    return await idem.respond(201, await _page_public(session, page))


@pages_router.get("", response_model=ListPage[PagePublic])
async def list_pages(session: SessionDep, workspace_id: WorkspaceIdDep) -> ListPage[PagePublic]:
    rows = await pages.list_pages(session, workspace_id=workspace_id)
    return ListPage[PagePublic](data=[await _page_public(session, p) for p in rows])


@pages_router.get("/{page_id}", response_model=PagePublic)
async def read_page(page_id: str, session: SessionDep, workspace_id: WorkspaceIdDep) -> PagePublic:
    page = await pages.get_page(session, workspace_id=workspace_id, page_id=page_id)
    return await _page_public(session, page)


@pages_router.patch("/{page_id}", response_model=PagePublic)
async def patch_page(
    page_id: str,
    body: PageUpdate,
    background: BackgroundTasks,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> PagePublic:
    """A new access token, Graph API version or app runs the checks again (and a new token
    resumes a Page paused for a bad one)."""
    page, recheck = await pages.update_page(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        page_id=page_id,
        settings=body.settings(),
        app_id=body.app_id,
        now=now,
    )
    if recheck:
        background.add_task(
            _check_in_background,
            resources,
            await pages.check_target(session, resources.keyring, page),
        )
    return await _page_public(session, page)


@pages_router.post("/{page_id}/checks", status_code=202, response_model=PagePublic)
async def recheck_page(
    page_id: str,
    background: BackgroundTasks,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
) -> PagePublic:
    """Run the Get Started and subscription checks again."""
    page = await pages.get_page(session, workspace_id=workspace_id, page_id=page_id)
    background.add_task(
        _check_in_background, resources, await pages.check_target(session, resources.keyring, page)
    )
    return await _page_public(session, page)
