"""Outside services each resilience test owns, so it may break them: a PostgreSQL server of its
own (initdb in a temporary folder, a free port; never the shared server on 5432, which other
tests use) and an SMTP server (aiosmtpd on a free loopback port) that can be stopped or told to
refuse. Both are torn down when the test ends, failed or not.

initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user (runuser), in a
folder that user owns. PostgreSQL is part of every machine that runs this suite, so a missing
binary fails the test with what to install; it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from orchestrator import migrate
from orchestrator.db import create_engine
from tests.fixtures.database import make_settings

PG_BIN_DIRS = ("/usr/local/bin", *sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin"))))
PG_START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_binary(name: str) -> str:
    for folder in PG_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found in {', '.join(PG_BIN_DIRS)} or PATH: the resilience tests start "
            "their own PostgreSQL server (install the PostgreSQL server package)",
            pytrace=False,
        )
    return found


@dataclass
class OwnPostgres:
    """A PostgreSQL server of the test's own, in `folder`, on 127.0.0.1:`port`."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = PG_START_SECONDS + 10) -> None:
        # initdb and pg_ctl refuse root ("cannot be run as root"); run them as `postgres`.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"server log:\n{tail}",
                pytrace=False,
            )

    def init(self) -> None:
        self._run(
            _pg_binary("initdb"),
            "--pgdata",
            str(self.data),
            "--auth",
            "trust",
            "--username",
            "postgres",
            "--encoding",
            "UTF8",
            "--no-sync",
        )

    def _ctl(self, action: str, *extra: str) -> None:
        # Sockets in the test's folder, not /var/run/postgresql (the shared server's); durability
        # settings off: these servers live for one test.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            _pg_binary("pg_ctl"),
            action,
            "--pgdata",
            str(self.data),
            "--log",
            str(self.folder / "server.log"),
            "--options",
            options,
            "--wait",
            "--timeout",
            str(PG_START_SECONDS),
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        self._ctl("stop", "--mode", mode)

    def restart(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        self._ctl("restart", "--mode", mode)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return None
        return int(pid_file.read_text().split("\n", 1)[0])

    def kill(self) -> None:
        """Teardown: stop whatever is left, whatever state the test left the server in."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, _pg_binary("pg_ctl"), "stop", "--pgdata", str(self.data), "--mode",
             "immediate", "--wait", "--timeout", "20"],
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        if self.postmaster_pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


@pytest.fixture
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    """A fresh, migrated PostgreSQL server for this test alone."""
    folder = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres", group="postgres")
    server = OwnPostgres(folder)
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        engine = create_engine(make_settings(server.url))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        yield server
    finally:
        await asyncio.to_thread(server.kill)
        shutil.rmtree(folder, ignore_errors=True)


# -- SMTP ----------------------------------------------------------------------------------------

SmtpMode = Literal["accept", "refuse"]


@dataclass(frozen=True)
class Mail:
    at: datetime
    recipients: list[str]
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(message_from_bytes(self.raw, policy=policy.default)["Message-ID"])


class MailHandler:
    """Keeps every message accepted; in `refuse` mode answers 451 to every recipient (a relay
    that is up but cannot take mail now: RFC 5321 §4.2.2 "local error in processing")."""

    def __init__(self) -> None:
        self.mode: SmtpMode = "accept"
        self.messages: list[Mail] = []
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.mode == "refuse":
            with self._lock:
                self.refused += 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        with self._lock:
            self.messages.append(
                Mail(datetime.now(UTC), list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 Ok: queued"


class MailServer:
    """aiosmtpd on a fixed loopback port, which `stop()` closes (connections refused) and
    `start()` opens again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = MailHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
