"""The fallback email and the double opt-in email: escaping per part, button labels by locale
and per campaign, the footer, and CSS inlined without fetching anything."""

from __future__ import annotations

import re
import socket
import unicodedata

import pytest
from markupsafe import Markup

from orchestrator.rendering import (
    ButtonLabels,
    ButtonOverrides,
    ContactVars,
    EmailStepTemplates,
    FallbackLinks,
    RenderedEmail,
    RenderError,
    SenderIdentity,
    TemplateContext,
    check_buttons,
    default_button_labels,
    language_for,
    render_confirmation_email,
    render_fallback_email,
    render_step_email,
    resolve_button_labels,
)

LINKS = FallbackLinks(
    support_url="https://o.example/r/sup?x=1&y=2",
    subscribe_url="https://o.example/r/sub",
    unsubscribe_url="https://o.example/u/uns",
)
SENDER = SenderIdentity(name="Shop Hoa & Quà", postal_address="12 Lê Lợi\nQuận 1, TP. Hồ Chí Minh")
STEP = EmailStepTemplates(
    subject="Ưu đãi cho {{ contact.name | default('bạn') }}",
    html="<p>Chào {{ contact.name | default('bạn') }}, {{ contact.attributes.note }}</p>",
    text="Chào {{ contact.name | default('bạn') }}, {{ contact.attributes.note }}",
)
VI = ("Nhận hỗ trợ", "Đăng ký nhận thông báo")
EN = ("Get support", "Subscribe to notifications")


def context(
    *, name: str | None = "<script>x</script>", locale: str | None = None
) -> TemplateContext:
    return TemplateContext(
        contact=ContactVars(name=name, locale=locale, attributes={"note": "Tôi & bạn"}),
        page_username="shop",
        campaign_name="Tết",
        links=LINKS,
    )


def render(step: EmailStepTemplates = STEP, **kwargs: str | None) -> RenderedEmail:
    return render_step_email(email=step, context=context(**kwargs), sender=SENDER)


def button_texts(html: str) -> list[str]:
    return re.findall(r'<a class="button-link[^"]*"[^>]*>([^<]*)</a>', html)


def button_hrefs(html: str) -> list[str]:
    return re.findall(r'<a class="button-link[^"]*"[^>]*href="([^"]*)"', html)


# --- escaping ------------------------------------------------------------------------------


def test_a_script_name_is_escaped_in_html_and_raw_in_text() -> None:
    email = render()
    assert "&lt;script&gt;x&lt;/script&gt;" in email.html
    assert "<script>" not in email.html
    assert "Chào <script>x</script>, Tôi & bạn" in email.text
    assert email.subject == "Ưu đãi cho <script>x</script>"


def test_an_ampersand_is_escaped_only_in_the_html_source() -> None:
    email = render()
    assert "Tôi &amp; bạn" in email.html
    assert "Tôi & bạn" in email.text
    assert "&amp;" not in email.text
    assert "Shop Hoa & Quà" in email.text and "Shop Hoa &amp; Quà" in email.html
    assert f"{VI[0]}: https://o.example/r/sup?x=1&y=2" in email.text


def test_the_subject_is_one_line() -> None:
    step = EmailStepTemplates(subject="Ưu đãi\r\nBcc: x@y.z\n{{ campaign.name }}", html="<p>x</p>")
    assert render(step).subject == "Ưu đãi Bcc: x@y.z Tết"


def test_everything_is_nfc() -> None:
    step = EmailStepTemplates(
        subject=unicodedata.normalize("NFD", "Ưu đãi"),
        html=unicodedata.normalize("NFD", "<p>Chúc mừng năm mới</p>"),
    )
    email = render(step)
    assert email.subject == "Ưu đãi"
    assert "Chúc mừng năm mới" in email.html and "Chúc mừng năm mới" in email.text
    for part in (email.subject, email.html, email.text):
        assert unicodedata.is_normalized("NFC", part)


