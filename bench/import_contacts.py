"""Contact import through the API, beside a raw bulk load of the same rows (prints figures).

For each database a fresh store is migrated, a server runs in a subprocess (uvicorn on a free
loopback port) and a second process streams the generated CSV to `POST /v1/contacts/imports` with
httpx; the clock runs from the first byte sent until the import reads `completed`. The baseline,
in the same run, loads the same file into a bare table: `COPY ... FROM STDIN (FORMAT csv)` with
psycopg on PostgreSQL, csv.reader plus one `executemany` on SQLite. The server's peak resident
memory is its VmHWM (from /proc/PID/status) after the import.

    .venv/bin/python bench/import_contacts.py                  # 100,000 rows, SQLite and PostgreSQL
    .venv/bin/python bench/import_contacts.py --million        # also 1,000,000 rows (PostgreSQL)
    .venv/bin/python bench/import_contacts.py --rows 20000 --backends sqlite

PostgreSQL is the database `test` at 127.0.0.1:5432 (OUTREACH_TEST_POSTGRES_URL); each run uses a
fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 1 << 16
SECRET = "bench-secret-key-" + "b" * 40
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Ngọc", "Thanh", "Đức", "Quốc", "Thu", "Bảo"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hạnh", "Khoa", "Lan", "Linh", "Mai", "Nam",
         "Ngân", "Phúc", "Quân", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Uyên", "Việt", "Yến"]  # fmt: skip
TAGS = ["áo dài", "vip", "khách quen", "sale-11", "hà nội", "sài gòn", "đà nẵng", "mỹ phẩm",
        "thời trang", "quà tặng", "minigame", "hotline"]  # fmt: skip
SOURCES = ["popup", "minigame", "hotline", "embedded", "comment"]
HEADER = ["email", "name", "tags", "consent_source", "consent_at"]


def postgres_url() -> str:
    return os.environ.get("OUTREACH_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for i in range(rows):
            name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
            at = base - timedelta(minutes=rng.randrange(0, 500_000))
            writer.writerow(
                [
                    f"khach{i}.{rng.randrange(10**6)}@mail{i % 97}.example.vn",
                    name,
                    ";".join(rng.sample(TAGS, 3)),
                    rng.choice(SOURCES),
                    at.isoformat(),
                ]
            )


def blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while data := handle.read(BLOCK):
            yield data


# -- baselines -------------------------------------------------------------------------------


def copy_baseline(path: Path, schema: str) -> float:
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {schema}.bare (email text, name text, tags text, "
            "consent_source text, consent_at timestamptz)"
        )
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {schema}.bare FROM STDIN (FORMAT csv, HEADER true)") as copy,
        ):
            for data in blocks(path):
                copy.write(data)
        return time.perf_counter() - started


def executemany_baseline(path: Path, folder: Path) -> float:
    conn = sqlite3.connect(folder / "bare.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE bare (email text, name text, tags text, consent_source text, consent_at text)"
    )
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        conn.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?)", reader)
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def prepare_store(url: str) -> str:
    """Migrate, create a workspace and an API key; returns the key."""
    from orchestrator import migrate
    from orchestrator.apikeys import create_api_key
    from orchestrator.db import create_engine, session_factory, transaction
    from orchestrator.settings import Settings
    from orchestrator.workspaces import create_workspace

    settings = Settings(_env_file=None, database_url=url, secret_key=SECRET)
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        now = datetime.now(UTC)
        async with transaction(session_factory(engine)) as session:
            workspace = await create_workspace(session, name="bench", now=now)
            issued = await create_api_key(session, workspace_id=workspace.id, now=now)
        return issued.key
    finally:
        await engine.dispose()


class Server:
    def __init__(self, url: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "OUTREACH_DATABASE_URL": url,
            "OUTREACH_SECRET_KEY": SECRET,
            "OUTREACH_EMBEDDED_SCHEDULER": "false",
            "OUTREACH_IMPORT_MAX_BYTES": str(4 << 30),
        }
        command = [sys.executable, "-m", "uvicorn", "orchestrator.app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.peak_rss_kb = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while self._sampling and self.process.poll() is None:
            self.peak_rss_kb = max(self.peak_rss_kb, self._status("VmRSS"))
            time.sleep(0.05)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    self._sampler.start()
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def high_water_kb(self) -> int:
        return self._status("VmHWM")

    def stop(self) -> None:
        self._sampling = False
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Result:
    rows: int
    upload_s: float
    total_s: float
    status: dict[str, object]
    peak_rss_mb: float
    hwm_mb: float


def run_import(url: str, path: Path, rows: int) -> Result:
    key = asyncio.run(prepare_store(url))
    server = Server(url)
    try:
        server.wait_ready()
        upload = subprocess.run(
            [sys.executable, __file__, "upload", server.base, key, str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        uploaded_at = time.time()
        first_byte, location = upload.stdout.split()
        started = float(first_byte)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
            while True:
                status = client.get(location).json()
                if status["status"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
        total = time.time() - started
        return Result(
            rows=rows,
            upload_s=uploaded_at - started,
            total_s=total,
            status=status,
            peak_rss_mb=server.peak_rss_kb / 1024,
            hwm_mb=server.high_water_kb() / 1024,
        )
    finally:
        server.stop()


def upload_main(base: str, key: str, path: str) -> None:
    """The second process: stream the file, print the import's Location."""
    with httpx.Client(base_url=base, timeout=600) as client:
        print(time.time(), flush=True)  # the clock starts with the first byte
        response = client.post(
            "/v1/contacts/imports",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
            content=blocks(Path(path)),
        )
    if response.status_code != 202:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    print(response.headers["location"])


