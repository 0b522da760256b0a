"""Keyless public links: `/r/{token}` (email button -> m.me) and `/u/{token}` (unsubscribe).

A tampered, truncated, expired or foreign token gets a clear 4xx page and records nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator import email_feedback, links, rendering
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep

router = APIRouter(tags=["public links"], include_in_schema=True)

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _refused(exc: Exception) -> HTMLResponse:
    expired = isinstance(exc, links.LinkExpired)
    return HTMLResponse(
        rendering.render_link_error_page(problem="expired" if expired else "invalid"),
        status_code=410 if expired else 400,
        headers=_NO_STORE,
    )


@router.get("/r/{token}", response_class=RedirectResponse, status_code=302)
async def follow(token: str, session: SessionDep, resources: ResourcesDep, now: NowDep) -> Response:
    """Records the click and answers 302 to `https://m.me/{page}?ref={signed ref}`."""
    try:
        click = links.read_click_token(resources.keyring, token, now=now)
    except (links.LinkInvalid, links.LinkExpired) as exc:
        return _refused(exc)
    username = await email_feedback.record_click(session, click=click, now=now)
    if username is None:
        return _refused(links.LinkInvalid("the Page is gone"))
    ref = links.make_ref(
        resources.keyring,
        links.Ref(contact_id=click.contact_id, intent=click.intent, delivery_id=click.delivery_id),
        workspace_id=click.workspace_id,
        now=now,
    )
    return RedirectResponse(links.mme_url(username, ref), status_code=302, headers=_NO_STORE)


@router.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, resources: ResourcesDep, now: NowDep) -> HTMLResponse:
    """One button; nothing changes until it is pressed (mail scanners follow GET links)."""
    try:
        links.read_unsubscribe_token(resources.keyring, token, now=now)
    except (links.LinkInvalid, links.LinkExpired) as exc:
        return _refused(exc)
    return HTMLResponse(
        rendering.render_unsubscribe_page(action_url=f"/u/{token}"), headers=_NO_STORE
    )


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(
    token: str, request: Request, session: SessionDep, resources: ResourcesDep, now: NowDep
) -> HTMLResponse:
    """RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click`; a person presses
    the button. Either way the address is unsubscribed at once, no login, no further page."""
    try:
        link = links.read_unsubscribe_token(resources.keyring, token, now=now)
    except (links.LinkInvalid, links.LinkExpired) as exc:
        return _refused(exc)
    result = await email_feedback.unsubscribe(
        session,
        resources.keyring,
        link=link,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        now=now,
    )
    return HTMLResponse(
        rendering.render_unsubscribed_page(address_hint=result.address_hint if result else None),
        headers=_NO_STORE,
    )
