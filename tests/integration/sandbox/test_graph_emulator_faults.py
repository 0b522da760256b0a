"""Injected faults: rate limits, temporary failures, HTTP 5xx, delays, latency, and any row of
the reference §6 error table for one PSID."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from channels.sandbox import GraphEmulator
from tests.integration.sandbox.graph_emulator_support import (
    APP_ID,
    APP_SECRET,
    GRAPH_BASE,
    PAGE_ID,
    PAGE_TOKEN,
    START,
    TestClock,
    error_of,
    send,
    text_to,
)

PSID = "2400000000000021"
OTHER = "2400000000000022"


@pytest.fixture
def people(emu: GraphEmulator) -> tuple[str, str]:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    emu.add_person(PAGE_ID, OTHER, window_opened_at=START)
    return PSID, OTHER


async def test_rate_limit_for_the_next_n_requests(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    emu.inject_rate_limit(times=2)

    answers = [await send(graph, text_to(PSID)) for _ in range(3)]

    assert [a.status_code for a in answers] == [400, 400, 200]
    assert [error_of(a) for a in answers[:2]] == [(613, None), (613, None)]
    assert answers[0].json()["error"]["is_transient"] is True
    assert len(emu.sent) == 1


async def test_rate_limit_for_a_duration_on_the_emulator_clock(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock, people: tuple[str, str]
) -> None:
    emu.inject_rate_limit(duration=timedelta(seconds=30))

    during = [await send(graph, text_to(PSID)) for _ in range(3)]
    clock.advance(timedelta(seconds=30))
    after = await send(graph, text_to(PSID))

    assert [error_of(a) for a in during] == [(613, None)] * 3
    assert after.status_code == 200


async def test_temporary_failure_1200(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    emu.inject_temporary_failure()

    failed = await send(graph, text_to(PSID))
    retried = await send(graph, text_to(PSID))

    assert error_of(failed) == (1200, None)
    assert "Temporary send message failure" in failed.json()["error"]["message"]
    assert retried.status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_5xx(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str], status: int
) -> None:
    emu.inject_http_status(status)

    response = await send(graph, text_to(PSID))

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert emu.sent == []
    assert emu.requests[-1].status_code == status


async def test_http_5xx_with_a_custom_body(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    emu.inject_http_status(502, body=b"<html>Bad Gateway</html>", content_type="text/html")

    response = await send(graph, text_to(PSID))

    assert response.text == "<html>Bad Gateway</html>"


SECTION_6_ROWS = [
    (10, 2018278),
    (10, 2534022),
    (10, 2018065),
    (551, None),
    (551, 1545041),
    (200, 1545041),
    (10, 2018108),
    (2, None),
    (4, None),
    (17, None),
    (32, None),
    (613, 2534040),
    (613, 2018338),
    (80001, None),
    (1, None),
    (190, 463),
    (10, None),
    (200, 2018027),
    (200, 2018028),
    (3, None),
    (10, 1893063),
    (368, None),
    (2018300, None),
    (2018321, None),
    (100, 2018001),
    (100, 33),
    (10, 1893015),
]


@pytest.mark.parametrize(("code", "subcode"), SECTION_6_ROWS)
async def test_any_section_6_error_for_one_psid(
    emu: GraphEmulator,
    graph: httpx.AsyncClient,
    people: tuple[str, str],
    code: int,
    subcode: int | None,
) -> None:
    emu.inject_error(code, subcode, psid=PSID, forever=True)

    hit = [await send(graph, text_to(PSID)) for _ in range(2)]
    spared = await send(graph, text_to(OTHER))

    assert [error_of(h) for h in hit] == [(code, subcode)] * 2
    assert all(h.status_code == 400 for h in hit)
    message = hit[0].json()["error"]["message"]
    assert message.startswith(f"(#{code})") or code == 190
    assert spared.status_code == 200


async def test_error_with_custom_message_and_status(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    emu.inject_error(368, message="(#368) Blocked for policy", http_status=403, is_transient=False)

    response = await send(graph, text_to(PSID))

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "(#368) Blocked for policy"
    assert response.json()["error"]["is_transient"] is False


async def test_fault_scoped_to_an_endpoint_and_a_page(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    emu.inject_error(2, endpoint="messenger_profile", forever=True)
    emu.inject_error(2, page_id="some-other-page", forever=True)
    headers = {"Authorization": f"Bearer {PAGE_TOKEN}"}

    profile = await graph.post(
        f"/{PAGE_ID}/messenger_profile", json={"get_started": {"payload": "GS"}}, headers=headers
    )
    message = await send(graph, text_to(PSID))

    assert error_of(profile) == (2, None)
    assert message.status_code == 200


async def test_clear_faults(
    emu: GraphEmulator, graph: httpx.AsyncClient, people: tuple[str, str]
) -> None:
    fault = emu.inject_rate_limit(forever=True)
    await send(graph, text_to(PSID))
    emu.clear_faults()

    assert fault.fired == 1
    assert (await send(graph, text_to(PSID))).status_code == 200


@pytest.fixture
def recorded_sleeps(clock: TestClock) -> tuple[GraphEmulator, list[float]]:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    emulator = GraphEmulator(clock.now, sleep=fake_sleep)
    emulator.register_page(PAGE_ID, username="p", access_token=PAGE_TOKEN, app_id=APP_ID, app_secret=APP_SECRET)  # fmt: skip
    emulator.add_person(PAGE_ID, PSID, window_opened_at=START)
    return emulator, sleeps


async def test_fixed_latency_and_a_slow_answer_still_send(
    recorded_sleeps: tuple[GraphEmulator, list[float]],
) -> None:
    emulator, sleeps = recorded_sleeps
    emulator.latency_seconds = 0.25
    emulator.inject_delay(30.0)
    transport = httpx.ASGITransport(app=emulator.app)

    async with httpx.AsyncClient(transport=transport, base_url=GRAPH_BASE) as graph:
        slow = await send(graph, text_to(PSID))
        normal = await send(graph, text_to(PSID))

    assert sleeps == [0.25, 30.0, 0.25]
    assert slow.status_code == 200
    assert normal.status_code == 200
    assert len(emulator.sent) == 2
