"""Our Messenger client against the Graph API emulator (channels.sandbox).

Every case runs twice: in-process (httpx.ASGITransport) and over real HTTP on loopback (uvicorn on
a free port). Backoff waits use a recorded fake sleep; the only real waiting is the timeout case,
where the emulator holds a request longer than the client's timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from channels.messenger.client import MessengerClient, SubscribedApp
from channels.messenger.errors import (
    MalformedRequest,
    PagePaused,
    PayloadInvalid,
    RateLimited,
    RecipientUnavailable,
    TagRejected,
    TokenInvalid,
    WindowClosed,
)
from channels.messenger.payloads import (
    MessagingType,
    Recipient,
    build_send_request,
    button_template,
    generic_element,
    generic_template,
    one_time_notif_request,
    postback_button,
    quick_reply,
    quick_reply_user_email,
    text_message,
    url_button,
)
from channels.messenger.retry import RetryPolicy
from channels.sandbox import GraphEmulator, Variants, serve

PAGE = "104000000000001"
TOKEN = "EAAB-contract-page-token-0123456789"
APP = "1000000000000009"
VERSION = "v25.0"
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Sleeps:
    """The client's sleep and monotonic clock: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 0.0

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@dataclass
class Echoes:
    """The Page's webhook receiver: remembers each echo's metadata (our delivery id) and mid."""

    by_delivery: dict[str, str] = field(default_factory=dict)
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, delivery: str) -> asyncio.Event:
        return self.arrived.setdefault(delivery, asyncio.Event())

    async def handle(self, request: httpx.Request) -> httpx.Response:
        for entry in json.loads(request.content)["entry"]:
            for item in entry.get("messaging", []):
                message = item.get("message") or {}
                if message.get("is_echo") and message.get("metadata"):
                    self.by_delivery[message["metadata"]] = message["mid"]
                    self.event(message["metadata"]).set()
        return httpx.Response(200)

    def already_sent(
        self, delivery: str, *, wait: float = 0.0
    ) -> Callable[[], Awaitable[str | None]]:
        """The hook a dispatcher would pass: the mid of this delivery's echo, if it came."""

        async def check() -> str | None:
            if wait:
                try:
                    await asyncio.wait_for(self.event(delivery).wait(), timeout=wait)
                except TimeoutError:
                    return None
            return self.by_delivery.get(delivery)

        return check


@dataclass
class Rig:
    emulator: GraphEmulator
    client: MessengerClient
    clock: Clock
    sleeps: Sleeps
    echoes: Echoes
    base_url: str
    http: httpx.AsyncClient

    def person(self, *, window_age: timedelta | None = timedelta(hours=1)) -> str:
        opened = None if window_age is None else self.clock.at - window_age
        return self.emulator.add_person(PAGE, window_opened_at=opened, last_message_at=opened)

    async def send(self, body: dict[str, Any], **kwargs: Any) -> Any:
        return await self.client.send(PAGE, TOKEN, VERSION, body, **kwargs)

    def messages_requests(self) -> int:
        return len(self.emulator.requests_to("messages"))


def update(psid: str, message: dict[str, Any], delivery: str = "dlv_1") -> dict[str, Any]:
    return build_send_request(
        Recipient.psid(psid), message, messaging_type=MessagingType.UPDATE, metadata=delivery
    )


def build_emulator(clock: Clock, echoes: Echoes) -> GraphEmulator:
    receiver = httpx.AsyncClient(transport=httpx.MockTransport(echoes.handle))
    emulator = GraphEmulator(clock, webhook_client=receiver, variants=Variants())
    emulator.register_page(
        PAGE,
        username="contract.shop",
        access_token=TOKEN,
        app_id=APP,
        app_secret="contract-app-secret",
        webhook_url="http://receiver.test/webhooks/messenger/" + APP,
    )
    return emulator


@pytest.fixture(params=["asgi", "uvicorn"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    clock = Clock(START)
    echoes = Echoes()
    emulator = build_emulator(clock, echoes)
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4)
    if request.param == "asgi":
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app))
        base = "https://graph.facebook.com"
        client = MessengerClient(
            http, graph_api_url=base, retry_policy=policy, sleep=sleeps, clock=sleeps.clock
        )
        try:
            yield Rig(emulator, client, clock, sleeps, echoes, base, http)
        finally:
            await http.aclose()
    else:
        async with serve(emulator.app) as base:
            http = httpx.AsyncClient()
            client = MessengerClient(
                http,
                graph_api_url=base,
                retry_policy=policy,
                sleep=sleeps,
                clock=sleeps.clock,
                timeout=5.0,
            )
            try:
                yield Rig(emulator, client, clock, sleeps, echoes, base, http)
            finally:
                await http.aclose()
    assert_token_only_in_header(emulator)