# --- buttons ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "labels"),
    [
        (None, VI),
        ("vi", VI),
        ("vi_VN", VI),
        ("fr_FR", VI),
        ("en", EN),
        ("en_US", EN),
        ("EN-gb", EN),
    ],
)
def test_button_labels_follow_the_contact_locale(
    locale: str | None, labels: tuple[str, str]
) -> None:
    email = render(locale=locale)
    assert button_texts(email.html) == list(labels)
    assert f"{labels[0]}: {LINKS.support_url}" in email.text
    assert f"{labels[1]}: {LINKS.subscribe_url}" in email.text


def test_buttons_point_at_the_links() -> None:
    assert button_hrefs(render().html) == [
        "https://o.example/r/sup?x=1&amp;y=2",
        "https://o.example/r/sub",
    ]


def test_campaign_overrides_replace_labels_per_language() -> None:
    buttons: ButtonOverrides = {
        "support": {"vi": "Chat với {{ page.username }}", "en": "Talk to {{ page.username }}"},
        "subscribe": {"vi": "Nhận tin <Tết>"},
    }
    step = EmailStepTemplates(subject="s", html="<p>x</p>", buttons=buttons)
    vi = render(step, locale="vi")
    en = render(step, locale="en_US")
    assert button_texts(vi.html) == ["Chat với shop", "Nhận tin &lt;Tết&gt;"]
    assert "Nhận tin <Tết>: https://o.example/r/sub" in vi.text
    # No English override for "subscribe": the default English label, not the Vietnamese one.
    assert button_texts(en.html) == ["Talk to shop", EN[1]]


def test_resolve_button_labels_prefers_overrides() -> None:
    assert resolve_button_labels(None, "vi") == ButtonLabels(*VI)
    assert resolve_button_labels({"support": {"en": "Help"}}, "en") == ButtonLabels("Help", EN[1])
    assert resolve_button_labels({"support": {"en": ""}}, "en") == default_button_labels("en")
    assert language_for("en-AU") == "en" and language_for("vi") == "vi" and language_for("") == "vi"


def test_a_bad_label_names_its_field() -> None:
    step = EmailStepTemplates(
        subject="s", html="<p>x</p>", buttons={"support": {"en": "Hi {{ contact.attributes.x }}"}}
    )
    with pytest.raises(RenderError) as caught:
        render(step, locale="en")
    assert caught.value.field == "email.buttons.support.en"
    assert caught.value.code == "undefined"


def test_a_label_that_renders_empty_is_refused() -> None:
    step = EmailStepTemplates(
        subject="s", html="<p>x</p>", buttons={"subscribe": {"vi": "{{ '' }}"}}
    )
    with pytest.raises(RenderError) as caught:
        render(step)
    assert caught.value.field == "email.buttons.subscribe.vi"


@pytest.mark.parametrize(
    ("buttons", "field", "code"),
    [
        ({"help": {"vi": "x"}}, "email.buttons.help", "invalid"),
        ({"support": {"fr": "x"}}, "email.buttons.support.fr", "invalid"),
        ({"support": {"vi": "  "}}, "email.buttons.support.vi", "invalid"),
        ({"subscribe": {"en": "{{ contact.name "}}, "email.buttons.subscribe.en", "syntax"),
        ({"subscribe": {"en": "{{ whoever }}"}}, "email.buttons.subscribe.en", "unknown_variable"),
    ],
)
def test_check_buttons_names_the_bad_field(buttons: ButtonOverrides, field: str, code: str) -> None:
    with pytest.raises(RenderError) as caught:
        check_buttons(buttons)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_check_buttons_accepts_the_design_shape() -> None:
    check_buttons(None)
    check_buttons(
        {
            "support": {"vi": "Nhận hỗ trợ", "en": "Get support"},
            "subscribe": {"vi": "Đăng ký nhận thông báo", "en": "Subscribe to notifications"},
        }
    )


