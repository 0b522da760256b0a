"""The text part derived from HTML."""

from __future__ import annotations

from orchestrator.rendering import html_to_text


def test_blocks_lists_links_and_entities() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<h2>Ưu   đãi</h2><p>Một<br>Hai &amp; ba</p>"
        "<ul><li>A</li><li><a href='https://x.vn/a'>B</a></li></ul>"
        "<p><a href='https://x.vn'>https://x.vn</a> <a href='#top'>lên</a></p>"
        "<script>alert(1)</script></body></html>"
    )
    assert html_to_text(html) == (
        "Ưu đãi\n\nMột\nHai & ba\n\n- A\n- B (https://x.vn/a)\n\nhttps://x.vn lên"
    )


def test_empty_html_gives_empty_text() -> None:
    assert html_to_text("") == ""
    assert html_to_text("<p> </p>") == ""
