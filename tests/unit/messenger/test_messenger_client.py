"""MessengerClient against httpx.MockTransport: shapes, faults, retries, duplicates, the token."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from channels.messenger.client import (
    MessengerClient,
    SendReceipt,
    SubscribedApp,
    build_http_client,
    build_http_clients,
    parse_send_response,
)
from channels.messenger.errors import (
    ConnectionFailed,
    PageCooling,
    PagePaused,
    RateLimited,
    SendTimedOut,
    TemporaryFailure,
    UnexpectedResponse,
    WindowClosed,
)
from channels.messenger.payloads import MessagingType, Recipient, build_send_request, text_message
from channels.messenger.retry import RetryPolicy

TOKEN = "EAAB-page-token-SECRET-0123456789"
PAGE = "104000000000001"
VERSION = "v25.0"
BASE = "https://graph.test"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


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


def top() -> float:
    return 1.0


def body_for(psid: str = "1254477777772919", delivery: str = "dlv_1") -> dict[str, Any]:
    return build_send_request(
        Recipient.psid(psid),
        text_message("Xin chào"),
        messaging_type=MessagingType.UPDATE,
        metadata=delivery,
    )


def graph_error(code: int, subcode: int | None = None, status: int = 400) -> httpx.Response:
    error: dict[str, Any] = {"message": f"(#{code}) error", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "trace"
    return httpx.Response(status, json={"error": error})


def ok(psid: str = "1254477777772919", mid: str = "m_1") -> httpx.Response:
    return httpx.Response(200, json={"recipient_id": psid, "message_id": mid})


def client_for(
    handler: Handler,
    *,
    sleeps: Sleeps | None = None,
    policy: RetryPolicy | None = None,
    **kwargs: Any,
) -> tuple[MessengerClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return await handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(recording))
    sleeps = sleeps or Sleeps()
    client = MessengerClient(
        http,
        graph_api_url=BASE,
        retry_policy=policy or RetryPolicy(max_attempts=5),
        random=top,
        sleep=sleeps,
        clock=sleeps.clock,
        **kwargs,
    )
    return client, seen


def responses(*answers: httpx.Response | Exception) -> Handler:
    queue = list(answers)

    async def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def assert_token_only_in_header(requests: list[httpx.Request]) -> None:
    assert requests
    for request in requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in str(request.url)
        assert "access_token" not in str(request.url)
        assert TOKEN.encode() not in request.content


# --- success shapes ----------------------------------------------------------------------------


async def test_send_posts_the_body_to_the_page_messages_edge() -> None:
    client, seen = client_for(responses(ok()))
    receipt = await client.send(PAGE, TOKEN, VERSION, body_for())
    assert receipt == SendReceipt(recipient_id="1254477777772919", message_id="m_1")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/{VERSION}/{PAGE}/messages"
    assert json.loads(request.content) == body_for()
    assert request.headers["content-type"] == "application/json"
    assert_token_only_in_header(seen)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"recipient_id": "1", "message_id": "m_a"}, SendReceipt("1", "m_a")),
        ({"message_id": "m_b"}, SendReceipt(None, "m_b")),
        ({"recipient": {"id": "2", "message_id": "m_c"}}, SendReceipt("2", "m_c")),
        ({"recipient": {"message_id": "m_d"}}, SendReceipt(None, "m_d")),
        ({"recipient_id": 3, "message_id": "m_e"}, SendReceipt("3", "m_e")),
    ],
)
def test_both_response_shapes(data: dict[str, Any], expected: SendReceipt) -> None:
    assert parse_send_response(data) == expected


@pytest.mark.parametrize("data", [{}, {"recipient_id": "1"}, {"message_id": ""}, [], None, "m_1"])
def test_unreadable_success_is_flagged_as_maybe_delivered(data: Any) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse_send_response(data)
    assert caught.value.maybe_delivered
    assert not caught.value.retryable


async def test_2xx_without_json_is_unexpected_not_retried() -> None:
    client, seen = client_for(responses(httpx.Response(200, content=b"<html>")))
    with pytest.raises(UnexpectedResponse):
        await client.send(PAGE, TOKEN, VERSION, body_for())
    assert len(seen) == 1


# --- final errors are raised at once -----------------------------------------------------------


async def test_window_closed_is_raised_without_retry() -> None:
    sleeps = Sleeps()
    client, seen = client_for(responses(graph_error(10, 2018278)), sleeps=sleeps)
    with pytest.raises(WindowClosed) as caught:
        await client.send(PAGE, TOKEN, VERSION, body_for())
    assert (caught.value.code, caught.value.subcode, caught.value.http_status) == (10, 2018278, 400)
    assert caught.value.fbtrace_id == "trace"
    assert len(seen) == 1
    assert sleeps.calls == []


async def test_bad_token_pauses_the_page() -> None:
    client, seen = client_for(responses(graph_error(190, 463, status=401)))
    with pytest.raises(PagePaused):
        await client.send(PAGE, TOKEN, VERSION, body_for())
    assert len(seen) == 1


# --- faults: retried with backoff and never lost -----------------------------------------------


async def test_613_burst_is_retried_with_backoff_then_succeeds() -> None:
    sleeps = Sleeps()
    client, seen = client_for(
        responses(graph_error(613), graph_error(613), graph_error(613, 2534040), ok(mid="m_ok")),
        sleeps=sleeps,
    )
    receipt = await client.send(PAGE, TOKEN, VERSION, body_for())
    assert receipt.message_id == "m_ok"
    assert len(seen) == 4
    # Each retry's backoff (0.5, 1, 2 s), then the rest of the Page's cool-down, which doubles
    # while the refusals continue (1, 2, 4 s between attempts).
    assert sleeps.calls == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0]
    assert client.cooling_for(PAGE) == 0.0  # the accepted send ended it
    assert_token_only_in_header(seen)


async def test_5xx_is_retried() -> None:
    client, seen = client_for(
        responses(httpx.Response(502, content=b"Bad Gateway"), graph_error(2, status=500), ok())
    )
    assert (await client.send(PAGE, TOKEN, VERSION, body_for())).message_id == "m_1"
    assert len(seen) == 3


async def test_retries_stop_at_max_attempts_with_the_last_error() -> None:
    client, seen = client_for(
        responses(*[graph_error(4) for _ in range(3)]), policy=RetryPolicy(max_attempts=3)
    )
    with pytest.raises(RateLimited):
        await client.send(PAGE, TOKEN, VERSION, body_for())
    assert len(seen) == 3


async def test_rate_limit_header_longer_than_max_delay_gives_up_for_the_dispatcher() -> None:
    usage = json.dumps({"1": [{"estimated_time_to_regain_access": 30}]})
    limited = httpx.Response(
        400,
        json={"error": {"code": 80001, "message": "too many calls"}},
        headers={"X-Business-Use-Case-Usage": usage},
    )
    client, seen = client_for(responses(limited))
    with pytest.raises(RateLimited) as caught:
        await client.send(PAGE, TOKEN, VERSION, body_for())
    assert caught.value.retry_after == 1800.0
    assert len(seen) == 1


async def test_send_once_never_retries() -> None:
    client, seen = client_for(responses(graph_error(613), ok()))
    with pytest.raises(RateLimited):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert len(seen) == 1


async def test_a_rate_limit_answer_cools_that_page_down_and_no_other() -> None:
    sleeps = Sleeps()
    client, seen = client_for(
        responses(graph_error(613), ok(), graph_error(613), graph_error(613), ok()), sleeps=sleeps
    )
    with pytest.raises(RateLimited):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert (client.cooling_for(PAGE), client.cooling_for("other")) == (1.0, 0.0)
    # Another Page sends at once; this one waits out its cool-down first.
    await client.send_once("other", TOKEN, VERSION, body_for())
    assert sleeps.calls == []
    with pytest.raises(RateLimited):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert sleeps.calls == [1.0]
    # Refused again: the pause doubles; an accepted send ends the escalation.
    assert client.cooling_for(PAGE) == 2.0
    with pytest.raises(RateLimited):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert sleeps.calls == [1.0, 2.0]
    assert client.cooling_for(PAGE) == 4.0
    await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert client.cooling_for(PAGE) == 0.0
    assert len(seen) == 5


async def test_a_call_queued_behind_the_pace_when_a_refusal_lands_is_not_sent() -> None:
    class RefusalMeanwhile:
        """The Page's pace; while this call waits its turn, another call is refused."""

        async def acquire(self, key: str) -> None:
            client._cool_down(key, None)

    client, seen = client_for(responses(ok()), rate_limiter=RefusalMeanwhile())
    with pytest.raises(PageCooling) as caught:
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert caught.value.retry_after == 1.0
    assert isinstance(caught.value, RateLimited)  # retried by `send` like any rate limit
    assert seen == []


