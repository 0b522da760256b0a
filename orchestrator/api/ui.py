"""The campaign pages: sign in with an API key, see the campaigns, their funnel and deliveries.

    GET  /login                  the sign-in form
    POST /login                  form-encoded `api_key`; sets the session cookie, 303 /campaigns
    POST /logout                 clears it, 303 /login
    GET  /campaigns              the workspace's campaigns
    GET  /campaigns/{id}         status, funnel chart, counts, deliveries (?state=&reason=&channel=)

The key is typed into a POST form and checked like the Bearer header is (`apikeys.authenticate`);
it never travels in a URL and is never shown or logged. The session is a signed, expiring cookie
(`orchestrator.ui_session`) with HttpOnly, SameSite=Strict, Path=/ and Secure behind https; each
request looks the key up by id, so a revoked key's sessions end at once. POSTs whose Origin names
another site get 403 (with SameSite=Strict, this is the CSRF protection, login CSRF included).

Every answer carries a Content-Security-Policy without scripts or outside sources. The Referrer
Policy is `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
form POSTs (Fetch standard, "append a request Origin header"), which the Origin check must refuse;
`same-origin` likewise sends nothing to any other site.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import ui_session
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep
from orchestrator.apikeys import authenticate
from orchestrator.campaigns import queries
from orchestrator.errors import Unauthorized, ValidationFailed
from orchestrator.models import ApiKey, Workspace, table_of
from orchestrator.rendering import campaign_pages as pages
from orchestrator.resources import Resources

router = APIRouter(tags=["campaign pages"], include_in_schema=False)

PAGE_SIZE: Final = 50
CAMPAIGNS_PAGE_SIZE: Final = 50
_MAX_KEY_LENGTH: Final = 200
_MAX_CURSOR_LENGTH: Final = 500


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": pages.content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _page(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=security_headers())


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=security_headers())


def _secure(resources: Resources) -> bool:
    return resources.settings.public_url.lower().startswith("https://")


def _forget_session(response: Response, resources: Resources) -> Response:
    response.delete_cookie(
        ui_session.COOKIE_NAME,
        path="/",
        secure=_secure(resources),
        httponly=True,
        samesite="strict",
    )
    return response


def _to_login(request: Request, resources: Resources) -> Response:
    response = _redirect("/login")
    # A stale or forged cookie is dropped so the browser stops sending it.
    if ui_session.COOKIE_NAME in request.cookies:
        _forget_session(response, resources)
    return response


def _cross_site(request: Request, resources: Resources) -> Response | None:
    if ui_session.same_origin(request.headers.get("origin"), resources.settings.public_url):
        return None
    return _page(pages.render_console_error_page(pages.FORBIDDEN_ORIGIN), status_code=403)


@dataclass(frozen=True)
class SignedIn:
    """The caller's workspace, from a valid session whose key is still live."""

    workspace_id: str
    workspace_name: str
    zone: ZoneInfo


