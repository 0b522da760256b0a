"""A plain-text version of an email step's HTML, for steps written without a `text` part.

A multipart/alternative email with a real text part reads better in text-only clients and is
less likely to be filed as spam than HTML alone. Links keep their address: `label (url)`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

_BLOCKS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "div", "dl", "dt", "dd", "figure",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
        "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
# Items start on a new line but do not end with one, so a list has no blank lines inside.
_ITEMS: Final = frozenset({"dd", "dt", "li", "tr"})
_HIDDEN: Final = frozenset({"head", "script", "style", "template", "title"})
_SPACES: Final = re.compile(r"[ \t\r\f\v\n]+")
_BLANK_LINES: Final = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self, *, template: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        # Reading a template's source: an href that is a Jinja expression is an address too.
        self._template = template
        self.parts: list[str] = []
        self._hidden = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n" if tag in {"p", "h1", "h2", "h3", "table"} else "\n")
            if tag == "li":
                self.parts.append("- ")
        if tag == "a":
            self._links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
        elif tag in _BLOCKS and tag not in _ITEMS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and (
                href.startswith(("http://", "https://", "mailto:"))
                or (self._template and "{{" in href)
            ):
                label = self.parts[-1].strip() if self.parts else ""
                if label != href:
                    self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str, *, template: bool = False) -> str:
    collector = _TextCollector(template=template)
    collector.feed(html)
    collector.close()
    lines = (line.strip() for line in "".join(collector.parts).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