def assert_token_only_in_header(emulator: GraphEmulator) -> None:
    for recorded in emulator.requests:
        assert recorded.token_locations == ("header",)
        assert "access_token" not in recorded.query
        assert TOKEN not in recorded.path
        assert TOKEN not in json.dumps(recorded.body)


# --- sends that go out -------------------------------------------------------------------------


async def test_open_window_text_send(rig: Rig) -> None:
    psid = rig.person()
    receipt = await rig.send(update(psid, text_message("Chào bạn! Đơn hàng đã sẵn sàng."), "dlv_7"))
    (sent,) = rig.emulator.sent
    assert receipt.message_id == sent.mid
    assert receipt.recipient_id == psid
    assert sent.message == {"text": "Chào bạn! Đơn hàng đã sẵn sàng.", "metadata": "dlv_7"}
    assert sent.metadata == "dlv_7"
    assert sent.messaging_type == "UPDATE"
    assert rig.echoes.by_delivery == {"dlv_7": sent.mid}


async def test_quick_replies_including_user_email(rig: Rig) -> None:
    psid = rig.person()
    message = text_message(
        "Nhận nhắc lịch qua email?",
        quick_replies=[
            quick_reply("Có", "YES"),
            quick_reply("Không", "NO"),
            quick_reply_user_email(),
        ],
    )
    await rig.send(update(psid, message))
    (sent,) = rig.emulator.sent
    assert sent.message is not None
    assert [item["content_type"] for item in sent.message["quick_replies"]] == [
        "text",
        "text",
        "user_email",
    ]


async def test_button_generic_and_one_time_notification_templates(rig: Rig) -> None:
    psid = rig.person()
    messages = [
        button_template(
            "What next?",
            [
                url_button("Pick a slot", "https://example.com/slot"),
                postback_button("Human", "HANDOFF"),
            ],
        ),
        generic_template(
            [
                generic_element(
                    "Starter plan",
                    subtitle="For teams up to 5",
                    image_url="https://example.com/p.png",
                    default_action_url="https://example.com/plans",
                    buttons=[postback_button("Choose", "PLAN_STARTER")],
                )
            ]
        ),
        one_time_notif_request("Back-in-stock alert for Model X?", "OTN_MODEL_X"),
    ]
    for index, message in enumerate(messages):
        await rig.send(update(psid, message, f"dlv_{index}"))
    kinds = [
        sent.message["attachment"]["payload"]["template_type"]
        for sent in rig.emulator.sent
        if sent.message
    ]
    assert kinds == ["button", "generic", "one_time_notif_req"]


async def test_recipient_object_response_shape(rig: Rig) -> None:
    rig.emulator.variants.send_response_shape = "recipient_object"
    psid = rig.person()
    receipt = await rig.send(update(psid, text_message("hi")))
    assert receipt.message_id == rig.emulator.sent[0].mid
    assert receipt.recipient_id == psid


# --- refusals become typed errors, never retried -----------------------------------------------


async def test_window_closed(rig: Rig) -> None:
    psid = rig.person(window_age=timedelta(hours=24))
    with pytest.raises(WindowClosed) as caught:
        await rig.send(update(psid, text_message("too late")))
    assert (caught.value.code, caught.value.subcode) == (10, 2018278)
    assert caught.value.error_class.reroutes
    assert rig.messages_requests() == 1
    assert rig.emulator.sent == []


async def test_retired_tag_is_rejected(rig: Rig) -> None:
    psid = rig.person()
    body = build_send_request(
        Recipient.psid(psid),
        text_message("Your order shipped"),
        messaging_type=MessagingType.MESSAGE_TAG,
        tag="POST_PURCHASE_UPDATE",
    )
    with pytest.raises(TagRejected):
        await rig.send(body)
    # Without the (UNCONFIRMED) subcode it is a bare #100: still never retried.
    rig.emulator.variants.retired_tag_subcode = None
    with pytest.raises(MalformedRequest):
        await rig.send(body)
    assert rig.messages_requests() == 2
    assert rig.sleeps.calls == []


async def test_unknown_psid_is_unavailable(rig: Rig) -> None:
    with pytest.raises(RecipientUnavailable) as caught:
        await rig.send(update("7999999999999999", text_message("who?")))
    assert (caught.value.code, caught.value.subcode) == (100, 2018001)
    assert rig.messages_requests() == 1


async def test_bad_token_pauses_the_page(rig: Rig) -> None:
    psid = rig.person()
    with pytest.raises(PagePaused) as caught:
        await rig.client.send(PAGE, "EAAB-wrong-token", VERSION, update(psid, text_message("x")))
    assert caught.value.code == 190
    assert rig.messages_requests() == 1
    assert all(r.token_locations == ("header",) for r in rig.emulator.requests)


async def test_payload_over_limits_never_reaches_the_emulator(rig: Rig) -> None:
    psid = rig.person()
    with pytest.raises(PayloadInvalid):
        await rig.send(update(psid, text_message("x" * 2000)))
    assert rig.emulator.requests == []


