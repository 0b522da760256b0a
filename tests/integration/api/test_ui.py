"""The campaign pages on both databases: sign-in with an API key into a signed, expiring,
HttpOnly, SameSite=Strict cookie; sessions that end on expiry, tampering and revocation; the
Origin check on POSTs; the campaign page's numbers, reasons and deliveries; security headers."""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import ui_session
from orchestrator.apikeys import revoke_api_key
from orchestrator.clock import FrozenClock
from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.models import Campaign, InteractionEvent, table_of
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import TEST_SECRET
from tests.integration.api.test_campaigns_api import (
    PAGE,
    add_deliveries,
    add_page,
    add_run,
    created_id,
    pause_page,
)

PUBLIC = "https://outreach.test"  # the test settings' OUTREACH_PUBLIC_URL
COOKIE = ui_session.COOKIE_NAME
EIGHT_HOURS = 28_800


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client at the public URL (the cookie is Secure there) that follows no redirect."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as c:
        yield c


async def sign_in(browser: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    response = await browser.post("/login", data={"api_key": key}, headers=headers)
    # Tests send the cookie themselves, so the jar's notion of time never matters.
    browser.cookies.clear()
    return response


def session_of(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE + "=")]
    return header.split(";", 1)[0].split("=", 1)[1]


async def open_page(browser: httpx.AsyncClient, path: str, cookie: str | None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    return await browser.get(path, headers=headers)


async def signed_in(browser: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await sign_in(browser, tenant.key)
    assert response.status_code == 303, response.text
    return session_of(response)


def assert_security_headers(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";")}
    assert directives["default-src"] == "default-src 'none'"
    assert directives["img-src"] == "img-src data:"
    assert directives["form-action"] == "form-action 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "script-src" not in directives
    assert response.headers["x-content-type-options"] == "nosniff"
    # Not `no-referrer`: browsers then send `Origin: null` on form POSTs (see orchestrator.api.ui).
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    if response.headers.get("content-type", "").startswith("text/html"):
        # The policy allows exactly the page's one style element, and there is no script.
        styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
        assert len(styles) == 1
        digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
        assert directives["style-src"] == f"style-src 'sha256-{digest}'"
        assert "<script" not in response.text.lower()
        assert " style=" not in response.text


def counts(page: str, section: str) -> dict[str, int]:
    """`data-key` -> `data-count` of the chart bars inside `<section id=section>`."""
    body = re.search(rf'<section class="card" id="{section}".*?</section>', page, re.S)
    assert body is not None, section
    return {
        key: int(count)
        for key, count in re.findall(r'data-key="([^"]+)" data-count="(\d+)"', body[0])
    }


def numbers(page: str) -> dict[str, int]:
    body = re.search(r'<section class="card" id="numbers".*?</section>', page, re.S)
    assert body is not None
    return {
        key: int(count)
        for key, count in re.findall(
            r'<div data-key="([^"]+)"><dt>.*?</dt><dd>(\d+)</dd>', body[0], re.S
        )
    }


def delivery_rows(page: str) -> list[tuple[str, str]]:
    """(state, reason) of each row of the deliveries table, in order."""
    return re.findall(
        r'<tr data-delivery-id="[^"]+" data-state="([^"]*)" data-reason="([^"]*)"', page
    )


def bar_widths(page: str, section: str) -> dict[str, float]:
    body = re.search(rf'<section class="card" id="{section}".*?</section>', page, re.S)
    assert body is not None
    return {
        key: float(width)
        for key, width in re.findall(
            r'data-key="([^"]+)" data-count="\d+">.*?<rect class="fill" x="0" y="0" width="([\d.]+)"',
            body[0],
            re.S,
        )
    }


# -- sign-in -----------------------------------------------------------------------------------------


async def test_the_login_page_is_a_post_form_under_a_strict_policy(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.get("/login")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)
    assert re.search(r'<form method="post" action="/login">', response.text)
    assert 'name="api_key" type="password"' in response.text
    assert "Đăng nhập" in response.text and "Sign in" in response.text
    assert "set-cookie" not in response.headers


async def test_login_sets_a_signed_http_only_strict_expiring_cookie(
    browser: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = await sign_in(browser, tenant.key, origin=PUBLIC)
        assert response.status_code == 303
        assert response.headers["location"] == "/campaigns"
        assert_security_headers(response)
        (header,) = response.headers.get_list("set-cookie")
        attributes = {
            part.strip().split("=", 1)[0].lower(): part.strip().partition("=")[2]
            for part in header.split(";")[1:]
        }
        assert attributes["max-age"] == str(EIGHT_HOURS)
        assert attributes["expires"] == format_datetime(
            T0 + timedelta(seconds=EIGHT_HOURS), usegmt=True
        )
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "strict"
        assert attributes["path"] == "/"
        assert "secure" in attributes  # OUTREACH_PUBLIC_URL is https here
        cookie = session_of(response)
        # The cookie names the workspace and the key id, never the key.
        assert cookie.startswith(tenant.workspace_id + ".")
        assert tenant.key not in cookie
        read = ui_session.read(KeyRing(TEST_SECRET), cookie, max_age=EIGHT_HOURS, now=T0)
        assert read == ui_session.UiSession(tenant.workspace_id, tenant.key_id)
        page = await open_page(browser, "/campaigns", cookie)
        assert page.status_code == 200
        assert_security_headers(page)
        assert "acme" in page.text  # the workspace's name in the header
        assert tenant.key not in page.text
        # Signed in, the login form sends you on.
        again = await open_page(browser, "/login", cookie)
        assert (again.status_code, again.headers["location"]) == (303, "/campaigns")
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "/login" in logged  # the access log saw the requests at all
    assert tenant.key not in logged


async def test_a_wrong_key_gets_the_form_again_with_401_and_no_cookie(
    browser: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    forged = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    for key in (forged, "ok_not_a_key", "", "x" * 5000):
        response = await sign_in(browser, key, origin=PUBLIC)
        assert response.status_code == 401, key
        assert "set-cookie" not in response.headers
        assert_security_headers(response)
        assert 'role="alert"' in response.text
        assert 'name="api_key"' in response.text
        if key:
            assert key not in response.text
    # A revoked key cannot sign in either.
    async with sessions() as s, s.begin():
        await revoke_api_key(s, key_id=tenant.key_id, now=T0)
    revoked = await sign_in(browser, tenant.key)
    assert revoked.status_code == 401
    assert "set-cookie" not in revoked.headers


async def test_a_post_from_another_origin_is_refused(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    for origin in (
        "https://evil.example",
        "null",
        "http://outreach.test",
        "https://outreach.test:8443",
    ):
        response = await sign_in(browser, tenant.key, origin=origin)
        assert response.status_code == 403, origin
        assert "set-cookie" not in response.headers
        assert_security_headers(response)
    # Our own origin, written with its default port, and no Origin at all (a non-browser client)
    # are accepted: SameSite=Strict keeps other sites' requests from carrying the cookie.
    for headers in ({"origin": "https://OUTREACH.test:443"}, {}):
        assert (await sign_in(browser, tenant.key, **headers)).status_code == 303
    cookie = await signed_in(browser, tenant)
    foreign_logout = await browser.post(
        "/logout", headers={"origin": "https://evil.example", "Cookie": f"{COOKIE}={cookie}"}
    )
    assert foreign_logout.status_code == 403
    assert "set-cookie" not in foreign_logout.headers


async def test_logout_clears_the_cookie(browser: httpx.AsyncClient, tenant: Tenant) -> None:
    cookie = await signed_in(browser, tenant)
    response = await browser.post(
        "/logout", headers={"origin": PUBLIC, "Cookie": f"{COOKIE}={cookie}"}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    (header,) = response.headers.get_list("set-cookie")
    assert header.startswith((f'{COOKIE}="";', f"{COOKIE}=;"))
    assert "max-age=0" in header.lower()


# -- sessions that end ---------------------------------------------------------------------------


async def test_without_a_session_every_page_redirects_to_login(
    browser: httpx.AsyncClient,
) -> None:
    for path in ("/campaigns", "/campaigns/cmp_x", "/campaigns/cmp_x?state=sent"):
        response = await open_page(browser, path, None)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path
        assert_security_headers(response)
        assert "set-cookie" not in response.headers


async def test_an_expired_session_redirects_to_login(
    browser: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    cookie = await signed_in(browser, tenant)
    clock.advance(timedelta(seconds=EIGHT_HOURS - 1))
    assert (await open_page(browser, "/campaigns", cookie)).status_code == 200
    clock.advance(timedelta(seconds=2))
    response = await open_page(browser, "/campaigns", cookie)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    # The dead cookie is dropped.
    assert "max-age=0" in response.headers["set-cookie"].lower()


async def test_a_tampered_or_foreign_cookie_redirects_to_login(
    browser: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    cookie = await signed_in(browser, tenant)
    workspace_id, _, token = cookie.partition(".")
    ring = KeyRing(TEST_SECRET)
    # Not the last character: its low bits can be base64 padding that decodes to the same bytes.
    at = len(cookie) - 6
    forged = [
        cookie[:at] + ("A" if cookie[at] != "A" else "B") + cookie[at + 1 :],  # signature changed
        f"{other_tenant.workspace_id}.{token}",  # moved to another workspace
        # Signed correctly, but naming another workspace's key.
        ui_session.issue(ring, workspace_id=workspace_id, key_id=other_tenant.key_id, now=T0),
        # Another purpose's token (a link) under the same workspace key.
        f"{workspace_id}."
        + ring.sign(
            {"w": workspace_id, "k": tenant.key_id},
            workspace_id=workspace_id,
            purpose="click",
            now=T0,
        ),
        # Signed with another secret.
        ui_session.issue(
            KeyRing("another-secret-" + "y" * 40),
            workspace_id=workspace_id,
            key_id=tenant.key_id,
            now=T0,
        ),
        "garbage",
        tenant.key,  # the key itself is not a session
    ]
    for value in forged:
        response = await open_page(browser, "/campaigns", value)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), value
    assert (await open_page(browser, "/campaigns", cookie)).status_code == 200


async def test_revoking_the_key_ends_its_sessions(
    browser: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cookie = await signed_in(browser, tenant)
    assert (await open_page(browser, "/campaigns", cookie)).status_code == 200
    async with sessions() as s, s.begin():
        await revoke_api_key(s, key_id=tenant.key_id, now=T0)
    response = await open_page(browser, "/campaigns", cookie)
    assert (response.status_code, response.headers["location"]) == (303, "/login")


# -- the pages -------------------------------------------------------------------------------------


async def test_another_workspaces_campaign_is_a_404_page(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, other_tenant)
    theirs = await created_id(client, other_tenant, name="Bí mật của Globex")
    cookie = await signed_in(browser, tenant)
    for path in (f"/campaigns/{theirs}", "/campaigns/cmp_nothing"):
        response = await open_page(browser, path, cookie)
        assert response.status_code == 404, path
        assert_security_headers(response)
        assert "Không tìm thấy chiến dịch" in response.text
        assert "Bí mật của Globex" not in response.text
    listing = await open_page(browser, "/campaigns", cookie)
    assert "Bí mật của Globex" not in listing.text
    own = await open_page(browser, f"/campaigns/{theirs}", await signed_in(browser, other_tenant))
    assert own.status_code == 200
    assert "Bí mật của Globex" in own.text


async def seed(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> str:
    """The stats test's scenario (test_campaigns_api): 6 in the audience, 10 deliveries."""
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant, name="Tết <b>sale</b> & quà")
    run_a = await add_run(sessions, tenant, campaign_id, audience=4)
    run_b = await add_run(sessions, tenant, campaign_id, audience=2, occurrence="at")
    later = T0 + timedelta(hours=30)
    ids = await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_a,
        [
            {"contact_id": "ct_1", "state": "sent", "reason": "email.window_closed",
             "channel": "email", "sent_at": T0, "clicked_at": T0 + timedelta(hours=1)},
            {"contact_id": "ct_1", "step_index": 1, "state": "sent",
             "reason": "messenger.window", "channel": "messenger", "sent_at": later},
            {"contact_id": "ct_2", "state": "sent", "reason": "email.no_messenger",
             "channel": "email", "sent_at": T0},
            {"contact_id": "ct_3", "state": "sent", "reason": "messenger.window",
             "channel": "messenger", "sent_at": T0},
            {"contact_id": "ct_3", "step_index": 1, "state": "sent",
             "reason": "email.window_closed", "channel": "email", "sent_at": later},
            {"contact_id": "ct_4", "state": "skipped", "reason": "skipped.unsubscribed"},
            {"contact_id": "ct_4", "step_index": 1, "state": "held",
             "reason": "held.until_window"},
        ],
    )  # fmt: skip
    await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_b,
        [
            {"contact_id": "ct_5", "state": "failed", "reason": "failed.render"},
            {"contact_id": "ct_6", "state": "skipped", "reason": "skipped.frequency_cap"},
            {"contact_id": "ct_8", "state": "skipped", "reason": "skipped.frequency_cap"},
            {"contact_id": "ct_7", "state": "pending"},
        ],
    )
    async with sessions() as s, s.begin():
        s.add(
            InteractionEvent(
                id=new_id("ev"),
                workspace_id=tenant.workspace_id,
                contact_id="ct_1",
                page_id=PAGE,
                type="reopen",
                delivery_id=ids[0],
                data={"delivery_id": ids[0], "campaign_id": campaign_id, "intent": "support"},
                occurred_at=T0 + timedelta(hours=2),
                created_at=T0,
            )
        )
    return campaign_id


async def test_the_campaign_page_shows_the_funnel_reasons_and_deliveries(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await seed(client, tenant, sessions)
    cookie = await signed_in(browser, tenant)
    response = await open_page(browser, f"/campaigns/{campaign_id}", cookie)
    assert response.status_code == 200
    assert_security_headers(response)
    page = response.text
    # The name is escaped, not markup.
    assert "Tết &lt;b&gt;sale&lt;/b&gt; &amp; quà" in page
    assert "<b>sale</b>" not in page
    assert 'data-status="draft"' in page
    assert counts(page, "funnel") == {
        "audience": 6,
        "sent_messenger": 2,
        "fallback_email": 3,
        "clicked": 1,
        "reopened": 1,
        "completed": 1,
    }
    # Bars are drawn to scale: the longest is the audience.
    widths = bar_widths(page, "funnel")
    assert widths["audience"] == 100
    assert widths["fallback_email"] == 50
    assert widths["clicked"] == pytest.approx(100 / 6, abs=0.01)
    assert counts(page, "problems") == {
        "skipped.frequency_cap": 2,
        "skipped.unsubscribed": 1,
        "failed.render": 1,
    }
    for wording in ("Vượt giới hạn tần suất", "Frequency cap reached", "Lỗi nội dung mẫu"):
        assert wording in page
    assert numbers(page) == {
        "audience": 6, "deliveries": 11, "pending": 1, "claimed": 0, "sent": 5, "held": 1,
        "deferred": 0, "skipped": 3, "failed": 1, "cancelled": 0, "unsubscribed": 0,
    }  # fmt: skip
    rows = delivery_rows(page)
    assert len(rows) == 11
    assert sorted(rows) == sorted(
        [("sent", "email.window_closed")] * 2
        + [("sent", "messenger.window")] * 2
        + [
            ("sent", "email.no_messenger"),
            ("skipped", "skipped.unsubscribed"),
            ("held", "held.until_window"),
            ("failed", "failed.render"),
            ("skipped", "skipped.frequency_cap"),
            ("skipped", "skipped.frequency_cap"),
            ("pending", ""),
        ]
    )
    # Times in the workspace's zone (Asia/Ho_Chi_Minh, UTC+7): T0 is 09:00 UTC.
    assert '<time datetime="2026-11-20T09:00:00+00:00">2026-11-20 16:00</time>' in page
    # Routes of the sent deliveries, with their codes.
    assert re.search(r'<li data-key="email.window_closed">.*?<strong>2</strong>', page)


async def test_deliveries_filter_by_state_reason_and_channel(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign_id = await seed(client, tenant, sessions)
    cookie = await signed_in(browser, tenant)
    base = f"/campaigns/{campaign_id}"

    async def rows(query: str) -> list[tuple[str, str]]:
        response = await open_page(browser, f"{base}?{query}", cookie)
        assert response.status_code == 200, query
        return delivery_rows(response.text)

    assert sorted(await rows("state=skipped")) == [
        ("skipped", "skipped.frequency_cap"),
        ("skipped", "skipped.frequency_cap"),
        ("skipped", "skipped.unsubscribed"),
    ]
    assert await rows("reason=failed.render") == [("failed", "failed.render")]
    assert sorted(await rows("channel=messenger")) == [("sent", "messenger.window")] * 2
    assert await rows("state=sent&channel=email&reason=email.no_messenger") == [
        ("sent", "email.no_messenger")
    ]
    # The select's "All" is an empty value.
    assert len(await rows("state=&reason=&channel=")) == 11
    filtered = await open_page(browser, f"{base}?state=skipped", cookie)
    assert '<option value="skipped" selected>' in filtered.text
    # Filters narrow the table, never the chart.
    assert counts(filtered.text, "funnel")["audience"] == 6
    for query in ("state=lost", "reason=because", "channel=sms", "cursor=!!"):
        refused = await open_page(browser, f"{base}?{query}", cookie)
        assert refused.status_code == 400, query
        assert_security_headers(refused)
        assert "Bộ lọc không hợp lệ" in refused.text


async def test_deliveries_are_paginated_keeping_the_filters(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    run_id = await add_run(sessions, tenant, campaign_id, audience=60)
    await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_id,
        [{"contact_id": f"ct_s{i:02}", "state": "skipped", "reason": "skipped.bounced"}
         for i in range(53)]
        + [{"contact_id": "ct_pending", "state": "pending"}],
    )  # fmt: skip
    cookie = await signed_in(browser, tenant)
    first = await open_page(browser, f"/campaigns/{campaign_id}?state=skipped", cookie)
    assert len(delivery_rows(first.text)) == 50
    assert "Trang đầu" not in first.text
    link = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert link is not None
    next_url = html.unescape(link[1])
    assert next_url.startswith(f"/campaigns/{campaign_id}?state=skipped&cursor=")
    second = await open_page(browser, next_url, cookie)
    assert delivery_rows(second.text) == [("skipped", "skipped.bounced")] * 3
    assert 'rel="next"' not in second.text
    assert f'href="/campaigns/{campaign_id}?state=skipped"' in second.text  # back to page one
    contacts = re.findall(r"<code>(ct_s\d\d)</code>", first.text + second.text)
    assert sorted(contacts) == [f"ct_s{i:02}" for i in range(53)]


async def test_the_list_links_to_each_campaign_and_shows_a_pause_reason(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    first = await created_id(client, tenant, name="Một")
    second = await created_id(client, tenant, name="Hai")
    campaigns = table_of(Campaign)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(campaigns).where(campaigns.c.id == second).values(status="running")
        )
    await pause_page(sessions, "token_expired")
    cookie = await signed_in(browser, tenant)
    listing = (await open_page(browser, "/campaigns", cookie)).text
    assert re.findall(r'<a href="/campaigns/([^"]+)">', listing) == [second, first]
    page = (await open_page(browser, f"/campaigns/{second}", cookie)).text
    assert 'data-status="paused"' in page
    assert 'data-paused-reason="page_paused: token_expired"' in page
    assert "Trang đang tạm dừng: token_expired" in page
    assert "The Page is paused: token_expired" in page
