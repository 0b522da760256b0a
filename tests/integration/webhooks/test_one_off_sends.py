"""Human replies, opt-in requests and email requests: policy at request time, the dispatcher,
the Send API through the emulator, faults, takeovers."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator import dispatch
from orchestrator.clock import FrozenClock
from orchestrator.models import Delivery, MessengerIdentity, OptinToken, Page, table_of
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401

SETTINGS = dispatch.DispatchSettings(random=lambda: 0.5)


async def run_dispatch(resources: Resources, clock: FrozenClock) -> int:
    return await dispatch.dispatch_once(
        resources.sessions,
        resources.keyring,
        resources.messenger,
        worker_id="wk_test",
        clock=clock.now,
        settings=SETTINGS,
    )


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with sessions() as s:
        return list((await s.execute(sa.select(Delivery).order_by(Delivery.created_at))).scalars())  # type: ignore[arg-type]


async def person(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    text: str = "Cho mình hỏi giá",
) -> tuple[str, str]:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, text)
    await apply(sessions, clock)
    async with sessions() as s:
        contact_id = (
            await s.execute(
                sa.select(table_of(MessengerIdentity).c.contact_id).where(
                    table_of(MessengerIdentity).c.psid == psid
                )
            )
        ).scalar_one()
    return psid, contact_id


async def test_a_new_person_is_asked_for_email_inside_the_window(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    psid, _ = await person(wired, sessions, clock)
    assert await run_dispatch(resources, clock) == 1
    [request] = await deliveries(sessions)
    assert request.state == "sent", request.last_error
    assert request.reason == "messenger.window"
    assert request.messaging_type == "RESPONSE"
    sent = wired.sent_to(PAGE_ID, psid)
    assert len(sent) == 1
    assert sent[0].message is not None
    assert sent[0].message["quick_replies"] == [{"content_type": "user_email"}]
    assert sent[0].metadata == request.id
    assert sent[0].messaging_type == "RESPONSE"
    assert request.provider_message_id == sent[0].mid
    assert all(r.token_locations == ("header",) for r in wired.requests_to("messages"))
    assert await run_dispatch(resources, clock) == 0


async def test_human_reply_inside_window_then_human_agent_then_refused(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid, contact_id = await person(wired, sessions, clock)
    await client.patch(
        f"/v1/pages/{PAGE_ID}", headers=tenant.headers, json={"human_agent_enabled": True}
    )
    reply = await client.post(
        f"/v1/contacts/{contact_id}/messages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "text": "Dạ áo này còn size M ạ"},
    )
    assert reply.status_code == 202, reply.text
    await run_dispatch(resources, clock)  # one delivery per contact per round: the email request
    await run_dispatch(resources, clock)  # then the reply
    clock.advance(timedelta(days=2))
    later = await client.post(
        f"/v1/contacts/{contact_id}/messages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "text": "Shop gửi bạn mã giảm giá nhé"},
    )
    assert later.status_code == 202, later.text
    await run_dispatch(resources, clock)
    sent = {d.id: d for d in await deliveries(sessions) if d.kind == "human_reply"}
    first, second = sent[reply.json()["id"]], sent[later.json()["id"]]
    assert (first.state, first.reason, first.messaging_type) == (
        "sent",
        "messenger.window",
        "RESPONSE",
    )
    assert (second.state, second.reason, second.tag) == (
        "sent",
        "messenger.human_agent",
        "HUMAN_AGENT",
    )
    assert wired.sent_to(PAGE_ID, psid)[-1].tag == "HUMAN_AGENT"
    got = await client.get(f"/v1/deliveries/{second.id}", headers=tenant.headers)
    assert got.json()["state"] == "sent"

    clock.advance(timedelta(days=5, seconds=1))
    refused = await client.post(
        f"/v1/contacts/{contact_id}/messages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "text": "Còn đó không?"},
    )
    assert refused.status_code == 409
    assert refused.json()["reason"] == "skipped.no_reachable_channel"


async def test_human_reply_refused_outside_window_without_human_agent(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    _, contact_id = await person(wired, sessions, clock)
    clock.advance(timedelta(hours=24))
    refused = await client.post(
        f"/v1/contacts/{contact_id}/messages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "text": "xin chào"},
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    human_replies = [d for d in await deliveries(sessions) if d.kind == "human_reply"]
    assert human_replies == []


async def test_takeover_stops_every_send_from_us(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid, contact_id = await person(wired, sessions, clock)
    await wired.page_inbox_reply(PAGE_ID, psid, "Chị Hoa đây, em cần gì?")
    await apply(sessions, clock)
    await run_dispatch(resources, clock)
    [request] = await deliveries(sessions)
    assert (request.state, request.reason) == ("skipped", "skipped.human_takeover")
    assert [m.app_id for m in wired.sent_to(PAGE_ID, psid)] == ["263902037430900"]  # only hers
    conversations = await client.get(
        "/v1/conversations", params={"status": "taken_over"}, headers=tenant.headers
    )
    assert [c["psid"] for c in conversations.json()["data"]] == [psid]
    # DESIGN section 5: never a Messenger send to a contact whose conversation a person took
    # over, even one written by a person here; she answers from the Page inbox.
    reply = await client.post(
        f"/v1/contacts/{contact_id}/messages",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "text": "Dạ shop đây"},
    )
    assert reply.status_code == 409
    assert reply.json()["reason"] == "skipped.human_takeover"


async def test_optin_request_inside_the_window_only(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid, contact_id = await person(wired, sessions, clock)
    no_permission = await client.post(
        f"/v1/contacts/{contact_id}/optin-requests",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "topic": "restock", "title": "Báo khi có hàng?"},
    )
    assert no_permission.status_code == 409
    await client.patch(f"/v1/pages/{PAGE_ID}", headers=tenant.headers, json={"otn_enabled": True})
    asked = await client.post(
        f"/v1/contacts/{contact_id}/optin-requests",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "topic": "restock", "title": "Báo khi có hàng?"},
    )
    assert asked.status_code == 202, asked.text
    await run_dispatch(resources, clock)
    await run_dispatch(resources, clock)
    sent = wired.sent_to(PAGE_ID, psid)
    templates = [(m.message or {}).get("attachment", {}).get("payload", {}) for m in sent]
    assert {
        "template_type": "one_time_notif_req",
        "title": "Báo khi có hàng?",
        "payload": "restock",
    } in templates
    await wired.person_accepts_one_time_notification(PAGE_ID, psid, "restock")
    await apply(sessions, clock)
    async with sessions() as s:
        assert (await s.execute(sa.select(OptinToken))).scalar_one().topic == "restock"
    clock.advance(timedelta(hours=25))
    outside = await client.post(
        f"/v1/contacts/{contact_id}/optin-requests",
        headers=tenant.headers,
        json={"page_id": PAGE_ID, "topic": "sale", "title": "Ưu đãi?"},
    )
    assert outside.status_code == 409


async def test_rate_limits_back_off_and_then_send(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    psid, _ = await person(wired, sessions, clock)
    wired.inject_rate_limit(times=2)
    await run_dispatch(resources, clock)
    [request] = await deliveries(sessions)
    assert request.state == "pending"
    assert request.attempts == 1
    assert request.last_error is not None
    assert request.last_error["code"] == 613
    assert request.next_attempt_at == T0 + timedelta(seconds=1)
    assert await run_dispatch(resources, clock) == 0  # not due yet
    clock.advance(timedelta(seconds=1))
    await run_dispatch(resources, clock)
    clock.advance(timedelta(seconds=5))
    await run_dispatch(resources, clock)
    [request] = await deliveries(sessions)
    assert request.state == "sent"
    assert request.attempts == 3
    assert len(wired.sent_to(PAGE_ID, psid)) == 1


async def test_retries_end_in_failed_retries_exhausted(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    await person(wired, sessions, clock)
    wired.inject_temporary_failure(forever=True)
    for _ in range(SETTINGS.max_attempts + 1):
        await run_dispatch(resources, clock)
        clock.advance(timedelta(minutes=15))
    [request] = await deliveries(sessions)
    assert (request.state, request.reason) == ("failed", "failed.retries_exhausted")
    assert request.attempts == SETTINGS.max_attempts
    assert request.last_error is not None
    assert request.last_error["code"] == 1200


async def test_a_bad_token_pauses_the_page(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    await person(wired, sessions, clock)
    wired.inject_error(190, 463, message="Error validating access token: Session has expired")
    await run_dispatch(resources, clock)
    [request] = await deliveries(sessions)
    assert (request.state, request.reason) == ("failed", "failed.page_paused")
    page = (await client.get(f"/v1/pages/{PAGE_ID}", headers=tenant.headers)).json()
    assert page["paused"] is True
    assert "190" not in (page["paused_reason"] or "") or "PagePaused" in page["paused_reason"]
    async with sessions() as s:
        assert (await s.execute(sa.select(table_of(Page).c.paused_at))).scalar_one() == T0


async def test_meta_saying_the_window_is_closed_reroutes_without_retry(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    await person(wired, sessions, clock)
    wired.inject_error(10, 2018278, message="(#10) This message is sent outside of allowed window.")
    await run_dispatch(resources, clock)
    [request] = await deliveries(sessions)
    assert (request.state, request.reason) == ("skipped", "skipped.no_reachable_channel")
    assert request.attempts == 1
    assert len(wired.requests_to("messages")) == 1