@pytest.mark.parametrize(("minutes", "seconds"), [(2, 120.0), (90, 3600.0)])
async def test_the_cool_down_honours_metas_estimate_up_to_an_hour(
    minutes: int, seconds: float
) -> None:
    usage = json.dumps({PAGE: [{"type": "messenger", "estimated_time_to_regain_access": minutes}]})
    limited = httpx.Response(
        400,
        json={"error": {"code": 80001, "message": "too many calls"}},
        headers={"X-Business-Use-Case-Usage": usage},
    )
    client, _ = client_for(responses(limited))
    with pytest.raises(RateLimited):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert client.cooling_for(PAGE) == seconds


@pytest.mark.parametrize(
    ("failure", "kind", "maybe_delivered"),
    [
        (httpx.ConnectTimeout("connect"), SendTimedOut, False),
        (httpx.PoolTimeout("pool"), SendTimedOut, False),
        (httpx.WriteTimeout("write"), SendTimedOut, True),
        (httpx.ReadTimeout("read"), SendTimedOut, True),
        (httpx.ConnectError("refused"), ConnectionFailed, False),
        (httpx.RemoteProtocolError("disconnected"), ConnectionFailed, True),
        (httpx.ReadError("reset"), ConnectionFailed, True),
    ],
)
async def test_transport_failures_are_typed_temporary_errors(
    failure: Exception, kind: type[TemporaryFailure], maybe_delivered: bool
) -> None:
    client, _ = client_for(responses(failure))
    with pytest.raises(kind) as caught:
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert caught.value.retryable
    assert caught.value.maybe_delivered is maybe_delivered
    assert TOKEN not in str(caught.value)


