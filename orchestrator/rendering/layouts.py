"""Our own templates (`templates/email/`, `templates/pages/`): loaded once, StrictUndefined.

The templates folder sits at the repository root (DESIGN section 3), two levels above this
package: `orchestrator/rendering/layouts.py` -> `templates/`. That holds for a source checkout and
an editable install, which is how the service is run and deployed; a wheel would need the folder
shipped as package data.

`.html` is autoescaped; `.txt` is not, so plain parts never show `&amp;`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR: Final = Path(__file__).resolve().parents[2] / "templates"

Folder = Literal["email", "pages"]


@cache
def layout_environment(folder: Folder) -> Environment:
    """One environment per folder, so a template says `{% extends "base.html" %}` in both.

    Every template is compiled here, once: a broken template fails the first render (or the
    app's startup, if it calls this) instead of some later send, and no file is read again.
    """
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / folder),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    for name in environment.list_templates():
        environment.get_template(name)
    return environment


def render_layout(folder: Folder, name: str, /, **variables: object) -> str:
    return layout_environment(folder).get_template(name).render(variables)
