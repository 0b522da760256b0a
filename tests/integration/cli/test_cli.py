"""The `outreach` command as a user runs it: separate processes, a real server on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fixtures.database import TEST_SECRET, create_pg_schema, drop_pg_schema

OUTREACH = [sys.executable, "-m", "orchestrator"]


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env["OUTREACH_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OUTREACH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], cwd: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*OUTREACH, "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"server did not start: {out}")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout and not proc.stdout.closed:
            proc.stdout.close()


def ready_within(base: str, *, seconds: float) -> httpx.Response:
    """/readyz polled as an orchestrator does: the first heartbeat lands just after start."""
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.get(f"{base}/readyz", timeout=5)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_first_start_prints_the_key_once_and_never_logs_it(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'outreach.db'}")
    with serving(env, tmp_path) as (base, proc):
        ready = ready_within(base, seconds=20)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["migrations"] == "current"
        # The embedded scheduler's heartbeat is this process's own.
        assert ready.json()["checks"]["worker"] == "ok"
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    keys = [word for word in output.split() if word.startswith("ok_")]
    assert len(keys) == 1, output
    key = keys[0]
    assert output.count(key) == 1
    assert (tmp_path / "outreach.db.secret-key").exists()

    with serving(env, tmp_path) as (base, proc):
        me = httpx.get(f"{base}/v1/workspace", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200
        assert me.json()["name"] == "default"
        proc.terminate()
        second = proc.communicate(timeout=15)[0]
    assert "ok_" not in second
    assert key not in second


def test_workspace_and_key_lifecycle(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'o.db'}")
    migrated = run(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "revision" in migrated.stdout

    created = run(["workspace", "create", "Cửa hàng Hồng"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    workspace_id = created.stdout.strip()
    assert workspace_id.startswith("ws_")
    duplicate = run(["workspace", "create", "Cửa hàng Hồng"], env, tmp_path)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    listed = run(["workspace", "list"], env, tmp_path)
    assert f"{workspace_id}\tCửa hàng Hồng" in listed.stdout

    issued = run(["apikey", "create", "Cửa hàng Hồng"], env, tmp_path)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    key_id = issued.stderr.split("key id:")[1].strip()
    assert key.startswith("ok_")

    with serving(env, tmp_path) as (base, _proc):
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/v1/workspace", headers=headers).json()["id"] == workspace_id
        revoked = run(["apikey", "revoke", key_id], env, tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        assert httpx.get(f"{base}/v1/workspace", headers=headers).status_code == 401

    missing = run(["apikey", "create", "nobody"], env, tmp_path)
    assert missing.returncode == 1
    assert "No workspace" in missing.stderr
    unknown_key = run(["apikey", "revoke", "key_nope"], env, tmp_path)
    assert unknown_key.returncode == 1


def test_postgres_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    schema, url = create_pg_schema()
    try:
        refused = run(["migrate"], _env(url), tmp_path)
        assert refused.returncode == 2
        assert "OUTREACH_SECRET_KEY is required" in refused.stderr
        ok = run(["migrate"], _env(url, OUTREACH_SECRET_KEY=TEST_SECRET), tmp_path)
        assert ok.returncode == 0, ok.stderr
        created = run(
            ["workspace", "create", "pg"], _env(url, OUTREACH_SECRET_KEY=TEST_SECRET), tmp_path
        )
        assert created.returncode == 0, created.stderr
    finally:
        drop_pg_schema(schema)


def test_worker_refuses_an_unmigrated_database_then_runs_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    import signal
    import sqlite3

    database = tmp_path / "outreach.db"
    env = _env(f"sqlite+aiosqlite:///{database}", OUTREACH_SECRET_KEY=TEST_SECRET)
    refused = run(["worker"], env, tmp_path)
    assert refused.returncode == 2
    assert "outreach migrate" in refused.stderr
    assert run(["migrate"], env, tmp_path).returncode == 0
    proc = subprocess.Popen(
        [*OUTREACH, "worker"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        seen: list[tuple[str, str, int]] = []
        while not seen:
            with sqlite3.connect(database) as db:
                seen = db.execute("SELECT id, kind, pid FROM worker_heartbeats").fetchall()
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker never recorded a heartbeat"
            time.sleep(0.1)
        [(worker_id, kind, pid)] = seen
        assert (kind, pid) == ("worker", proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        # stderr is no terminal here: JSON lines, naming the worker.
        assert proc.stderr is not None
        lines = [json.loads(line) for line in proc.stderr.read().splitlines()]
        said = [(line["message"], line.get("worker_id")) for line in lines]
        assert ("worker stopped", worker_id) in said
        assert any(message.startswith("worker running") for message, _ in said), said
        assert TEST_SECRET not in str(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
