"""The policy stays pure: standard-library value types only, no I/O, no clock, no channels."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import orchestrator.policy

POLICY_DIR = Path(orchestrator.policy.__file__).parent
ALLOWED = {
    "__future__",
    "collections.abc",
    "dataclasses",
    "datetime",
    "enum",
    "re",
    "types",
    "typing",
    "zoneinfo",
}
CLOCK_READS = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}


def policy_modules() -> list[Path]:
    modules = sorted(POLICY_DIR.glob("*.py"))
    assert len(modules) >= 8
    return modules


def test_policy_imports_only_value_types_and_itself() -> None:
    for module in policy_modules():
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name in ALLOWED or name.startswith("orchestrator.policy."), (
                    f"{module.name} imports {name}"
                )


def test_policy_never_reads_the_clock() -> None:
    for module in policy_modules():
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                # `some_datetime.time()` is a wall time, `time.time()` is a clock read.
                module_time = func.attr == "time" and ast.unparse(func.value) == "time"
                assert func.attr not in CLOCK_READS, f"{module.name} calls .{func.attr}()"
                assert not module_time, f"{module.name} calls time.time()"


def test_importing_the_policy_loads_no_io_library() -> None:
    script = (
        "import sys, orchestrator.policy; "
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    forbidden = {"channels", "sqlalchemy", "sqlmodel", "httpx", "fastapi", "aiosmtplib", "socket"}
    assert "orchestrator" in loaded
    assert not loaded & forbidden
