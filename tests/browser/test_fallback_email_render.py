"""The fallback email as a reader sees it: headless Chromium at 600px and at a 375px phone width.

Screenshots go to `test-artifacts/` (gitignored) for a person to look at; the assertions check
that both buttons are on screen, readable and point where they should, and that opening the
email fetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from orchestrator.rendering import (
    ContactVars,
    EmailStepTemplates,
    FallbackLinks,
    SenderIdentity,
    TemplateContext,
    render_step_email,
    render_unsubscribe_page,
)

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEIGHT = 900
LINKS = FallbackLinks(
    support_url="https://outreach.example/r/support-token?a=1&b=2",
    subscribe_url="https://outreach.example/r/subscribe-token",
    unsubscribe_url="https://outreach.example/u/unsubscribe-token",
)
STEP = EmailStepTemplates(
    subject="Ưu đãi tháng 12 cho {{ contact.name | default('bạn') }}",
    html=(
        "<h1 class='heading'>Chào {{ contact.name | default('bạn') }}!</h1>"
        "<p>Cửa hàng {{ campaign.name }} giảm giá đến 50% cho khách hàng thân thiết. "
        "Nhắn cho chúng tôi trên Messenger để được tư vấn, hoặc đăng ký để không bỏ lỡ ưu đãi.</p>"
    ),
    text="Chào {{ contact.name | default('bạn') }}!",
)
SENDER = SenderIdentity(name="Shop Hoa & Quà", postal_address="12 Lê Lợi\nQuận 1, TP. Hồ Chí Minh")
LABELS = {
    "vi": ("Nhận hỗ trợ", "Đăng ký nhận thông báo"),
    "en": ("Get support", "Subscribe to notifications"),
}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def write_artifact(name: str, html: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(html, encoding="utf-8")
    return path


def fallback_html(locale: str) -> str:
    context = TemplateContext(
        contact=ContactVars(name="Nguyễn Thị Ánh", locale=locale),
        page_username="shophoaqua",
        campaign_name="Hoa & Quà",
        links=LINKS,
    )
    return render_step_email(email=STEP, context=context, sender=SENDER).html


async def open_page(browser: Browser, path: Path, width: int) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport={"width": width, "height": HEIGHT})
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(path.as_uri())
    return page, requested


async def assert_on_screen(page: Page, name: str, width: int) -> None:
    link = page.get_by_role("link", name=name, exact=True)
    assert await link.count() == 1, name
    box = await link.bounding_box()
    assert box is not None, name
    assert box["width"] > 40 and box["height"] > 20, (name, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT, (name, box)
    assert await link.is_visible()


@pytest.mark.parametrize(("width", "locale"), [(600, "vi"), (375, "vi"), (375, "en_US")])
async def test_both_buttons_are_visible_readable_and_point_at_the_links(
    browser: Browser, width: int, locale: str
) -> None:
    language = "en" if locale.startswith("en") else "vi"
    path = write_artifact(f"fallback-email-{language}.html", fallback_html(locale))
    page, requested = await open_page(browser, path, width)
    try:
        await page.screenshot(
            path=ARTIFACTS / f"fallback-email-{language}-{width}.png", full_page=True
        )
        support, subscribe = LABELS[language]
        for name in (support, subscribe):
            await assert_on_screen(page, name, width)
        support_link = page.get_by_role("link", name=support, exact=True)
        subscribe_link = page.get_by_role("link", name=subscribe, exact=True)
        assert await support_link.get_attribute("href") == LINKS.support_url
        assert await subscribe_link.get_attribute("href") == LINKS.subscribe_url
        # Nothing scrolls sideways on a phone.
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        # The primary button's text is not the colour of its own background.
        colours = await support_link.evaluate(
            "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
        )
        assert colours == ["rgb(255, 255, 255)", "rgb(8, 102, 255)"]
        unsubscribe = page.get_by_role(
            "link", name="Unsubscribe" if language == "en" else "Hủy đăng ký"
        )
        assert await unsubscribe.get_attribute("href") == LINKS.unsubscribe_url
        # Opening the email fetches nothing but the file itself.
        assert requested == [path.as_uri()]
    finally:
        await page.context.close()


async def test_buttons_still_work_without_any_css(browser: Browser) -> None:
    """Some clients strip every style; the buttons must still be plain, readable links."""
    bare = re.sub(r'\sstyle="[^"]*"', "", fallback_html("vi"))
    assert "style=" not in bare
    path = write_artifact("fallback-email-no-css.html", bare)
    page, _ = await open_page(browser, path, 375)
    try:
        await page.screenshot(path=ARTIFACTS / "fallback-email-no-css-375.png", full_page=True)
        for name in LABELS["vi"]:
            link = page.get_by_role("link", name=name, exact=True)
            box = await link.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0
            assert box["x"] + box["width"] <= 375
    finally:
        await page.context.close()


async def test_unsubscribe_page_button_fits_a_phone(browser: Browser) -> None:
    path = write_artifact(
        "unsubscribe-page.html", render_unsubscribe_page(action_url="/u/token", sender_name="Shop")
    )
    page, requested = await open_page(browser, path, 375)
    try:
        await page.screenshot(path=ARTIFACTS / "unsubscribe-page-375.png", full_page=True)
        button = page.get_by_role("button", name="Hủy đăng ký · Unsubscribe")
        box = await button.bounding_box()
        assert box is not None and box["height"] >= 44
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert await page.get_by_role("heading", level=1).inner_text() == "Hủy đăng ký nhận email"
        assert await page.locator("form").get_attribute("method") == "post"
        assert requested == [path.as_uri()]
    finally:
        await page.context.close()
