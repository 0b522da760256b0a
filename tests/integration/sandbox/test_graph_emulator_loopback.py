"""The emulator over real HTTP on a loopback port: uvicorn in the test's loop, in a thread, and as
`python -m channels.sandbox`; plus the `/_emulator/` control routes."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx
import pytest

from channels.sandbox import AfterSend, GraphEmulator, serve, serve_in_thread
from tests.integration.sandbox.graph_emulator_support import (
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    START,
    TestClock,
    WebhookReceiver,
    error_of,
    text_to,
)

PSID = "2400000000000051"
VIETNAMESE = "Chào bạn, tôi muốn mua áo"
PROJECT = Path(__file__).resolve().parents[3]


async def test_send_and_webhooks_over_loopback(clock: TestClock) -> None:
    receiver = WebhookReceiver()
    emulator = GraphEmulator(clock.now)  # default webhook client: real HTTP per post
    async with serve(receiver.app) as receiver_url, serve(emulator.app) as graph_url:
        emulator.register_page(
            PAGE_ID,
            username="shop",
            access_token=PAGE_TOKEN,
            app_id="42",
            app_secret=APP_SECRET,
            webhook_url=f"{receiver_url}/webhook",
        )
        await emulator.person_writes(PAGE_ID, PSID, VIETNAMESE)
        async with httpx.AsyncClient(base_url=f"{graph_url}/v25.0") as graph:
            answer = await graph.post(
                f"/{PAGE_ID}/messages",
                json=text_to(PSID, "Dạ, shop chào bạn"),
                headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
            )
            refused = await graph.post(
                f"/{PAGE_ID}/messages", json=text_to("1"), params={"access_token": PAGE_TOKEN}
            )

    assert graph_url.startswith("http://127.0.0.1:")
    assert answer.status_code == 200
    assert answer.json()["message_id"].startswith("m_")
    assert error_of(refused) == (100, 2018001)
    assert [r.token_locations for r in emulator.requests] == [("header",), ("query",)]
    written, echo, delivery = receiver.received
    assert all(r.signature_ok() for r in receiver.received)
    assert b"Ch\\u00e0o b\\u1ea1n" in written.body
    assert written.messaging()["message"]["text"] == VIETNAMESE
    assert echo.messaging()["message"]["is_echo"] is True
    assert "delivery" in delivery.messaging()


async def test_slow_answer_times_the_client_out_but_the_send_still_happens(
    emu: GraphEmulator,
) -> None:
    emu.after_send = AfterSend(echo=False, delivery=False)
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    emu.inject_delay(0.4)
    async with serve(emu.app, graceful_shutdown_seconds=2) as graph_url:
        async with httpx.AsyncClient(base_url=graph_url, timeout=0.05) as graph:
            with pytest.raises(httpx.ReadTimeout):
                await graph.post(
                    f"/v25.0/{PAGE_ID}/messages",
                    json=text_to(PSID),
                    headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
                )
        sent_when_client_gave_up = len(emu.sent)

    assert sent_when_client_gave_up == 0
    assert len(emu.sent) == 1  # the server finished the request while shutting down


def test_serve_in_thread_for_sync_callers(clock: TestClock) -> None:
    emulator = GraphEmulator(clock.now)
    emulator.register_page(PAGE_ID, username="shop", access_token=PAGE_TOKEN, app_id="1", app_secret="s")  # fmt: skip
    emulator.add_person(PAGE_ID, PSID, window_opened_at=START)

    with serve_in_thread(emulator.app) as graph_url:
        response = httpx.post(
            f"{graph_url}/v25.0/me/messages",
            json=text_to(PSID),
            headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
        )

    assert response.status_code == 200
    assert emulator.sent[0].page_id == PAGE_ID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_python_dash_m_runs_the_emulator_on_its_own() -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "channels.sandbox", "--host", "127.0.0.1", "--port", str(port),
        "--page-id", PAGE_ID, "--page-token", PAGE_TOKEN, "--get-started", "GS",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, cwd=PROJECT, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            state = None
            for _ in range(200):
                try:
                    state = await client.get("/_emulator/state")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)  # waiting for a process to start, not for time
            profile = await client.get(
                f"/v25.0/{PAGE_ID}/messenger_profile",
                params={"fields": "get_started", "access_token": PAGE_TOKEN},
            )
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), timeout=10)

    assert state is not None
    assert state.json()["pages"][0]["page_id"] == PAGE_ID
    assert profile.json() == {"data": [{"get_started": {"payload": "GS"}}]}


async def test_control_routes_drive_a_standalone_emulator(
    clock: TestClock, receiver: WebhookReceiver
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as hooks:
        emulator = GraphEmulator(clock.now, webhook_client=hooks)
        transport = httpx.ASGITransport(app=emulator.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as control:
            page = await control.post(
                "/_emulator/pages",
                json={
                    "page_id": PAGE_ID, "username": "shop", "access_token": PAGE_TOKEN,
                    "app_id": "9", "app_secret": APP_SECRET, "webhook_url": "http://r/webhook",
                },
            )  # fmt: skip
            wrote = await control.post(
                "/_emulator/actions/writes",
                json={
                    "page_id": PAGE_ID,
                    "psid": PSID,
                    "text": VIETNAMESE,
                    "at": START.isoformat(),
                },
            )
            fault = await control.post(
                "/_emulator/faults", json={"kind": "error", "code": 551, "psid": PSID, "times": 1}
            )
            refused = await control.post(
                f"/v25.0/{PAGE_ID}/messages",
                json=text_to(PSID),
                headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
            )
            requests = await control.get("/_emulator/requests")
            bad_action = await control.post("/_emulator/actions/dances", json={})
            bad_args = await control.post("/_emulator/actions/writes", json={"page_id": PAGE_ID})
            cleared = await control.delete("/_emulator/faults")
            deliveries = await control.get("/_emulator/deliveries")

    assert page.status_code == 201
    assert wrote.json()["event"]["message"]["text"] == VIETNAMESE
    assert wrote.json()["deliveries"][0]["status_code"] == 200
    assert fault.json()["code"] == 551
    assert error_of(refused) == (551, None)
    assert requests.json()[0]["token_locations"] == ["header"]
    assert PAGE_TOKEN not in requests.text
    assert bad_action.status_code == 404
    assert bad_args.status_code == 400
    assert cleared.json() == {"cleared": True}
    assert len(deliveries.json()) == 1
    assert receiver.last.signature_ok()