# -- orchestration -----------------------------------------------------------------------------


def pg_schema() -> tuple[str, str]:
    schema = "bench_" + secrets.token_hex(4)
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url() else "?"
    return schema, f"{postgres_url()}{sep}options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def report(backend: str, result: Result, baseline_s: float | None, baseline: str) -> None:
    status = result.status
    rate = result.rows / result.total_s
    print(f"\n== {backend}: {result.rows:,} rows ==")
    print(
        f"import   status={status['status']} lines={status['lines']} created={status['created']} "
        f"updated={status['updated']} unchanged={status['unchanged']} failed={status['failed']}"
    )
    print(
        f"         upload {result.upload_s:.2f} s, until completed {result.total_s:.2f} s -> {rate:,.0f} rows/s"
    )
    print(
        f"         server memory: peak RSS sampled {result.peak_rss_mb:.0f} MB, VmHWM {result.hwm_mb:.0f} MB"
    )
    if baseline_s is not None:
        base_rate = result.rows / baseline_s
        print(f"baseline {baseline}: {baseline_s:.2f} s -> {base_rate:,.0f} rows/s")
        print(f"ratio    import / baseline = {rate / base_rate:.3f}")


def bench(backend: str, rows: int, folder: Path, *, with_baseline: bool = True) -> None:
    path = folder / f"contacts-{rows}.csv"
    if not path.exists():
        generate(path, rows)
    print(f"\n{backend}: {rows:,} rows, file {path.stat().st_size / 1e6:.1f} MB", flush=True)
    if backend == "sqlite":
        db = folder / f"outreach-{rows}.db"
        result = run_import(f"sqlite+aiosqlite:///{db}", path, rows)
        baseline = executemany_baseline(path, folder) if with_baseline else None
        report(backend, result, baseline, "csv.reader + sqlite3 executemany into a bare table")
        return
    schema, url = pg_schema()
    try:
        result = run_import(url, path, rows)
        baseline = copy_baseline(path, schema) if with_baseline else None
        report(backend, result, baseline, "psycopg COPY FROM STDIN (csv) into a bare table")
    finally:
        drop_schema(schema)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "upload":
        upload_main(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--million", action="store_true", help="also import 1,000,000 rows")
    parser.add_argument("--million-backend", default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        folder = Path(tmp)
        for backend in filter(None, args.backends.split(",")):
            bench(backend, args.rows, folder)
        if args.million:
            bench(args.million_backend, 1_000_000, folder)


if __name__ == "__main__":
    main()
