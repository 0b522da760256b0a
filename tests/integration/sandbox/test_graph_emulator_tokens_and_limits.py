"""One-time tokens, Marketing Messages tokens, and the per-Page send rate (reference §3, §7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from channels.sandbox import AfterSend, GraphEmulator
from tests.integration.sandbox.graph_emulator_support import (
    PAGE_ID,
    START,
    TestClock,
    error_of,
    send,
    text_to,
)

PSID = "2400000000000011"


def otn_send(token: str) -> dict[str, Any]:
    # reference §3.1: no messaging_type or tag in the OTN send examples [T5].
    return {"recipient": {"one_time_notif_token": token}, "message": {"text": "Áo đã có hàng lại"}}


def nm_send(token: str) -> dict[str, Any]:
    return {"recipient": {"notification_messages_token": token}, "message": {"text": "Ưu đãi mới"}}


async def test_one_time_token_is_consumed_by_its_first_use(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - timedelta(days=30))
    event = await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "BACK_IN_STOCK")
    token = event.item["optin"]["one_time_notif_token"]

    first = await send(graph, otn_send(token))
    second = await send(graph, otn_send(token))

    assert first.status_code == 200
    assert first.json()["recipient_id"] == PSID
    assert second.status_code == 400
    assert error_of(second) == (100, None)
    assert "already used" in second.json()["error"]["message"]
    assert emu.one_time_tokens[token].used_at == START


async def test_one_time_token_error_code_is_selectable(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.variants.otn_token_error = (10, 2018278)
    event = await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "P", token="otn-1")
    await send(graph, otn_send("otn-1"))

    again = await send(graph, otn_send("otn-1"))
    unknown = await send(graph, otn_send("never-issued"))

    assert event.item["optin"]["one_time_notif_token"] == "otn-1"
    assert error_of(again) == (10, 2018278)
    assert error_of(unknown) == (10, 2018278)


async def test_one_time_token_expires_after_a_year(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "P", token="otn-2")
    clock.advance(timedelta(days=365))

    assert error_of(await send(graph, otn_send("otn-2"))) == (100, None)


async def test_one_time_features_need_the_page_permission(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "P", token="otn-3")
    await emu.person_writes(PAGE_ID, PSID, "Chào")
    emu.page(PAGE_ID).otn_enabled = False
    request = {
        **text_to(PSID),
        "message": {"attachment": {"type": "template", "payload": {"template_type": "one_time_notif_req", "title": "Báo tôi khi có hàng", "payload": "P"}}},
    }  # fmt: skip

    assert error_of(await send(graph, otn_send("otn-3"))) == (10, None)
    assert error_of(await send(graph, request)) == (10, None)


def nm_request(title: str = "Ưu đãi tháng 6") -> dict[str, Any]:
    payload = {"template_type": "notification_messages", "title": title, "payload": "PROMO"}
    return {**text_to(PSID), "message": {"attachment": {"type": "template", "payload": payload}}}


async def test_notification_messages_are_off_by_default(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Chào")
    await emu.person_opts_in_to_notifications(PAGE_ID, PSID, "PROMO", token="nm-0")

    assert error_of(await send(graph, nm_request())) == (10, None)
    assert error_of(await send(graph, nm_send("nm-0"))) == (10, None)


async def test_notification_messages_token_rules(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.page(PAGE_ID).notification_messages_enabled = True
    await emu.person_writes(PAGE_ID, PSID, "Chào")
    request_once = await send(graph, nm_request())
    request_twice = await send(graph, nm_request())
    await emu.person_opts_in_to_notifications(PAGE_ID, PSID, "PROMO", token="nm-1")

    first = await send(graph, nm_send("nm-1"))
    too_soon = await send(graph, nm_send("nm-1"))
    clock.advance(timedelta(hours=48))
    await emu.person_stops_notifications(PAGE_ID, "nm-1")
    stopped = await send(graph, nm_send("nm-1"))
    await emu.person_resumes_notifications(PAGE_ID, "nm-1")
    resumed = await send(graph, nm_send("nm-1"))
    invalid = await send(graph, nm_send("nm-unknown"))

    assert request_once.status_code == 200
    assert error_of(request_twice) == (613, 1893016)
    assert first.json()["recipient_id"] == PSID
    assert error_of(too_soon) == (4, 2018354)
    assert error_of(stopped) == (10, 1893015)
    assert resumed.status_code == 200
    assert error_of(invalid) == (100, None)


async def test_301st_send_in_one_second_gets_613(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.after_send = AfterSend(echo=False, delivery=False)
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    statuses = [(await send(graph, text_to(PSID))).status_code for _ in range(300)]
    refused = await send(graph, text_to(PSID))
    clock.advance(timedelta(milliseconds=999))
    still_refused = await send(graph, text_to(PSID))
    clock.advance(timedelta(milliseconds=1))
    admitted = await send(graph, text_to(PSID))

    assert statuses == [200] * 300
    assert refused.status_code == 400
    assert error_of(refused) == (613, None)
    assert refused.json()["error"]["is_transient"] is True
    assert error_of(still_refused) == (613, None)
    assert admitted.status_code == 200
    assert len(emu.sent) == 301


async def test_rate_window_slides(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.after_send = AfterSend(echo=False, delivery=False)
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    for _ in range(150):
        await send(graph, text_to(PSID))
    clock.advance(timedelta(milliseconds=500))
    for _ in range(150):
        await send(graph, text_to(PSID))
    clock.advance(timedelta(milliseconds=500))

    freed = [(await send(graph, text_to(PSID))).status_code for _ in range(151)]

    assert freed == [200] * 150 + [400]


async def test_other_pages_have_their_own_budget(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.send_rate_per_second = 2
    emu.register_page("77", username="b", access_token="tok-b", app_id="1", app_secret="s")
    emu.add_person("77", PSID, window_opened_at=START)
    emu.page(PAGE_ID).limiter.limit = 2
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    page_a = [(await send(graph, text_to(PSID))).status_code for _ in range(3)]
    page_b = [
        (await send(graph, text_to(PSID), token="tok-b", node="77")).status_code for _ in range(2)
    ]

    assert page_a == [200, 200, 400]
    assert page_b == [200, 200]


@pytest.mark.parametrize("media", ["video", "audio"])
async def test_audio_and_video_have_ten_per_second(
    emu: GraphEmulator, graph: httpx.AsyncClient, media: str
) -> None:
    emu.after_send = AfterSend(echo=False, delivery=False)
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)
    body = {**text_to(PSID), "message": {"attachment": {"type": media, "payload": {"url": "https://x.vn/a.mp4"}}}}  # fmt: skip

    statuses = [(await send(graph, body)).status_code for _ in range(11)]
    text_still_ok = await send(graph, text_to(PSID))

    assert statuses == [200] * 10 + [400]
    assert text_still_ok.status_code == 200