def _zone(name: str, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    raise AssertionError("the UTC zone is always present")  # pragma: no cover


async def _signed_in(
    request: Request, session: AsyncSession, resources: Resources, now: datetime
) -> SignedIn | None:
    try:
        found = ui_session.read(
            resources.keyring,
            request.cookies.get(ui_session.COOKIE_NAME),
            max_age=resources.settings.ui_session_seconds,
            now=now,
        )
    except ui_session.SessionRefused:
        return None
    keys, workspaces = table_of(ApiKey), table_of(Workspace)
    # One indexed lookup by primary key per request: the price of revocation taking effect now.
    row = (
        await session.execute(
            sa.select(workspaces.c.name, workspaces.c.timezone)
            .select_from(keys.join(workspaces, workspaces.c.id == keys.c.workspace_id))
            .where(
                keys.c.id == found.key_id,
                keys.c.workspace_id == found.workspace_id,
                keys.c.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return SignedIn(
        found.workspace_id, row.name, _zone(row.timezone, resources.settings.default_timezone)
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, session: SessionDep, resources: ResourcesDep, now: NowDep
) -> Response:
    if await _signed_in(request, session, resources, now) is not None:
        return _redirect("/campaigns")
    return _page(pages.render_login_page())


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, session: SessionDep, resources: ResourcesDep, now: NowDep
) -> Response:
    refused = _cross_site(request, resources)
    if refused is not None:
        return refused
    # Read by hand rather than as a FastAPI `Form` field: a validation error would echo the
    # submitted value (the key) back in a problem+json body.
    form = await request.form(max_files=0, max_fields=10)
    key = form.get("api_key")
    if not isinstance(key, str) or not key.strip() or len(key) > _MAX_KEY_LENGTH:
        return _page(pages.render_login_page(failed=True), status_code=401)
    try:
        api_key = await authenticate(session, key=key.strip(), now=now)
    except Unauthorized:
        return _page(pages.render_login_page(failed=True), status_code=401)
    seconds = resources.settings.ui_session_seconds
    response = _redirect("/campaigns")
    response.set_cookie(
        ui_session.COOKIE_NAME,
        ui_session.issue(
            resources.keyring, workspace_id=api_key.workspace_id, key_id=api_key.id, now=now
        ),
        max_age=seconds,
        # Our clock, not the browser's: the same instant the signature expires.
        expires=now + timedelta(seconds=seconds),
        path="/",
        secure=_secure(resources),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request, resources: ResourcesDep) -> Response:
    refused = _cross_site(request, resources)
    if refused is not None:
        return refused
    return _forget_session(_redirect("/login"), resources)


def _cursor(value: str | None) -> str | None:
    if value is not None and len(value) > _MAX_CURSOR_LENGTH:
        raise ValidationFailed("cursor too long")
    return value or None


@router.get("/campaigns", response_class=HTMLResponse)
async def campaign_list(
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    now: NowDep,
    cursor: str | None = None,
) -> Response:
    who = await _signed_in(request, session, resources, now)
    if who is None:
        return _to_login(request, resources)
    try:
        found, next_cursor = await queries.list_campaigns(
            session,
            workspace_id=who.workspace_id,
            status=None,
            limit=CAMPAIGNS_PAGE_SIZE,
            cursor=_cursor(cursor),
        )
    except ValidationFailed:
        return _page(
            pages.render_console_error_page(pages.BAD_FILTER, workspace_name=who.workspace_name),
            status_code=400,
        )
    return _page(
        pages.render_campaign_list_page(
            workspace_name=who.workspace_name,
            campaigns=found,
            zone=who.zone,
            next_cursor=next_cursor,
            first_page=not cursor,
        )
    )


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(
    campaign_id: str,
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    now: NowDep,
    state: str | None = None,
    reason: str | None = None,
    channel: str | None = None,
    cursor: str | None = None,
) -> Response:
    who = await _signed_in(request, session, resources, now)
    if who is None:
        return _to_login(request, resources)
    try:
        campaign = await queries.view(
            session, workspace_id=who.workspace_id, campaign_id=campaign_id
        )
    except queries.CampaignNotFound:
        return _page(
            pages.render_console_error_page(pages.NOT_FOUND, workspace_name=who.workspace_name),
            status_code=404,
        )
    # An empty value is the select's "All".
    filters = pages.DeliveryFilters(
        state=state or None, reason=reason or None, channel=channel or None
    )
    bad_filter = any(
        value is not None and value not in pages.FILTER_VALUES[name]
        for name, value in (
            ("state", filters.state),
            ("reason", filters.reason),
            ("channel", filters.channel),
        )
    )
    try:
        if bad_filter:
            raise ValidationFailed("unknown filter value")
        rows, next_cursor = await queries.list_deliveries(
            session,
            workspace_id=who.workspace_id,
            campaign_id=campaign_id,
            filters=queries.DeliveryFilter(
                state=filters.state, reason=filters.reason, channel=filters.channel
            ),
            limit=PAGE_SIZE,
            cursor=_cursor(cursor),
        )
    except ValidationFailed:
        return _page(
            pages.render_console_error_page(pages.BAD_FILTER, workspace_name=who.workspace_name),
            status_code=400,
        )
    stats = await queries.stats(session, workspace_id=who.workspace_id, campaign_id=campaign_id)
    return _page(
        pages.render_campaign_page(
            workspace_name=who.workspace_name,
            campaign=campaign,
            stats=stats,
            deliveries=rows,
            filters=filters,
            next_cursor=next_cursor,
            first_page=not cursor,
            zone=who.zone,
        )
    )
