"""MessengerClient's `on_response` hook: one call per Graph API exchange with the edge, the
outcome ("ok" or the error class) and the seconds; a failing observer never fails a send."""

from __future__ import annotations

import logging

import httpx
import pytest

from channels.messenger.client import ResponseObserver
from channels.messenger.errors import SendTimedOut, UnexpectedResponse
from channels.messenger.retry import RetryPolicy
from tests.unit.messenger.test_messenger_client import (
    PAGE,
    TOKEN,
    VERSION,
    Sleeps,
    body_for,
    client_for,
    graph_error,
    ok,
    responses,
)

Seen = list[tuple[str, str, float]]


def observer(seen: Seen) -> ResponseObserver:
    def record(edge: str, outcome: str, seconds: float) -> None:
        seen.append((edge, outcome, seconds))

    return record


async def test_each_attempt_is_observed_with_its_outcome() -> None:
    seen: Seen = []
    client, requests = client_for(
        responses(graph_error(613, status=400), ok()),
        sleeps=Sleeps(),
        policy=RetryPolicy(max_attempts=3),
        on_response=observer(seen),
    )
    await client.send(PAGE, TOKEN, VERSION, body_for())
    assert len(requests) == 2
    assert [(edge, outcome) for edge, outcome, _ in seen] == [
        ("messages", "rate_limited"),
        ("messages", "ok"),
    ]
    assert all(seconds >= 0 for _, _, seconds in seen)


async def test_transport_failures_and_bad_answers_are_observed() -> None:
    seen: Seen = []
    client, _ = client_for(
        responses(
            httpx.ReadTimeout("slow"),
            httpx.Response(200, content=b"not json"),
        ),
        policy=RetryPolicy(max_attempts=1),
        on_response=observer(seen),
    )
    with pytest.raises(SendTimedOut):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    with pytest.raises(UnexpectedResponse):
        await client.send_once(PAGE, TOKEN, VERSION, body_for())
    assert [outcome for _, outcome, _ in seen] == [
        SendTimedOut.error_class.value,
        UnexpectedResponse.error_class.value,
    ]


async def test_setup_calls_name_their_edge() -> None:
    seen: Seen = []
    client, _ = client_for(
        responses(httpx.Response(200, json={"success": True})),
        on_response=observer(seen),
    )
    await client.subscribe_app(PAGE, TOKEN, VERSION, ["messages"])
    assert [(edge, outcome) for edge, outcome, _ in seen] == [("subscribed_apps", "ok")]


async def test_a_failing_observer_never_fails_a_send(caplog: pytest.LogCaptureFixture) -> None:
    def broken(edge: str, outcome: str, seconds: float) -> None:
        raise ValueError("metrics bug")

    client, requests = client_for(responses(ok(mid="m_ok")), on_response=broken)
    with caplog.at_level(logging.WARNING, logger="channels.messenger.client"):
        receipt = await client.send(PAGE, TOKEN, VERSION, body_for())
    assert receipt.message_id == "m_ok"
    assert len(requests) == 1  # not retried: the send succeeded
    assert "observer failed" in caplog.text