async def test_timeouts_are_retried_and_the_message_is_not_lost() -> None:
    client, seen = client_for(responses(httpx.ReadTimeout("read"), httpx.ConnectError("x"), ok()))
    assert (await client.send(PAGE, TOKEN, VERSION, body_for())).message_id == "m_1"
    assert len(seen) == 3


async def test_already_sent_prevents_a_duplicate_after_a_timeout() -> None:
    accepted: dict[str, str] = {}  # delivery id (message.metadata) -> mid, as Meta would echo it

    async def accepts_then_times_out(request: httpx.Request) -> httpx.Response:
        delivery = json.loads(request.content)["message"]["metadata"]
        accepted[delivery] = f"m_{len(accepted) + 1}"
        raise httpx.ReadTimeout("accepted, but the answer never came")

    async def already_sent() -> str | None:
        return accepted.get("dlv_42")

    client, seen = client_for(accepts_then_times_out)
    receipt = await client.send(
        PAGE, TOKEN, VERSION, body_for(delivery="dlv_42"), already_sent=already_sent
    )
    assert receipt == SendReceipt(recipient_id=None, message_id="m_1", via_echo=True)
    assert len(seen) == 1
    assert accepted == {"dlv_42": "m_1"}


async def test_without_the_hook_a_timed_out_send_is_resent_at_least_once() -> None:
    client, seen = client_for(responses(httpx.ReadTimeout("read"), ok(mid="m_2")))
    assert (await client.send(PAGE, TOKEN, VERSION, body_for())).message_id == "m_2"
    assert len(seen) == 2