# --- faults are retried and nothing is lost ----------------------------------------------------


async def test_613_is_retried_with_backoff_then_succeeds(rig: Rig) -> None:
    psid = rig.person()
    rig.emulator.inject_rate_limit(times=2)
    receipt = await rig.send(update(psid, text_message("eventually")))
    assert receipt.message_id == rig.emulator.sent[0].mid
    assert rig.messages_requests() == 3
    # Two retries, each after its backoff and then the rest of the Page's cool-down.
    assert len(rig.sleeps.calls) == 4


async def test_temporary_failures_and_5xx_are_retried(rig: Rig) -> None:
    psid = rig.person()
    rig.emulator.inject_http_status(503, times=1)
    rig.emulator.inject_temporary_failure(times=1)
    await rig.send(update(psid, text_message("eventually")))
    assert len(rig.emulator.sent) == 1
    assert rig.messages_requests() == 3


async def test_rate_limit_that_never_ends_gives_up(rig: Rig) -> None:
    psid = rig.person()
    rig.emulator.inject_rate_limit(forever=True)
    with pytest.raises(RateLimited):
        await rig.send(update(psid, text_message("never")))
    assert rig.messages_requests() == 4
    assert rig.emulator.sent == []


# --- tokens and Page setup ---------------------------------------------------------------------


async def test_one_time_token_is_consumed_once(rig: Rig) -> None:
    psid = rig.person()
    event = await rig.emulator.person_accepts_one_time_notification(PAGE, psid, "OTN_MODEL_X")
    token = event.item["optin"]["one_time_notif_token"]
    body = build_send_request(
        Recipient.one_time_notif_token(token), text_message("Model X is back in stock.")
    )
    assert "messaging_type" not in body
    receipt = await rig.send(body)
    assert receipt.message_id == rig.emulator.sent[0].mid
    with pytest.raises(TokenInvalid) as caught:
        await rig.send(body)
    assert caught.value.error_class.removes_token
    assert len(rig.emulator.sent) == 1
    assert token not in str(caught.value)


async def test_get_started_is_set_and_read_back(rig: Rig) -> None:
    assert await rig.client.get_started_payload(PAGE, TOKEN, VERSION) is None
    await rig.client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    assert await rig.client.get_started_payload(PAGE, TOKEN, VERSION) == "GET_STARTED"
    assert rig.emulator.page(PAGE).get_started_payload == "GET_STARTED"


async def test_subscribe_app_and_check(rig: Rig) -> None:
    await rig.client.subscribe_app(
        PAGE, TOKEN, VERSION, ["messages", "messaging_postbacks", "messaging_referrals"]
    )
    apps = await rig.client.subscribed_apps(PAGE, TOKEN, VERSION)
    assert apps == (
        SubscribedApp(
            APP, "Sandbox App", ("messages", "messaging_postbacks", "messaging_referrals")
        ),
    )
    assert rig.emulator.page(PAGE).subscribed_fields == {
        "messages",
        "messaging_postbacks",
        "messaging_referrals",
    }


async def test_token_travels_only_in_the_authorization_header(rig: Rig) -> None:
    psid = rig.person()
    await rig.send(update(psid, text_message("hi")))
    await rig.client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    await rig.client.subscribed_apps(PAGE, TOKEN, VERSION)
    assert len(rig.emulator.requests) == 3
    for recorded in rig.emulator.requests:
        assert recorded.token_locations == ("header",)
        assert recorded.headers["authorization"] != f"Bearer {TOKEN}"  # redacted by the emulator
        assert TOKEN not in json.dumps(recorded.query)


# --- a timed-out send that Meta accepted: the echo prevents a duplicate (real HTTP only) -------


async def test_timed_out_send_is_not_duplicated_when_the_echo_arrives() -> None:
    clock = Clock(START)
    echoes = Echoes()
    emulator = build_emulator(clock, echoes)
    psid = emulator.add_person(PAGE, window_opened_at=START - timedelta(hours=1))
    emulator.inject_delay(0.6)
    sleeps = Sleeps()
    async with serve(emulator.app) as base, httpx.AsyncClient() as http:
        client = MessengerClient(
            http, graph_api_url=base, timeout=0.2, retry_policy=RetryPolicy(), sleep=sleeps
        )
        receipt = await client.send(
            PAGE,
            TOKEN,
            VERSION,
            update(psid, text_message("exactly once"), "dlv_timeout"),
            already_sent=echoes.already_sent("dlv_timeout", wait=5.0),
        )
    assert receipt.via_echo
    assert [sent.metadata for sent in emulator.sent] == ["dlv_timeout"]
    assert receipt.message_id == emulator.sent[0].mid
    assert len(sleeps.calls) == 1
