"""The capture widget in headless Chromium, as a shop's visitor meets it (DESIGN section 10).

A real server (uvicorn, the app with its embedded scheduler, SQLite, email to an aiosmtpd server)
answers on https://127.0.0.1:<port>; the shop's page comes from a second tiny server and
is opened as http://localhost:<port> (an allowed origin, so every widget request is cross-origin)
or as http://127.0.0.1:<same port> (another origin, not allowed). The API is served over
TLS with a self-signed certificate, because the email's links must be https. It runs with a zero
minimum fill time and raised rate limits (`OUTREACH_CAPTURE_*`), so nothing waits for a clock;
delay triggers run on Playwright's fake clock. Screenshots go to `test-artifacts/`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import Browser, Page, Request, Response, expect
from sqlalchemy.ext.asyncio import async_sessionmaker

from orchestrator import migrate
from orchestrator.db import create_engine
from tests.browser.test_fallback_email_render import ARTIFACTS, browser  # noqa: F401
from tests.e2e.test_email_reopen_loop import Inbox, parsed
from tests.fixtures.api import make_tenant
from tests.fixtures.database import TEST_SECRET, make_settings
from tests.integration.capture.visitor import CONSENT, form_body

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "templates" / "widget" / "widget.js"
PAGE_ID = "104000000000777"
APP_ID = "990000000000777"
PAGE_USERNAME = "aodaihong"
HOST = "outreach-capture"
EMAIL_LABEL = "Email của bạn"
WHEEL = [
    {"label": "Giảm 5%", "weight": 0},
    {"label": "Giảm 10%", "weight": 0},
    {"label": "Freeship", "weight": 0},
    {"label": "Áo dài miễn phí", "weight": 1, "codes": ["TET-A1B2"]},
    {"label": "Túi vải", "weight": 0},
    {"label": "Chúc may mắn lần sau", "weight": 0, "losing": True},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_page(api: str, form_id: str, *, embedded: bool) -> str:
    """A shop's page with hostile styles: none of them may reach the widget."""
    slot = f'<div data-outreach-form="{form_id}"></div>' if embedded else ""
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Áo Dài Hồng</title>
<style>
* {{ font-family: "Comic Sans MS", cursive !important; color: rgb(255, 0, 0) !important; }}
button, input, a {{ background: rgb(0, 255, 0) !important; border-radius: 0 !important; }}
.tall {{ height: 4000px; background: linear-gradient(#fde, #fff); }}
</style></head>
<body>
<a id="before" href="#top">Trang chủ</a>
<h1>Áo Dài Hồng</h1><p>Bộ sưu tập Tết 2027: áo dài lụa, giao hàng toàn quốc.</p>
{slot}
<div class="tall"></div>
<button id="after" type="button">Mua ngay</button>
<script src="{api}/f/{form_id}/widget.js" async></script>
</body></html>"""


class SiteServer(ThreadingHTTPServer):
    api = ""


class SiteHandler(BaseHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        parts = self.path.partition("?")[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("shop", "embed"):
            self.send_error(404)
            return
        body = host_page(self.server.api, parts[1], embedded=parts[0] == "embed").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class Stack:
    api: str
    site: str  # allowed
    stranger: str  # the same page on another origin, not allowed
    headers: dict[str, str]
    tls: ssl.SSLContext  # trusts the server's self-signed certificate
    inbox: Inbox
    database: Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1: the email's links must be https (RFC 8058), so the API is."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = folder / "key.pem", folder / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def _wait_healthy(base: str, tls: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/healthz", timeout=1, verify=tls).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not start: {log.read_text(errors='replace')}")


def start_server(port: int, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "orchestrator.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--ssl-keyfile", str(cwd / "key.pem"), "--ssl-certfile", str(cwd / "cert.pem"),
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


async def _prepare(database: Path) -> str:
    """Migrate the server's database and give it a workspace; returns the workspace's key."""
    engine = create_engine(make_settings(f"sqlite+aiosqlite:///{database}"))
    try:
        await migrate.upgrade(engine)
        tenant = await make_tenant(async_sessionmaker(engine, expire_on_commit=False), "shop")
    finally:
        await engine.dispose()
    return tenant.key


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("widget")
    database = tmp / "outreach.db"
    key = await _prepare(database)
    _, cert_file = self_signed(tmp)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    site = SiteServer(("127.0.0.1", 0), SiteHandler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    port = free_port()
    api = f"https://127.0.0.1:{port}"
    site.api = api
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env.update(
        OUTREACH_DATABASE_URL=f"sqlite:///{database}",
        OUTREACH_SECRET_KEY=TEST_SECRET,
        OUTREACH_PUBLIC_URL=api,
        OUTREACH_GRAPH_API_URL="http://127.0.0.1:9",
        OUTREACH_SMTP_HOST="127.0.0.1",
        OUTREACH_SMTP_PORT=str(smtp.port),
        OUTREACH_EMAIL_FROM="Áo Dài Hồng <shop@aodaihong.vn>",
        OUTREACH_DISPATCH_INTERVAL_SECONDS="0.2",
        OUTREACH_INBOX_INTERVAL_SECONDS="0.2",
        OUTREACH_LOG_LEVEL="warning",
        # Set for the test, never waited for: people take longer than 2 s, a test need not.
        OUTREACH_CAPTURE_TOKEN_MIN_FILL_SECONDS="0",
        OUTREACH_CAPTURE_RATE_PER_IP="1000/minute",
        OUTREACH_CAPTURE_TOKEN_RATE_PER_IP="1000/minute",
        OUTREACH_CAPTURE_COUNTER_FLUSH_SECONDS="0",
    )
    log = tmp / "server.log"
    server = start_server(port, env, tmp, log)
    try:
        tls = ssl.create_default_context(cafile=cert_file)
        _wait_healthy(api, tls, server, log)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=api, headers=headers, verify=tls) as http:
            app = await http.post(
                "/v1/messenger-apps",
                json={"app_id": APP_ID, "app_secret": "s" * 32, "verify_token": "verify-token"},
            )
            assert app.status_code == 201, app.text
            made = await http.post(
                "/v1/pages",
                json={
                    "page_id": PAGE_ID,
                    "app_id": APP_ID,
                    "username": PAGE_USERNAME,
                    "access_token": "EAAB-widget-test",
                },
            )
            assert made.status_code == 201, made.text
        site_port = site.server_address[1]
        yield Stack(
            api=api,
            site=f"http://localhost:{site_port}",
            stranger=f"http://127.0.0.1:{site_port}",
            headers=headers,
            tls=tls,
            inbox=inbox,
            database=database,
        )
    finally:
        server.terminate()
        server.wait(timeout=15)
        site.shutdown()
        site.server_close()
        smtp.stop()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.api, headers=stack.headers, verify=stack.tls, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:  # noqa: F811
    """A fresh visitor: a new context, so nothing in localStorage."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="vi-VN", ignore_https_errors=True
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def create_form(api: httpx.AsyncClient, stack: Stack, **overrides: Any) -> str:
    body = form_body(allowed_origins=[stack.site], **overrides)
    response = await api.post("/v1/forms", json=body)
    assert response.status_code == 201, response.text
    form_id: str = response.json()["id"]
    return form_id


async def stats(api: httpx.AsyncClient, form_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/forms/{form_id}/stats")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def applied_stats(api: httpx.AsyncClient, form_id: str) -> dict[str, Any]:
    """The form's stats once the capture inbox has been applied."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = await stats(api, form_id)
        if found["captured"] or found["duplicates"]:
            return found
        await asyncio.sleep(0.1)  # polling for the scheduler's job, not waiting for a time
    pytest.fail(f"form {form_id} counted no capture within 20 s")


def stored_rows(stack: Stack, form_id: str, address: str) -> dict[str, int]:
    """Straight from the server's database file: whatever a capture could have written."""
    with sqlite3.connect(f"file:{stack.database}?mode=ro", uri=True) as db:
        queries = {
            "email_identities": ("SELECT count(*) FROM email_identities WHERE address = ?", address),
            "capture_token_uses": ("SELECT count(*) FROM capture_token_uses WHERE form_id = ?", form_id),
            "capture_spins": ("SELECT count(*) FROM capture_spins WHERE form_id = ?", form_id),
            "consent_ledger": ("SELECT count(*) FROM consent_ledger WHERE form_id = ?", form_id),
        }  # fmt: skip
        return {
            name: int(db.execute(sql, (arg,)).fetchone()[0]) for name, (sql, arg) in queries.items()
        }


async def host_state(page: Page, state: str) -> None:
    await expect(page.locator(HOST)).to_have_attribute("data-state", state)


async def next_frames(page: Page) -> None:
    """Two animation frames: scroll events of the last scroll have been handled."""
    await page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )


async def focused(page: Page) -> str:
    """What has the focus: `widget:<element>` inside the dialog, else `page:<id>`."""
    found: str = await page.evaluate(
        """() => {
            const host = document.querySelector("outreach-capture");
            const active = document.activeElement;
            if (host && active === host) {
                const inner = host.shadowRoot.activeElement;
                if (!inner) return "widget:none";
                const inside = inner.closest("[role=dialog]") ? "" : "(outside the dialog)";
                return "widget:" + (inner.id || inner.className || inner.tagName) + inside;
            }
            return "page:" + (active ? active.id || active.tagName : "none");
        }"""
    )
    return found


async def wait_for_mail(inbox: Inbox, address: str) -> EmailMessage:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for _, recipients, raw in list(inbox.messages):
            if address in recipients:
                return parsed(raw)
        await asyncio.sleep(0.1)  # polling for the scheduler's send, not waiting for a time
    pytest.fail(f"no email to {address} within 20 s")


# -- triggers -------------------------------------------------------------------------------------


async def test_popup_opens_after_its_delay_in_the_forms_look_untouched_by_the_page(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    look = {
        "title": "Ưu đãi Tết 2027",
        "body": "Nhận mã giảm 10% cho đơn đầu tiên.",
        "button_label": "Nhận mã",
        "primary_color": "#c2185b",
    }
    form_id = await create_form(api, stack, triggers={"delay": "30s"}, look=look)
    await page.clock.install()
    await page.goto(f"{stack.site}/shop/{form_id}")
    await host_state(page, "waiting")
    dialog = page.get_by_role("dialog")
    await page.clock.fast_forward(29_000)
    await next_frames(page)
    assert await dialog.count() == 0
    await page.clock.fast_forward(1_500)
    await expect(dialog).to_be_visible()
    await host_state(page, "open")
    assert await dialog.get_attribute("aria-modal") == "true"
    await expect(dialog).to_have_accessible_name("Ưu đãi Tết 2027")
    await expect(dialog.get_by_text("Nhận mã giảm 10% cho đơn đầu tiên.")).to_be_visible()
    await expect(page.get_by_label(EMAIL_LABEL)).to_be_focused()
    await expect(page.get_by_role("checkbox", name=CONSENT["text"])).not_to_be_checked()
    button = page.get_by_role("button", name="Nhận mã")
    # The form's colour, and nothing from the page's `* {... !important}` rules.
    colours = await button.evaluate(
        "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color,"
        " getComputedStyle(b).fontFamily]"
    )
    assert colours[:2] == ["rgb(194, 24, 91)", "rgb(255, 255, 255)"]
    assert "Comic" not in colours[2]
    heading = page.get_by_role("heading", name="Ưu đãi Tết 2027")
    assert await heading.evaluate("h => getComputedStyle(h).color") == "rgb(28, 30, 33)"
    # The page behind keeps its own styles.
    assert await page.locator("#after").evaluate("b => getComputedStyle(b).backgroundColor") == (
        "rgb(0, 255, 0)"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "capture-widget-popup.png", animations="disabled")


async def test_popup_opens_at_its_scroll_depth(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack, triggers={"scroll_percent": 50})
    await page.goto(f"{stack.site}/shop/{form_id}")
    await host_state(page, "waiting")
    scroll = "f => window.scrollTo(0, (document.documentElement.scrollHeight - innerHeight) * f)"
    await page.evaluate(scroll, 0.3)
    await next_frames(page)
    assert await page.get_by_role("dialog").count() == 0
    await page.evaluate(scroll, 0.6)
    await expect(page.get_by_role("dialog")).to_be_visible()


async def test_popup_opens_on_exit_intent(page: Page, api: httpx.AsyncClient, stack: Stack) -> None:
    form_id = await create_form(api, stack, triggers={"exit_intent": True})
    await page.goto(f"{stack.site}/shop/{form_id}")
    await host_state(page, "waiting")
    leave = (
        "y => document.documentElement.dispatchEvent("
        "new MouseEvent('mouseout', {bubbles: true, clientY: y, relatedTarget: null}))"
    )
    await page.evaluate(leave, 300)  # leaving sideways, towards another element: not an exit
    await next_frames(page)
    assert await page.get_by_role("dialog").count() == 0
    await page.evaluate(leave, -2)  # through the top, towards the tabs
    await expect(page.get_by_role("dialog")).to_be_visible()


async def test_frequency_caps_the_popup_without_asking_the_server(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack, triggers={"frequency": {"times": 1, "per": "1d"}})
    token_requests: list[str] = []
    page.on("request", lambda r: token_requests.append(r.url) if "/token" in r.url else None)
    await page.goto(f"{stack.site}/shop/{form_id}")
    await expect(page.get_by_role("dialog")).to_be_visible()
    await page.keyboard.press("Escape")
    await host_state(page, "closed")
    await page.reload()
    await host_state(page, "capped")
    assert await page.get_by_role("dialog").count() == 0
    assert len(token_requests) == 1


# -- submitting -----------------------------------------------------------------------------------


async def test_bad_addresses_show_the_error_and_a_good_one_is_confirmed_from_the_email(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack, page_id=PAGE_ID)
    captures: list[Request] = []
    page.on("request", lambda r: captures.append(r) if "/capture/" in r.url else None)
    await page.goto(f"{stack.site}/shop/{form_id}")
    email = page.get_by_label(EMAIL_LABEL)
    submit = page.get_by_role("button", name="Đăng ký")
    alert = page.get_by_role("alert")

    await email.fill("lan")
    await submit.click()
    await expect(alert).to_have_text("Địa chỉ email chưa đúng. Vui lòng kiểm tra lại.")
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(email).to_be_focused()
    assert captures == []  # caught in the page: nothing was sent

    # This one passes the widget's first check; the server's validation refuses it.
    await email.fill("lan..nguyen@example.com")
    await page.get_by_role("checkbox", name=CONSENT["text"]).check()
    async with page.expect_response(lambda r: "/capture/" in r.url) as refused_info:
        await submit.click()
    refused = await refused_info.value
    assert refused.status == 422
    await expect(alert).to_have_text("Địa chỉ email chưa đúng. Vui lòng kiểm tra lại.")
    await expect(email).to_have_attribute("aria-invalid", "true")

    address = "thu.ha@example.com"
    await email.fill(address)
    async with page.expect_response(lambda r: "/capture/" in r.url) as answer_info:
        await submit.click()
    answer: Response = await answer_info.value
    assert answer.status == 200
    body = await answer.json()
    assert body["status"] == "pending_confirmation"
    sent = answer.request
    assert sent.headers["content-type"].startswith("application/x-www-form-urlencoded")
    fields = dict(p.split("=", 1) for p in (sent.post_data or "").split("&"))
    assert fields["website"] == ""  # the honeypot, left empty
    assert fields["token"] and fields["consent"] == "true" and fields["locale"] == "vi"
    status = page.get_by_role("status")
    await expect(status.get_by_role("heading", name="Cảm ơn bạn!")).to_be_focused()
    await expect(status).to_contain_text("Chúng tôi vừa gửi một email xác nhận.")
    messenger = status.get_by_role("link", name="Tiếp tục trên Messenger")
    assert await messenger.get_attribute("href") == body["messenger_url"]
    assert body["messenger_url"].startswith(f"https://m.me/{PAGE_USERNAME}?ref=")
    assert await messenger.get_attribute("target") == "_blank"
    await host_state(page, "done")

    message = await wait_for_mail(stack.inbox, address)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    links = re.findall(rf'href="({re.escape(stack.api)}/c/[^"]+)"', html.get_content())
    assert links, html.get_content()
    assert (await stats(api, form_id))["confirmed"] == 0
    await page.goto(links[0])
    await expect(page.get_by_role("heading", name="Xác nhận đăng ký")).to_be_visible()
    await page.get_by_role("button", name=re.compile("^Xác nhận đăng ký")).click()
    await expect(page.get_by_role("heading", name="Đăng ký thành công")).to_be_visible()
    assert (await stats(api, form_id))["confirmed"] == 1
    assert stored_rows(stack, form_id, address)["consent_ledger"] == 2  # subscribe, confirm


async def test_the_wheel_lands_on_the_prize_the_server_drew(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(
        api,
        stack,
        kind="minigame",
        double_opt_in=False,
        page_id=PAGE_ID,
        wheel={"prizes": WHEEL},
        look={"primary_color": "#d32f2f", "title": "Quay là trúng"},
    )
    await page.goto(f"{stack.site}/shop/{form_id}")
    wheel = page.get_by_role("img", name=re.compile("^Vòng quay may mắn"))
    await expect(wheel).to_be_visible()
    assert await wheel.locator("[data-segment]").count() == len(WHEEL)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "capture-widget-wheel.png", animations="disabled")
    await page.get_by_label(EMAIL_LABEL).fill("mai.anh@example.com")
    await page.get_by_role("checkbox", name=CONSENT["text"]).check()
    async with page.expect_response(lambda r: "/capture/" in r.url) as answer_info:
        await page.get_by_role("button", name="Quay ngay").click()
    spin = (await (await answer_info.value).json())["spin"]
    assert (spin["label"], spin["status"], spin["code"]) == ("Áo dài miễn phí", "won", "TET-A1B2")
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Kết quả của bạn: Áo dài miễn phí", timeout=15_000)
    await expect(status.locator(".code")).to_have_text("TET-A1B2")
    await expect(status).to_contain_text("Bạn đã đăng ký thành công.")
    await expect(status.get_by_role("link", name="Tiếp tục trên Messenger")).to_be_visible()
    assert await wheel.get_attribute("data-segment") == spin["segment_id"]
    # The pointer (at the top) is over the drawn segment once the wheel has stopped.
    rotation = float(await wheel.get_attribute("data-rotation") or "nan")
    drawn = next(i for i, p in enumerate(WHEEL) if p["weight"])
    seg = 360 / len(WHEEL)
    under_pointer = (360 - rotation % 360) % 360
    assert drawn * seg < under_pointer < (drawn + 1) * seg
    turned = await wheel.locator("g").first.get_attribute("transform")
    assert turned == f"rotate({rotation:.2f})"
    await page.screenshot(path=ARTIFACTS / "capture-widget-wheel-prize.png")


async def test_an_embedded_form_renders_inline_and_subscribes(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack, kind="embedded", double_opt_in=False)
    await page.goto(f"{stack.site}/embed/{form_id}")
    slot = page.locator(f'[data-outreach-form="{form_id}"]')
    region = slot.get_by_role("region", name="Nhận ưu đãi qua email")
    await expect(region).to_be_visible()
    assert await page.get_by_role("dialog").count() == 0
    await region.get_by_label(EMAIL_LABEL).fill("bao.ngoc@example.com")
    await region.get_by_role("checkbox", name=CONSENT["text"]).check()
    await region.get_by_role("button", name="Đăng ký").click()
    await expect(slot.get_by_role("status")).to_contain_text("Bạn đã đăng ký thành công.")
    # The answer came at once; the `capture.apply` job makes the contact and counts it.
    assert (await applied_stats(api, form_id))["captured"] == 1
    rows = stored_rows(stack, form_id, "bao.ngoc@example.com")
    assert (rows["email_identities"], rows["consent_ledger"]) == (1, 1)


# -- refusals and the keyboard --------------------------------------------------------------------


async def test_a_page_on_another_origin_gets_nothing_and_its_capture_is_refused(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack)
    failed: list[Request] = []

    def on_failed(request: Request) -> None:
        failed.append(request)

    page.on("requestfailed", on_failed)
    await page.goto(f"{stack.stranger}/shop/{form_id}")
    await host_state(page, "unavailable")
    assert await page.get_by_role("dialog").count() == 0
    # The server refused the token (counted below as `origin`) without CORS headers, so the
    # browser kept the answer from the page.
    [token_request] = [r for r in failed if r.url == f"{stack.api}/f/{form_id}/token"]
    assert token_request.failure is not None
    assert (await stats(api, form_id))["rejected"] == {"origin": 1}
    # A genuine token (from a request with no Origin at all) does not help the page: a
    # form-encoded POST is never preflighted, so CORS would not stop it; the origin check does.
    token = (await api.get(f"/f/{form_id}/token")).json()["token"]
    address = "stranger@example.com"
    async with page.expect_response(lambda r: "/capture/" in r.url) as refused_info:
        await page.evaluate(
            """([url, address, token]) => fetch(url, {method: "POST", mode: "no-cors",
                body: new URLSearchParams({email: address, consent: "true", token, website: ""})})""",
            [f"{stack.api}/capture/{form_id}", address, token],
        )
    refused = await refused_info.value
    assert refused.status == 403
    assert stored_rows(stack, form_id, address) == dict.fromkeys(
        ("email_identities", "capture_token_uses", "capture_spins", "consent_ledger"), 0
    )
    counts = await stats(api, form_id)
    assert (counts["captured"], counts["rejected"]) == (0, {"origin": 2})


async def test_keyboard_tab_stays_in_the_dialog_and_escape_closes_it_and_returns_focus(
    page: Page, api: httpx.AsyncClient, stack: Stack
) -> None:
    form_id = await create_form(api, stack, triggers={"delay": "10s"})
    await page.clock.install()
    await page.goto(f"{stack.site}/shop/{form_id}")
    await host_state(page, "waiting")
    await page.focus("#before")
    await page.clock.fast_forward(10_500)
    await expect(page.get_by_role("dialog")).to_be_visible()
    assert await focused(page) == "widget:oc-email"
    forward = [await focused(page)]
    for _ in range(8):
        await page.keyboard.press("Tab")
        forward.append(await focused(page))
    # Email, consent, submit, close, then around again; never the page behind.
    cycle = ["widget:oc-email", "widget:oc-consent", "widget:primary", "widget:close"]
    assert forward == (cycle * 3)[:9]
    backward = []
    for _ in range(5):
        await page.keyboard.press("Shift+Tab")
        backward.append(await focused(page))
    assert backward == ["widget:close", "widget:primary", "widget:oc-consent", "widget:oc-email",
                        "widget:close"]  # fmt: skip
    # A click on the page behind does not take the focus out of the modal dialog.
    await page.locator("#after").focus()
    assert (await focused(page)).startswith("widget:")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await host_state(page, "closed")
    assert await focused(page) == "page:before"


def test_the_widget_stays_small_and_keeps_the_config_marker() -> None:
    source = WIDGET.read_bytes()
    assert len(source) < 30 * 1024
    assert source.count(b"/*__OUTREACH_CONFIG__*/null") == 1
    assert source.rstrip().endswith(b"})(/*__OUTREACH_CONFIG__*/null);")