async def test_mixed_faults_under_concurrency_lose_nothing_and_duplicate_nothing() -> None:
    """200 deliveries through 613 bursts, 5xx, connect errors and accepted-then-timed-out sends."""
    chance = random.Random(7)
    accepted: dict[str, str] = {}
    attempts: dict[str, int] = {}

    async def flaky_meta(request: httpx.Request) -> httpx.Response:
        delivery = json.loads(request.content)["message"]["metadata"]
        attempts[delivery] = attempts.get(delivery, 0) + 1
        assert delivery not in accepted, "a delivery was sent twice"
        await asyncio.sleep(0)
        roll = chance.random()
        if roll < 0.15:
            return graph_error(613)
        if roll < 0.25:
            return httpx.Response(503, content=b"unavailable")
        if roll < 0.30:
            raise httpx.ConnectError("refused")
        accepted[delivery] = f"m_{delivery}"
        if roll < 0.40:
            raise httpx.ReadTimeout("accepted but unanswered")
        return ok(mid=accepted[delivery])

    client, _ = client_for(flaky_meta, policy=RetryPolicy(max_attempts=20), max_in_flight=15)

    async def deliver(index: int) -> SendReceipt:
        delivery = f"dlv_{index}"

        async def already_sent() -> str | None:
            return accepted.get(delivery)

        return await client.send(
            PAGE, TOKEN, VERSION, body_for(delivery=delivery), already_sent=already_sent
        )

    receipts = await asyncio.gather(*(deliver(index) for index in range(200)))
    assert sorted(receipt.message_id for receipt in receipts) == sorted(accepted.values())
    assert len(accepted) == 200
    assert any(receipt.via_echo for receipt in receipts)
    assert max(attempts.values()) > 1


# --- concurrency and rate limiting -------------------------------------------------------------


async def test_requests_in_flight_are_bounded() -> None:
    in_flight = 0
    peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1
        return ok()

    client, seen = client_for(slow, max_in_flight=4)
    await asyncio.gather(*(client.send(PAGE, TOKEN, VERSION, body_for()) for _ in range(40)))
    assert len(seen) == 40
    assert peak == 4


async def test_the_rate_limiter_is_acquired_per_page_for_every_attempt() -> None:
    keys: list[str] = []

    class Recording:
        async def acquire(self, key: str) -> None:
            keys.append(key)

    client, _ = client_for(responses(graph_error(613), ok(), ok()), rate_limiter=Recording())
    await client.send(PAGE, TOKEN, VERSION, body_for())
    await client.send("104000000000002", TOKEN, VERSION, body_for())
    assert keys == [PAGE, PAGE, "104000000000002"]


# --- Page setup endpoints ----------------------------------------------------------------------


async def test_set_and_read_get_started() -> None:
    client, seen = client_for(
        responses(
            httpx.Response(200, json={"result": "success"}),
            httpx.Response(200, json={"data": [{"get_started": {"payload": "GET_STARTED"}}]}),
            httpx.Response(200, json={"data": []}),
        )
    )
    await client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    assert await client.get_started_payload(PAGE, TOKEN, VERSION) == "GET_STARTED"
    assert await client.get_started_payload(PAGE, TOKEN, VERSION) is None
    post, get, _ = seen
    assert (post.method, post.url.path) == ("POST", f"/{VERSION}/{PAGE}/messenger_profile")
    assert json.loads(post.content) == {"get_started": {"payload": "GET_STARTED"}}
    assert (get.method, get.url.path) == ("GET", f"/{VERSION}/{PAGE}/messenger_profile")
    assert get.url.params["fields"] == "get_started"
    assert_token_only_in_header(seen)


async def test_subscribe_app_and_read_subscriptions() -> None:
    listing = {
        "data": [
            {
                "id": "555",
                "name": "Outreach",
                "subscribed_fields": ["messages", "messaging_postbacks"],
            },
            {"id": 777, "subscribed_fields": "bad"},
            {"name": "no id"},
            "junk",
        ]
    }
    client, seen = client_for(
        responses(httpx.Response(200, json={"success": True}), httpx.Response(200, json=listing))
    )
    await client.subscribe_app(PAGE, TOKEN, VERSION, ["messages", "messaging_postbacks"])
    apps = await client.subscribed_apps(PAGE, TOKEN, VERSION)
    assert apps == (
        SubscribedApp("555", "Outreach", ("messages", "messaging_postbacks")),
        SubscribedApp("777", None, ()),
    )
    post, get = seen
    assert (post.method, post.url.path) == ("POST", f"/{VERSION}/{PAGE}/subscribed_apps")
    assert post.url.params["subscribed_fields"] == "messages,messaging_postbacks"
    assert get.method == "GET"
    assert_token_only_in_header(seen)