# --- fields of the step ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (EmailStepTemplates(subject="{{ contact.x }}", html="<p>x</p>"), "email.subject"),
        (EmailStepTemplates(subject="s", html="{{ contact.x }}"), "email.html"),
        (EmailStepTemplates(subject="s", html="x", text="{{ contact.x }}"), "email.text"),
    ],
)
def test_each_user_template_fails_under_its_own_field(step: EmailStepTemplates, field: str) -> None:
    with pytest.raises(RenderError) as caught:
        render(step)
    assert caught.value.field == field


def test_the_text_part_is_derived_from_the_html_when_the_step_has_none() -> None:
    step = EmailStepTemplates(
        subject="s",
        html='<h1>Tết</h1><p>Xem <a href="https://shop.vn/tet">ưu đãi</a> &amp; quà.</p>',
    )
    text = render(step).text
    assert text.startswith("Tết\n\nXem ưu đãi (https://shop.vn/tet) & quà.\n")


def test_links_are_required_for_a_fallback_email() -> None:
    bare = TemplateContext(contact=ContactVars(name="An"))
    with pytest.raises(ValueError, match="links"):
        render_step_email(email=STEP, context=bare, sender=SENDER)


# --- footer ---------------------------------------------------------------------------------


def test_footer_has_sender_postal_address_and_unsubscribe_in_both_parts() -> None:
    email = render()
    assert "<strong>Shop Hoa &amp; Quà</strong>" in email.html
    assert "<br>12 Lê Lợi" in email.html and "<br>Quận 1, TP. Hồ Chí Minh" in email.html
    assert '<a href="https://o.example/u/uns"' in email.html
    assert "12 Lê Lợi\nQuận 1, TP. Hồ Chí Minh" in email.text
    assert "Hủy đăng ký: https://o.example/u/uns" in email.text
    assert render(locale="en").text.count("Unsubscribe: https://o.example/u/uns") == 1


# --- CSS inlining ------------------------------------------------------------------------------


def test_css_is_inlined_and_style_tags_are_gone() -> None:
    html = render().html
    assert "<style" not in html
    assert re.search(r'<a class="button-link"[^>]*style="[^"]*color: #ffffff', html)
    assert re.search(r'<td class="content"[^>]*style="[^"]*padding: 24px', html)
    assert html.startswith("<!DOCTYPE html>")


def test_a_stylesheet_link_in_user_content_is_dropped_not_fetched() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        step = EmailStepTemplates(
            subject="s",
            html=f'<link rel="stylesheet" href="http://127.0.0.1:{port}/evil.css"><p class="x">hi</p>',
        )
        html = render(step).html
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert "<link" not in html
    assert '<p class="x"' in html


def test_render_fallback_email_takes_already_rendered_parts() -> None:
    email = render_fallback_email(
        content_html=Markup("<p>Sẵn <b>sàng</b></p>"),
        content_text="Sẵn sàng",
        subject="Chủ đề\nhai dòng",
        labels=ButtonLabels(support="A & B", subscribe="C"),
        locale="en",
        links=LINKS,
        sender=SENDER,
    )
    assert email.subject == "Chủ đề hai dòng"
    assert "<b>sàng</b>" in email.html
    assert button_texts(email.html) == ["A &amp; B", "C"]
    assert 'lang="en"' in email.html
    assert "A & B: https://o.example/r/sup?x=1&y=2" in email.text


# --- double opt-in -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "subject", "button"),
    [
        (None, "Xác nhận đăng ký nhận email từ Shop Hoa & Quà", "Xác nhận đăng ký"),
        ("en_GB", "Please confirm your subscription to Shop Hoa & Quà", "Confirm subscription"),
    ],
)
def test_confirmation_email(locale: str | None, subject: str, button: str) -> None:
    email = render_confirmation_email(
        confirm_url="https://o.example/c/tok?a=1&b=2", sender=SENDER, locale=locale
    )
    assert email.subject == subject
    assert button_texts(email.html) == [button]
    assert button_hrefs(email.html) == ["https://o.example/c/tok?a=1&amp;b=2"]
    assert f"{button}: https://o.example/c/tok?a=1&b=2" in email.text
    assert "/u/" not in email.html and "<style" not in email.html
    assert "12 Lê Lợi" in email.text
