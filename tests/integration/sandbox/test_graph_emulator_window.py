"""The per-(Page, PSID) rules: 24 h window, HUMAN_AGENT and CUSTOMER_FEEDBACK 7 days, retired
tags, unknown PSIDs, tokens, private replies (reference §1, §2, §6, §8)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from channels.sandbox import GraphEmulator, Variants, WebhookEvent
from tests.integration.sandbox.graph_emulator_support import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    START,
    TestClock,
    error_of,
    send,
    text_to,
)

PSID = "2400000000000007"
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


def human_agent(psid: str = PSID) -> dict[str, Any]:
    return {**text_to(psid, "Chào anh, em là Lan bên hỗ trợ"), "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}  # fmt: skip


def feedback(psid: str = PSID) -> dict[str, Any]:
    payload = {
        "template_type": "customer_feedback",
        "title": "Đánh giá",
        "feedback_screens": [{"questions": [{"id": "q1", "type": "csat"}]}],
        "business_privacy": {"url": "https://aothun.vn/privacy"},
    }
    return {
        "recipient": {"id": psid},
        "messaging_type": "MESSAGE_TAG",
        "tag": "CUSTOMER_FEEDBACK",
        "message": {"attachment": {"type": "template", "payload": payload}},
    }


@pytest.mark.parametrize("messaging_type", ["RESPONSE", "UPDATE"])
async def test_window_is_open_until_the_last_millisecond_and_closed_at_24_hours(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock, messaging_type: str
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Chào bạn", at=START)

    clock.set(START + DAY - MS)
    inside = await send(graph, text_to(PSID, messaging_type=messaging_type))
    clock.set(START + DAY)
    outside = await send(graph, text_to(PSID, messaging_type=messaging_type))

    assert inside.status_code == 200
    assert outside.status_code == 400
    assert error_of(outside) == (10, 2018278)
    assert "outside of allowed window" in outside.json()["error"]["message"]


async def test_sender_actions_also_need_the_window(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - DAY)

    response = await send(graph, {"recipient": {"id": PSID}, "sender_action": "typing_on"})

    assert error_of(response) == (10, 2018278)


async def test_human_agent_works_until_seven_days_after_the_persons_last_message(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Đơn hàng của tôi đâu?", at=START)

    clock.set(START + 2 * DAY)
    automated = await send(graph, text_to(PSID))
    on_day_two = await send(graph, human_agent())
    clock.set(START + 7 * DAY - MS)
    last_moment = await send(graph, human_agent())
    clock.set(START + 7 * DAY)
    too_late = await send(graph, human_agent())

    assert error_of(automated) == (10, 2018278)
    assert on_day_two.status_code == 200
    assert last_moment.status_code == 200
    assert error_of(too_late) == (10, 2018278)


async def test_human_agent_counts_from_the_last_message_not_from_a_link_click(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Hỏi giá", at=START)
    await emu.person_clicks_mme_link(PAGE_ID, PSID, "ref-1", at=START + 6 * DAY + timedelta(hours=12))  # fmt: skip
    clock.set(START + 7 * DAY + timedelta(hours=1))

    assert (await send(graph, text_to(PSID))).status_code == 200
    assert error_of(await send(graph, human_agent())) == (10, 2018278)


async def test_human_agent_needs_the_page_feature(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.page(PAGE_ID).human_agent_enabled = False
    await emu.person_writes(PAGE_ID, PSID, "Chào")

    response = await send(graph, human_agent())

    assert error_of(response) == (10, None)


async def test_customer_feedback_only_within_seven_days_of_the_last_message(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Cảm ơn shop", at=START)

    clock.set(START + 7 * DAY - MS)
    inside = await send(graph, feedback())
    clock.set(START + 7 * DAY)
    outside = await send(graph, feedback())

    assert inside.status_code == 200
    assert error_of(outside) == (10, 2018278)


@pytest.mark.parametrize(
    "tag", ["ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"]
)
async def test_retired_tags_fail_with_100_even_inside_the_window(
    emu: GraphEmulator, graph: httpx.AsyncClient, tag: str
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Chào")

    response = await send(graph, {**text_to(PSID), "messaging_type": "MESSAGE_TAG", "tag": tag})

    assert response.status_code == 400
    assert error_of(response) == (100, 1893061)
    assert response.json()["error"]["message"] == "(#100) Invalid parameter"


async def test_retired_tag_subcode_can_be_left_out(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.variants.retired_tag_subcode = None
    await emu.person_writes(PAGE_ID, PSID, "Chào")

    response = await send(graph, {**text_to(PSID), "tag": "ACCOUNT_UPDATE"})

    assert error_of(response) == (100, None)


async def test_unknown_psid_is_no_matching_user(graph: httpx.AsyncClient) -> None:
    response = await send(graph, text_to("9999999999999999"))

    assert response.status_code == 400
    assert error_of(response) == (100, 2018001)


@pytest.mark.parametrize(
    ("token", "code"),
    [("wrong-token", 190), (None, 190)],
)
async def test_bad_or_missing_token_is_190(
    emu: GraphEmulator, graph: httpx.AsyncClient, token: str | None, code: int
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    response = await send(graph, text_to(PSID), token=token)

    assert response.status_code == 400
    assert error_of(response) == (code, None)
    assert emu.sent == []


async def test_another_pages_token_is_refused(emu: GraphEmulator, graph: httpx.AsyncClient) -> None:
    emu.register_page("99", username="other", access_token="other-token", app_id=APP_ID, app_secret=APP_SECRET)  # fmt: skip
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    response = await send(graph, text_to(PSID), token="other-token")

    assert error_of(response) == (190, None)


async def test_unknown_page_with_a_valid_token_is_100_33(graph: httpx.AsyncClient) -> None:
    response = await send(graph, text_to(PSID), node="424242")

    assert error_of(response) == (100, 33)


async def test_me_resolves_to_the_page_of_the_token(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    response = await send(graph, text_to(PSID), node="me")

    assert response.status_code == 200
    assert emu.sent[-1].page_id == PAGE_ID
    assert emu.requests[-1].page_id == PAGE_ID


async def test_token_location_is_recorded_and_never_its_value(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    await send(graph, text_to(PSID))
    await graph.post(
        f"/{PAGE_ID}/messages", params={"access_token": PAGE_TOKEN}, json=text_to(PSID)
    )
    await graph.post(f"/{PAGE_ID}/messages", json={**text_to(PSID), "access_token": PAGE_TOKEN})

    header, query, body = emu.requests
    assert header.token_locations == ("header",)
    assert header.headers["authorization"] == "<access_token:header>"
    assert query.token_locations == ("query",)
    assert query.query == {"access_token": "<access_token:query>"}
    assert body.token_locations == ("body",)
    assert body.body["access_token"] == "<access_token:body>"
    assert PAGE_TOKEN not in repr(emu.requests)
    assert [r.status_code for r in emu.requests] == [200, 200, 200]


async def test_conflicting_tokens_are_refused(emu: GraphEmulator, graph: httpx.AsyncClient) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    response = await graph.post(
        f"/{PAGE_ID}/messages",
        params={"access_token": "something-else"},
        json=text_to(PSID),
        headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
    )

    assert error_of(response) == (190, None)
    assert emu.requests[-1].token_locations == ("header", "query")


async def test_echoes_deliveries_reads_and_inbox_replies_never_open_the_window(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - 2 * DAY, last_message_at=START - 2 * DAY)

    await emu.message_delivered(PAGE_ID, PSID, mids=["m_1"])
    await emu.person_reads(PAGE_ID, PSID)
    await emu.page_inbox_reply(PAGE_ID, PSID, "Dạ shop đây ạ")
    await emu.person_reacts(PAGE_ID, PSID, "m_1", action="unreact")

    assert not emu.is_window_open(PAGE_ID, PSID)
    assert error_of(await send(graph, text_to(PSID))) == (10, 2018278)


@pytest.mark.parametrize(
    "act",
    ["writes", "quick_reply", "email", "postback", "referral", "reaction", "plugin"],
)
async def test_inbound_person_events_open_the_window(
    emu: GraphEmulator, graph: httpx.AsyncClient, act: str
) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - 2 * DAY)
    actions: dict[str, Callable[[], Awaitable[WebhookEvent | None]]] = {
        "writes": lambda: emu.person_writes(PAGE_ID, PSID, "Alo"),
        "quick_reply": lambda: emu.person_taps_quick_reply(PAGE_ID, PSID, "YES"),
        "email": lambda: emu.person_shares_email(PAGE_ID, PSID, "lan@example.vn"),
        "postback": lambda: emu.person_taps_postback(PAGE_ID, PSID, "MENU"),
        "referral": lambda: emu.person_clicks_mme_link(PAGE_ID, PSID, "ref"),
        "reaction": lambda: emu.person_reacts(PAGE_ID, PSID, "m_1"),
        "plugin": lambda: emu.person_opts_in_via_plugin(PAGE_ID, "ref", psid=PSID),
    }

    await actions[act]()

    assert (await send(graph, text_to(PSID))).status_code == 200


async def test_optins_do_not_open_the_window(emu: GraphEmulator, graph: httpx.AsyncClient) -> None:
    emu.add_person(PAGE_ID, PSID, window_opened_at=START - 2 * DAY)

    await emu.person_accepts_one_time_notification(PAGE_ID, PSID, "BACK_IN_STOCK")

    assert error_of(await send(graph, text_to(PSID))) == (10, 2018278)


async def test_out_of_order_events_only_move_the_window_forward(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "sau", at=START + timedelta(hours=2))
    await emu.person_writes(PAGE_ID, PSID, "trước", at=START)

    state = emu.thread(PAGE_ID, PSID)
    assert state is not None
    assert state.window_opened_at == START + timedelta(hours=2)
    clock.set(START + DAY + timedelta(hours=1))
    assert (await send(graph, text_to(PSID))).status_code == 200


async def test_click_to_messenger_first_message_opens_seven_days(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    await emu.person_writes(PAGE_ID, PSID, "Tôi thấy quảng cáo", ad_id="ad-77", at=START)
    clock.set(START + 7 * DAY - MS)
    inside = await send(graph, text_to(PSID))
    clock.set(START + 7 * DAY)
    outside = await send(graph, text_to(PSID))

    assert inside.status_code == 200
    assert error_of(outside) == (10, 2018278)


async def test_click_to_messenger_window_can_be_switched_off(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    emu.variants = Variants(ctm_seven_day_window=False)
    await emu.person_writes(PAGE_ID, PSID, "Tôi thấy quảng cáo", ad_id="ad-77", at=START)
    clock.set(START + 2 * DAY)

    assert error_of(await send(graph, text_to(PSID))) == (10, 2018278)


def private_reply(comment_id: str) -> dict[str, Any]:
    return {"recipient": {"comment_id": comment_id}, "message": {"text": "Shop inbox bạn giá nhé"}}


async def test_private_reply_once_per_comment_and_no_window_until_the_person_answers(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    event = await emu.person_comments(PAGE_ID, "Giá bao nhiêu?", psid=PSID)
    comment_id = event.item["value"]["comment_id"]

    before_reply = await send(graph, text_to(PSID))
    first = await send(graph, private_reply(comment_id))
    second = await send(graph, private_reply(comment_id))
    after_reply = await send(graph, text_to(PSID))
    await emu.person_writes(PAGE_ID, PSID, "Dạ cho mình size M")
    after_answer = await send(graph, text_to(PSID))

    assert error_of(before_reply) == (100, 2018001)
    assert first.json()["recipient_id"] == PSID
    assert error_of(second) == (100, 2534025)
    assert error_of(after_reply) == (10, 2018278)
    assert after_answer.status_code == 200


async def test_private_reply_expires_after_seven_days(
    emu: GraphEmulator, graph: httpx.AsyncClient, clock: TestClock
) -> None:
    event = await emu.person_comments(PAGE_ID, "Còn hàng không?", psid=PSID, at=START)
    clock.set(START + 7 * DAY)

    response = await send(graph, private_reply(event.item["value"]["comment_id"]))

    assert error_of(response) == (100, 2534025)


async def test_comment_can_be_told_to_open_the_window(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.variants.comment_opens_window = True

    await emu.person_comments(PAGE_ID, "Giá?", psid=PSID)

    assert (await send(graph, text_to(PSID))).status_code == 200


async def test_checkbox_user_ref_send_omits_recipient_id(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    await emu.person_opts_in_via_plugin(PAGE_ID, "checkout", user_ref="ref-abc")

    known = await send(graph, {"recipient": {"user_ref": "ref-abc"}, "message": {"text": "Cảm ơn"}})
    unknown = await send(graph, {"recipient": {"user_ref": "nope"}, "message": {"text": "x"}})

    assert known.status_code == 200
    assert set(known.json()) == {"message_id"}
    assert error_of(unknown) == (100, 2018001)


async def test_alternative_response_shape(emu: GraphEmulator, graph: httpx.AsyncClient) -> None:
    emu.variants.send_response_shape = "recipient_object"
    emu.add_person(PAGE_ID, PSID, window_opened_at=START)

    body = (await send(graph, text_to(PSID))).json()

    assert body == {"recipient": {"id": PSID, "message_id": emu.sent[-1].mid}}
    assert body["recipient"]["message_id"].startswith("m_")