async def test_setup_calls_raise_on_failure_answers() -> None:
    client, _ = client_for(
        responses(httpx.Response(200, json={"success": False}), graph_error(200, 2018028))
    )
    with pytest.raises(UnexpectedResponse):
        await client.subscribe_app(PAGE, TOKEN, VERSION, ["messages"])
    with pytest.raises(PagePaused):
        await client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    with pytest.raises(ValueError, match="at least one field"):
        await client.subscribe_app(PAGE, TOKEN, VERSION, [])


async def test_setup_calls_retry_temporary_errors() -> None:
    client, seen = client_for(
        responses(httpx.Response(503), httpx.Response(200, json={"result": "success"}))
    )
    await client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    assert len(seen) == 2


# --- hygiene -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["25.0", "v25", "v25.0/../../x", ""])
async def test_version_must_look_like_a_graph_version(version: str) -> None:
    client, seen = client_for(responses(ok()))
    with pytest.raises(ValueError, match=r"v25\.0"):
        await client.send_once(PAGE, TOKEN, version, body_for())
    assert seen == []


async def test_page_id_is_a_single_path_segment() -> None:
    client, seen = client_for(responses(ok()))
    await client.send_once("../me", TOKEN, VERSION, body_for())
    assert seen[0].url.raw_path == f"/{VERSION}/..%2Fme/messages".encode()
    with pytest.raises(ValueError, match="page_id"):
        await client.send_once("", TOKEN, VERSION, body_for())


async def test_token_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, _ = client_for(
        responses(
            graph_error(613),
            httpx.ReadTimeout("read"),
            ok(),
            graph_error(10, 2018278),
            httpx.Response(200, json={"result": "success"}),
        )
    )
    await client.send(PAGE, TOKEN, VERSION, body_for())
    with pytest.raises(WindowClosed):
        await client.send(PAGE, TOKEN, VERSION, body_for())
    await client.set_get_started(PAGE, TOKEN, VERSION, "GET_STARTED")
    assert caplog.records, "expected retry warnings to be logged"
    assert TOKEN not in caplog.text
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


async def test_build_http_client_pool_matches_in_flight() -> None:
    http = build_http_client(max_in_flight=12)
    try:
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 12
        assert pool._max_keepalive_connections == 12
        assert pool._keepalive_expiry == 4.0
    finally:
        await http.aclose()


async def test_build_http_clients_makes_small_lanes_for_the_in_flight_bound() -> None:
    lanes = build_http_clients(max_in_flight=15, connections_per_client=4)
    try:
        assert len(lanes) == 4
        for lane in lanes:
            pool = lane._transport._pool  # type: ignore[attr-defined]
            assert pool._max_connections == 4
            assert pool._max_keepalive_connections == 4
    finally:
        for lane in lanes:
            await lane.aclose()
    with pytest.raises(ValueError, match="at least 1"):
        build_http_clients(max_in_flight=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        MessengerClient(httpx.AsyncClient(), max_in_flight=0)
    with pytest.raises(ValueError, match="at least one"):
        MessengerClient(())


async def test_requests_go_to_the_least_busy_lane() -> None:
    release = asyncio.Event()
    all_in = asyncio.Event()
    used: list[str] = []

    def lane(name: str) -> httpx.AsyncClient:
        async def handler(request: httpx.Request) -> httpx.Response:
            used.append(name)
            if len(used) == 6:
                all_in.set()
            await release.wait()
            return ok()

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    lanes = (lane("a"), lane("b"), lane("c"))
    client = MessengerClient(lanes, graph_api_url=BASE, max_in_flight=6, sleep=Sleeps())
    sends = [
        asyncio.create_task(client.send_once(PAGE, TOKEN, VERSION, body_for())) for _ in range(6)
    ]
    await all_in.wait()
    assert sorted(used) == ["a", "a", "b", "b", "c", "c"]
    release.set()
    receipts = await asyncio.gather(*sends)
    assert all(receipt.message_id == "m_1" for receipt in receipts)
    used.clear()
    await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert used == ["a"]
