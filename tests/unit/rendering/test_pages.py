"""The public pages behind email links."""

from __future__ import annotations

import re

from orchestrator.rendering import (
    TEMPLATES_DIR,
    layout_environment,
    render_link_error_page,
    render_subscription_confirmed_page,
    render_unsubscribe_page,
    render_unsubscribed_page,
)


def test_the_templates_folder_is_the_repository_one_and_everything_compiles() -> None:
    assert TEMPLATES_DIR.name == "templates" and (TEMPLATES_DIR.parent / "pyproject.toml").exists()
    assert {"base.html", "base.txt", "fallback.html", "fallback.txt"} <= set(
        layout_environment("email").list_templates()
    )
    assert {"unsubscribe.html", "error.html"} <= set(layout_environment("pages").list_templates())


def test_unsubscribe_page_is_one_button_that_posts() -> None:
    html = render_unsubscribe_page(action_url="/u/abc?x=1&y=2", sender_name="Shop <Hoa>")
    assert '<form method="post" action="/u/abc?x=1&amp;y=2">' in html
    assert len(re.findall(r"<button\b", html)) == 1
    assert "Shop &lt;Hoa&gt;" in html and "<Hoa>" not in html
    assert '<html lang="vi">' in html and 'lang="en"' in html


def test_unsubscribed_page_confirms_without_a_form() -> None:
    html = render_unsubscribed_page(address_hint="a***@example.vn", sender_name="Shop")
    assert "<form" not in html
    assert 'role="status"' in html
    assert "a***@example.vn sẽ không nhận thêm email nào từ Shop." in html
    assert "Bạn sẽ không nhận thêm email nào từ chúng tôi." in render_unsubscribed_page()


def test_error_page_tells_invalid_from_expired() -> None:
    invalid = render_link_error_page(problem="invalid")
    expired = render_link_error_page(problem="expired")
    assert "<title>Liên kết không hợp lệ · This link is not valid</title>" in invalid
    assert "<h1>Liên kết đã hết hạn · This link has expired</h1>" in expired
    assert "hết hạn" not in invalid


def test_subscription_confirmed_page() -> None:
    html = render_subscription_confirmed_page(sender_name="Shop & Co")
    assert "<h1>Đăng ký thành công</h1>" in html
    assert "Shop &amp; Co" in html
