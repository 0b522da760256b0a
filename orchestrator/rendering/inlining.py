"""CSS inlining for email HTML: many mail clients drop `<style>`, all honour `style=""`."""

from __future__ import annotations

from typing import Final

import css_inline

# Remote loading off: a `<link rel=stylesheet>` in user content must not make us fetch a URL
# (and `keep_link_tags=False`, the default, drops the tag).
_INLINER: Final = css_inline.CSSInliner(load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    return _INLINER.inline(html)
