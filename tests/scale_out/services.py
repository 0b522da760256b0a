"""The outside services of a scale-out run, each in a child process of its own.

    python -m tests.scale_out.services graph --rate 300     # the Graph API emulator
    python -m tests.scale_out.services smtp                 # an SMTP server keeping Message-IDs

Each binds a free loopback port and prints `{"port": N}` on its first stdout line. Both keep a
compact record of what arrived, read over HTTP by the harness (tests/scale_out/cluster.py): the
emulator's `/_scale/sends` (arrival time, Page, `message.metadata`, status of every Send API
call) and the SMTP server's control port `/_scale/mail` (arrival time and Message-ID of every
message, parsed with the stdlib email parser). They run apart from each other and from the
workers so that a stalled SMTP handler never bunches the emulator's arrivals (whose one-second
windows the tests count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.sandbox import AfterSend, GraphEmulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The emulator records every request for tests; a 100,000-send run keeps only our compact rows.
KEEP_EMULATOR_RECORDS = 2_000


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _reply(send: Send, payload: object, status: int = 200) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _metadata(body: bytes) -> str | None:
    try:
        message = json.loads(body).get("message") or {}
    except (ValueError, AttributeError):
        return None
    value = message.get("metadata") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


def graph_app(rate: int) -> ASGIApp:
    """The emulator (no webhooks: nobody receives them here) behind a recorder.

    `/_scale/pages` registers a Page, `/_scale/people` seeds many open windows at once,
    `/_scale/sends` answers the rows `[arrived_at, page_id, metadata, status]`, `/_scale/count`
    how many Send API calls were accepted."""
    emulator = GraphEmulator(
        send_rate_per_second=rate, after_send=AfterSend(echo=False, delivery=False)
    )
    inner = emulator.app
    sends: list[tuple[float, str, str | None, int]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/_scale/pages":
            body = json.loads(await _read_body(receive))
            emulator.register_page(
                body["page_id"],
                username=body["username"],
                access_token=body["access_token"],
                app_id=body["app_id"],
                app_secret=body["app_secret"],
            )
            await _reply(send, {})
            return
        if path == "/_scale/people":
            body = json.loads(await _read_body(receive))
            opened = datetime.fromisoformat(body["opened_at"])
            for psid in body["psids"]:
                emulator.add_person(
                    body["page_id"], psid, window_opened_at=opened, last_message_at=opened
                )
            await _reply(send, {})
            return
        if path == "/_scale/sends":
            await _reply(send, sends)
            return
        if path == "/_scale/count":
            await _reply(send, {"accepted": sum(1 for row in sends if row[3] == 200)})
            return
        if not path.endswith("/messages"):
            await inner(scope, receive, send)
            return
        arrived = time.time()
        body = await _read_body(receive)
        status = 0
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        page_id = path.rstrip("/").split("/")[-2]
        try:
            await inner(scope, replay, watch)
        finally:
            # An emulator crash is recorded too (status 0 if no answer was started).
            sends.append((arrived, page_id, _metadata(body), status))
        if len(emulator.requests) > KEEP_EMULATOR_RECORDS:
            emulator.requests.clear()
            emulator.sent.clear()

    return app


class MailRecorder:
    """aiosmtpd handler: the arrival time and Message-ID of every message accepted."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str | None]] = []
        self._parser = BytesParser(policy=default_policy)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        headers = self._parser.parsebytes(raw, headersonly=True)
        message_id = headers.get("Message-ID")
        self.rows.append((time.time(), str(message_id).strip() if message_id else None))
        return "250 2.0.0 Ok: queued"


def mail_control_app(recorder: MailRecorder) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope.get("path") == "/_scale/count":
            await _reply(send, {"accepted": len(recorder.rows)})
            return
        await _reply(send, recorder.rows)

    return app


async def _serve(app: ASGIApp, sock: socket.socket) -> None:
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, log_level="warning", access_log=False, ws="none"
    )
    await uvicorn.Server(config).serve(sockets=[sock])


async def run_graph(rate: int) -> None:
    sock = _bind()
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await _serve(graph_app(rate), sock)


async def run_smtp() -> None:
    recorder = MailRecorder()
    smtp_sock, control_sock = _bind(), _bind()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(recorder, hostname="scale-out.test"), sock=smtp_sock
    )
    ports = {"port": smtp_sock.getsockname()[1], "control_port": control_sock.getsockname()[1]}
    print(json.dumps(ports), flush=True)
    async with server:
        await _serve(mail_control_app(recorder), control_sock)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.scale_out.services")
    parser.add_argument("role", choices=["graph", "smtp"])
    parser.add_argument("--rate", type=int, default=300, help="the emulator's per-Page limit")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run_graph(args.rate) if args.role == "graph" else run_smtp())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
