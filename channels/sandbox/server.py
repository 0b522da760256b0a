"""Run an ASGI app (the emulator, or a webhook receiver) with uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_SECONDS = 10.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host process (pytest, the demo) owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _server(
    app: ASGIApp, host: str, port: int, graceful_shutdown_seconds: float
) -> _EmbeddedServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=max(1, round(graceful_shutdown_seconds)),
    )
    return _EmbeddedServer(config)


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    graceful_shutdown_seconds: float = 1.0,
) -> AsyncIterator[str]:
    """Serve `app` in the running event loop; yields the base URL (`http://127.0.0.1:<port>`).

    `port=0` picks a free port. The server shares the caller's loop, so the app may use the
    caller's `httpx.AsyncClient` objects (e.g. the emulator's injected webhook client).
    """
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    server = _server(app, host, actual_port, graceful_shutdown_seconds)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("uvicorn did not start in time")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{actual_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    graceful_shutdown_seconds: float = 1.0,
) -> Iterator[str]:
    """Serve `app` from a background thread with its own event loop; yields the base URL.

    For synchronous callers. The app then runs on another loop: do not share `httpx.AsyncClient`
    objects with it (the emulator's default, one client per webhook post, is safe).
    """
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    server = _server(app, host, actual_port, graceful_shutdown_seconds)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="graph-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in time")
            time.sleep(0.005)
        yield f"http://{host}:{actual_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        sock.close()
