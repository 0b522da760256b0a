"""The text part of a step without one: derived once from the HTML template, then rendered per
contact, it reads as the text derived from each rendered email would."""

from __future__ import annotations

import pytest

from orchestrator.campaigns.steps import text_template_from_html
from orchestrator.rendering import (
    ContactVars,
    FallbackLinks,
    TemplateContext,
    html_to_text,
    render_user_html,
    render_user_text,
)

LINKS = FallbackLinks(
    support_url="https://shop.test/r/s", subscribe_url="https://shop.test/r/n",
    unsubscribe_url="https://shop.test/u/x",
)  # fmt: skip


@pytest.mark.parametrize(
    "source",
    [
        "<p>Chào {{ contact.name | default('bạn') }}!</p><p>Áo dài giảm 30% &amp; freeship</p>",
        '<p><a href="{{ links.support }}">Nhận hỗ trợ</a> hoặc <a href="https://m.me/shop">m.me</a></p>',
        "<ul>{% for i in [1, 2] %}<li>Mã {{ i }}</li>{% endfor %}</ul><p>{{ contact.email }}</p>",
        "<h1>Tết</h1><p>{% if contact.name is defined %}{{ contact.name }} ơi{% else %}Bạn ơi"
        "{% endif %}</p>",
    ],
)
@pytest.mark.parametrize("name", ["Chị Lan", None, "A & <B>"])
def test_derived_text_renders_like_the_text_of_the_rendered_html(
    source: str, name: str | None
) -> None:
    context = TemplateContext(contact=ContactVars(name=name, email="lan@example.com"), links=LINKS)
    derived = text_template_from_html(source)
    assert derived is not None
    expected = html_to_text(str(render_user_html(source, context, field="email.html")))
    assert render_user_text(derived, context, field="email.text").strip() == expected


def test_markup_inside_a_string_literal_is_read_as_markup() -> None:
    # A known difference, kept: the literal's tags are read as HTML, as they were written.
    assert text_template_from_html("<p>{{ contact.name | default('<b>bạn</b>') }}</p>") == (
        "{{ contact.name | default('bạn') }}"
    )


def test_a_template_that_does_not_survive_the_reading_is_not_derived() -> None:
    # The tag inside the string literal is read as markup: the text would not parse.
    assert text_template_from_html("<p>{{ 'a<br>b' + }}</p>") is None
