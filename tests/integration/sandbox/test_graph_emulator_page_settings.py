"""`messenger_profile` (Get Started) and `subscribed_apps` (webhook fields), with token checks."""

from __future__ import annotations

import httpx
import pytest

from channels.sandbox import GraphEmulator
from tests.integration.sandbox.graph_emulator_support import (
    APP_ID,
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    RECEIVER_URL,
    WebhookReceiver,
    error_of,
)

AUTH = {"Authorization": f"Bearer {PAGE_TOKEN}"}
PSID = "2400000000000031"


async def test_get_started_round_trip(emu: GraphEmulator, graph: httpx.AsyncClient) -> None:
    posted = await graph.post(
        f"/{PAGE_ID}/messenger_profile",
        json={
            "get_started": {"payload": "BAT_DAU"},
            "greeting": [{"locale": "default", "text": "Chào!"}],
        },
        headers=AUTH,
    )
    fetched = await graph.get(f"/{PAGE_ID}/messenger_profile", params={"fields": "get_started"}, headers=AUTH)  # fmt: skip

    assert posted.json() == {"result": "success"}
    assert fetched.json() == {"data": [{"get_started": {"payload": "BAT_DAU"}}]}
    assert emu.page(PAGE_ID).get_started_payload == "BAT_DAU"


async def test_deleting_get_started_means_new_people_cannot_start(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    deleted = await graph.request(
        "DELETE", f"/{PAGE_ID}/messenger_profile", json={"fields": ["get_started"]}, headers=AUTH
    )
    fetched = await graph.get(f"/{PAGE_ID}/messenger_profile", params={"fields": "get_started"}, headers=AUTH)  # fmt: skip

    event = await emu.person_clicks_mme_link(PAGE_ID, None, "ref-x")

    assert deleted.json() == {"result": "success"}
    assert fetched.json() == {"data": []}
    assert event is None
    assert receiver.received == []
    assert emu.page(PAGE_ID).threads == {}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"get_started": {"payload": ""}},
        {"get_started": "GS"},
        {"favourite_colour": "blue"},
    ],
)
async def test_bad_profile_posts_are_100(graph: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await graph.post(f"/{PAGE_ID}/messenger_profile", json=body, headers=AUTH)

    assert response.status_code == 400
    assert error_of(response) == (100, None)


async def test_persistent_menu_needs_get_started(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    emu.page(PAGE_ID).messenger_profile.clear()
    menu = [{"locale": "default", "call_to_actions": [{"type": "postback", "title": "Mua", "payload": "BUY"}]}]  # fmt: skip

    refused = await graph.post(f"/{PAGE_ID}/messenger_profile", json={"persistent_menu": menu}, headers=AUTH)  # fmt: skip
    accepted = await graph.post(
        f"/{PAGE_ID}/messenger_profile",
        json={"get_started": {"payload": "GS"}, "persistent_menu": menu},
        headers=AUTH,
    )

    assert error_of(refused) == (100, None)
    assert accepted.status_code == 200


async def test_profile_get_needs_fields(graph: httpx.AsyncClient) -> None:
    response = await graph.get(f"/{PAGE_ID}/messenger_profile", headers=AUTH)

    assert error_of(response) == (100, None)


@pytest.mark.parametrize("edge", ["messenger_profile", "subscribed_apps"])
async def test_page_settings_need_the_page_token(graph: httpx.AsyncClient, edge: str) -> None:
    missing = await graph.get(f"/{PAGE_ID}/{edge}", params={"fields": "get_started"})
    wrong = await graph.get(
        f"/{PAGE_ID}/{edge}", params={"fields": "get_started", "access_token": "nope"}
    )

    assert error_of(missing) == (190, None)
    assert error_of(wrong) == (190, None)


async def test_subscribed_apps_round_trip_and_filtering(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    subscribed = await graph.post(
        f"/{PAGE_ID}/subscribed_apps",
        params={"subscribed_fields": "messages,messaging_postbacks"},
        headers=AUTH,
    )
    listed = await graph.get(f"/{PAGE_ID}/subscribed_apps", headers=AUTH)

    await emu.person_writes(PAGE_ID, PSID, "Chào")
    await emu.page_inbox_reply(PAGE_ID, PSID, "Dạ")

    assert subscribed.json() == {"success": True}
    app = listed.json()["data"][0]
    assert app["id"] == APP_ID
    assert app["subscribed_fields"] == ["messages", "messaging_postbacks"]
    assert len(receiver.received) == 1
    assert "message" in receiver.last.messaging()
    assert emu.deliveries[-1].skipped == "Page not subscribed"


async def test_subscribed_fields_can_be_a_json_list_in_the_body(
    emu: GraphEmulator, graph: httpx.AsyncClient
) -> None:
    response = await graph.post(
        f"/{PAGE_ID}/subscribed_apps",
        json={"subscribed_fields": ["messages", "message_echoes", "feed"]},
        headers=AUTH,
    )

    assert response.status_code == 200
    assert emu.page(PAGE_ID).subscribed_fields == {"messages", "message_echoes", "feed"}


@pytest.mark.parametrize("fields", ["", "messages,bogus_field"])
async def test_bad_subscribed_fields_are_100(
    emu: GraphEmulator, graph: httpx.AsyncClient, fields: str
) -> None:
    before = set(emu.page(PAGE_ID).subscribed_fields)

    response = await graph.post(
        f"/{PAGE_ID}/subscribed_apps", params={"subscribed_fields": fields}, headers=AUTH
    )

    assert error_of(response) == (100, None)
    assert emu.page(PAGE_ID).subscribed_fields == before


async def test_unsubscribed_page_gets_no_webhooks_until_it_subscribes(
    emu: GraphEmulator, graph: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    emu.register_page(
        "5151",
        username="new.page",
        access_token="tok-new",
        app_id=APP_ID,
        app_secret=APP_SECRET,
        webhook_url=RECEIVER_URL,
        webhook_client=emu.webhook_client,
        subscribed_fields=None,
    )
    auth = {"Authorization": "Bearer tok-new"}

    before = await graph.get("/5151/subscribed_apps", headers=auth)
    await emu.person_writes("5151", PSID, "Chào")
    await graph.post(
        "/5151/subscribed_apps", params={"subscribed_fields": "messages"}, headers=auth
    )
    await emu.person_writes("5151", PSID, "Chào lần nữa")
    unsubscribed = await graph.request("DELETE", "/5151/subscribed_apps", headers=auth)
    await emu.person_writes("5151", PSID, "Có ai không?")

    assert before.json() == {"data": []}
    assert unsubscribed.json() == {"success": True}
    assert [r.messaging()["message"]["text"] for r in receiver.received] == ["Chào lần nữa"]


async def test_unknown_edge_and_wrong_method(graph: httpx.AsyncClient) -> None:
    unknown = await graph.get(f"/{PAGE_ID}/conversations", headers=AUTH)
    get_messages = await graph.get(f"/{PAGE_ID}/messages", headers=AUTH)

    assert error_of(unknown) == (2500, None)
    assert error_of(get_messages) == (100, None)
