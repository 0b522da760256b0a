"""The campaign page in headless Chromium, as an operator meets it: sign in through the form with an
API key, open the campaign, read the funnel chart and the deliveries, on a desktop and a phone.

A real server (uvicorn, SQLite, no scheduler so the seeded deliveries stay as they are) answers on
http://127.0.0.1:<port>, which is also its OUTREACH_PUBLIC_URL, so the form's POST carries our
Origin. Screenshots at 1280 px and 375 px go to `test-artifacts/`. The page must work under its
own Content-Security-Policy: any violation shows up as a console error and fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.async_api import Browser, ConsoleMessage, Page, Request, expect
from sqlalchemy.ext.asyncio import async_sessionmaker

from orchestrator import migrate
from orchestrator.db import create_engine
from orchestrator.ids import new_id
from orchestrator.models import Campaign, table_of
from orchestrator.ui_session import COOKIE_NAME
from tests.browser.test_fallback_email_render import ARTIFACTS, browser  # noqa: F401
from tests.fixtures.api import T0, Tenant, make_tenant
from tests.fixtures.database import TEST_SECRET, make_settings
from tests.integration.api.test_campaigns_api import add_deliveries, add_run

pytestmark = pytest.mark.browser

CAMPAIGN_NAME = "Khuyến mãi Tết 2027"
SKIPPED = 4  # skipped.frequency_cap rows, the filter's answer
SENT_EMAIL = 6
SENT_MESSENGER = 9
ROWS = SENT_MESSENGER + SENT_EMAIL + SKIPPED + 2  # + one failed, one held


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    key: str
    campaign_id: str


async def _prepare(database: Path) -> tuple[str, str]:
    """Migrate, make a workspace and a campaign with deliveries; returns (key, campaign id)."""
    engine = create_engine(make_settings(f"sqlite+aiosqlite:///{database}"))
    try:
        await migrate.upgrade(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        tenant: Tenant = await make_tenant(sessions, "Áo Dài Hồng")
        campaign_id = new_id("cmp")
        async with sessions() as s, s.begin():
            await s.execute(
                sa.insert(table_of(Campaign)).values(
                    id=campaign_id,
                    workspace_id=tenant.workspace_id,
                    name=CAMPAIGN_NAME,
                    page_id="104000000000555",
                    purpose="promotional",
                    topic="sale",
                    spec={},
                    status="running",
                    launched_at=T0,
                    created_at=T0,
                    updated_at=T0,
                )
            )
        run_id = await add_run(sessions, tenant, campaign_id, audience=20)
        rows: list[dict[str, Any]] = (
            [{"contact_id": f"ct_m{i:02}", "state": "sent", "reason": "messenger.window",
              "channel": "messenger", "sent_at": T0} for i in range(SENT_MESSENGER)]
            + [{"contact_id": f"ct_e{i:02}", "state": "sent", "reason": "email.window_closed",
                "channel": "email", "sent_at": T0 + timedelta(minutes=5),
                "clicked_at": T0 + timedelta(hours=1) if i < 3 else None}
               for i in range(SENT_EMAIL)]
            + [{"contact_id": f"ct_s{i:02}", "state": "skipped",
                "reason": "skipped.frequency_cap"} for i in range(SKIPPED)]
            + [{"contact_id": "ct_f00", "state": "failed", "reason": "failed.retries_exhausted"},
               {"contact_id": "ct_h00", "step_index": 1, "state": "held",
                "reason": "held.until_window"}]
        )  # fmt: skip
        await add_deliveries(sessions, tenant, campaign_id, run_id, rows)
    finally:
        await engine.dispose()
    return tenant.key, campaign_id


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling for the server to listen, not waiting for a time
    pytest.fail(f"the server did not start: {log.read_text(errors='replace')}")


def start_server(port: int, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "orchestrator.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    tmp = tmp_path_factory.mktemp("campaign-page")
    database = tmp / "outreach.db"
    key, campaign_id = await _prepare(database)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env.update(
        OUTREACH_DATABASE_URL=f"sqlite:///{database}",
        OUTREACH_SECRET_KEY=TEST_SECRET,
        OUTREACH_PUBLIC_URL=url,
        OUTREACH_GRAPH_API_URL="http://127.0.0.1:9",
        OUTREACH_EMBEDDED_SCHEDULER="false",
        OUTREACH_LOG_LEVEL="warning",
    )
    log = tmp / "server.log"
    proc = start_server(port, env, tmp, log)
    try:
        _wait_healthy(url, proc, log)
        yield Server(url=url, key=key, campaign_id=campaign_id)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert key not in log.read_text(errors="replace")


@dataclass
class Watched:
    page: Page
    requests: list[Request]
    problems: list[str]


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:  # noqa: F811
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    page = await context.new_page()
    requests: list[Request] = []
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A Content-Security-Policy violation is reported as a console error.
        if message.type in ("error", "warning"):
            problems.append(message.text)

    def on_request(request: Request) -> None:
        requests.append(request)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield Watched(page, requests, problems)
    finally:
        await context.close()


async def sign_in(watched: Watched, server: Server) -> None:
    page = watched.page
    await page.goto(f"{server.url}/campaigns")
    await expect(page).to_have_url(f"{server.url}/login")
    await page.get_by_label("Khóa API").fill(server.key)
    await page.get_by_role("button", name="Đăng nhập · Sign in").click()
    await expect(page).to_have_url(f"{server.url}/campaigns")


async def test_sign_in_and_read_the_campaign_on_a_desktop_and_a_phone(
    watched: Watched, server: Server
) -> None:
    page = watched.page
    await sign_in(watched, server)

    # The key went in the POST body, with our Origin, and is in no URL.
    (login_post,) = [r for r in watched.requests if r.method == "POST"]
    assert login_post.url == f"{server.url}/login"
    assert (await login_post.all_headers())["origin"] == server.url
    assert all(server.key not in r.url for r in watched.requests)
    # HttpOnly: scripts cannot read the session; the browser holds it Strict.
    assert COOKIE_NAME not in await page.evaluate("document.cookie")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == COOKIE_NAME]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] > time.time() + 7 * 3600

    await page.get_by_role("link", name=CAMPAIGN_NAME).click()
    await expect(page).to_have_url(f"{server.url}/campaigns/{server.campaign_id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(CAMPAIGN_NAME)
    assert server.key not in await page.content()

    # The funnel: six bars, each drawn to scale against the audience's track.
    bars = page.locator("#funnel li")
    await expect(bars).to_have_count(6)
    expected = {"audience": 20, "sent_messenger": SENT_MESSENGER, "fallback_email": SENT_EMAIL,
                "clicked": 3, "reopened": 0, "completed": 0}  # fmt: skip
    for index, (stage, count) in enumerate(expected.items()):
        bar = bars.nth(index)
        assert await bar.get_attribute("data-key") == stage
        assert await bar.get_attribute("data-count") == str(count)
        await expect(bar.locator("svg.bar")).to_be_visible()
        track = await bar.locator("svg.bar").bounding_box()
        fill = await bar.locator("rect.fill").bounding_box()
        assert track is not None and fill is not None
        assert fill["width"] == pytest.approx(track["width"] * count / 20, abs=1.5), stage
    # Skipped and failed by reason, with their codes.
    problems = page.locator("#problems li")
    await expect(problems).to_have_count(2)
    await expect(problems.first).to_contain_text("skipped.frequency_cap")
    await expect(problems.first).to_contain_text("Vượt giới hạn tần suất")
    # The deliveries table: every row on screen with its reason.
    rows = page.locator("table.deliveries tbody tr")
    await expect(rows).to_have_count(ROWS)
    await expect(rows.first).to_be_visible()
    await expect(page.locator("table.deliveries")).to_contain_text("messenger.window")
    # The style element ran under the policy (its hash matched): the button is Messenger blue.
    colour = await page.get_by_role("button", name="Lọc · Filter").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert colour == "rgb(8, 102, 255)"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "campaign-page-1280.png", full_page=True)

    await page.set_viewport_size({"width": 375, "height": 812})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await expect(bars.first.locator("svg.bar")).to_be_visible()
    await expect(rows.nth(ROWS - 1)).to_be_visible()
    for index in (0, ROWS - 1):
        box = await rows.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    await page.screenshot(path=ARTIFACTS / "campaign-page-375.png", full_page=True)

    # Filters are a plain GET form: query parameters, not secrets.
    await page.get_by_label("Trạng thái").select_option("skipped")
    await page.get_by_role("button", name="Lọc · Filter").click()
    await expect(page).to_have_url(
        f"{server.url}/campaigns/{server.campaign_id}?state=skipped&reason=&channel="
    )
    await expect(rows).to_have_count(SKIPPED)
    for index in range(SKIPPED):
        assert await rows.nth(index).get_attribute("data-state") == "skipped"

    # Nothing but our own server was asked for anything, and the policy blocked nothing.
    assert all(r.url.startswith(server.url + "/") for r in watched.requests)
    assert watched.problems == []


async def test_the_login_form_on_a_phone_and_signing_out(watched: Watched, server: Server) -> None:
    page = watched.page
    await page.set_viewport_size({"width": 375, "height": 812})
    await page.goto(f"{server.url}/login")
    forged = server.key[:-1] + ("A" if server.key[-1] != "A" else "B")
    await page.get_by_label("Khóa API").fill(forged)
    await page.get_by_role("button", name="Đăng nhập · Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Khóa API không đúng")
    assert [c for c in await page.context.cookies() if c["name"] == COOKIE_NAME] == []
    # Chromium reports the 401 itself on the console; nothing else may be there.
    assert [p for p in watched.problems if "401" not in p] == []
    watched.problems.clear()
    button = page.get_by_role("button", name="Đăng nhập · Sign in")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "campaign-login-375.png", full_page=True)

    await sign_in(watched, server)
    await page.get_by_role("button", name="Đăng xuất · Sign out").click()
    await expect(page).to_have_url(f"{server.url}/login")
    assert [c for c in await page.context.cookies() if c["name"] == COOKIE_NAME] == []
    await page.goto(f"{server.url}/campaigns/{server.campaign_id}")
    await expect(page).to_have_url(f"{server.url}/login")
    assert watched.problems == []
