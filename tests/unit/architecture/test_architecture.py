"""The house rules of STYLE.md, checked by parsing the source (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Pure modules: inputs (and `now`) in, a value out. They may not import anything that does I/O.
PURE = [
    "orchestrator/policy",
    "orchestrator/errors.py",
    "orchestrator/consent.py",
    "orchestrator/delivery_states.py",
    "orchestrator/links.py",
    "orchestrator/imports/parsing.py",
    "orchestrator/imports/validation.py",
    "channels/messenger/payloads.py",
    "channels/messenger/errors.py",
    "channels/messenger/webhooks.py",
    "channels/sandbox/signature.py",
    "channels/sandbox/send_validation.py",
    "channels/sandbox/webhook_events.py",
    "channels/sandbox/messaging_window.py",
]
IO_MODULES = {
    "sqlalchemy", "sqlmodel", "httpx", "httpcore", "fastapi", "starlette", "aiosmtplib",
    "smtplib", "socket", "asyncio", "requests", "urllib.request", "psycopg", "aiosqlite",
    "subprocess", "uvicorn", "apscheduler", "alembic", "orchestrator.db", "orchestrator.clock",
    "orchestrator.settings",
}  # fmt: skip
GRAB_BAGS = {"utils.py", "helpers.py", "common.py", "misc.py", "util.py", "helper.py"}


def _python_files(path: str) -> list[Path]:
    target = ROOT / path
    assert target.exists(), f"{path} is listed but missing"
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


def _imports(file: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_io(name: str) -> bool:
    return any(name == io or name.startswith(io + ".") for io in IO_MODULES)


def test_channels_never_import_orchestrator() -> None:
    files = _python_files("channels")
    assert len(files) > 3
    offenders = {
        str(f.relative_to(ROOT)): sorted(
            n for n in _imports(f) if n.split(".")[0] == "orchestrator"
        )
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pure_modules_import_no_io_library() -> None:
    offenders: dict[str, list[str]] = {}
    for path in PURE:
        for file in _python_files(path):
            bad = sorted(n for n in _imports(file) if _is_io(n))
            if bad:
                offenders[str(file.relative_to(ROOT))] = bad
    assert offenders == {}


def test_pure_modules_never_read_the_clock() -> None:
    offenders = []
    for path in PURE:
        for file in _python_files(path):
            text = file.read_text(encoding="utf-8")
            for needle in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today("):
                if needle in text:
                    offenders.append(f"{file.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_no_grab_bag_module_names() -> None:
    found = [
        str(f.relative_to(ROOT))
        for top in ("orchestrator", "channels")
        for f in (ROOT / top).rglob("*.py")
        if f.name in GRAB_BAGS
    ]
    assert found == []


def test_the_checker_itself_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import sqlalchemy as sa\nfrom orchestrator.db import x\nimport json\n")
    assert {n for n in _imports(sample) if _is_io(n)} == {"sqlalchemy", "orchestrator.db"}
