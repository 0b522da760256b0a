"""Applying the inbox: window, identities, takeover, tokens, receipts, ordering and replays."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator import inbound
from orchestrator.clock import FrozenClock
from orchestrator.crypto import KeyRing
from orchestrator.models import (
    Delivery,
    EmailIdentity,
    InteractionEvent,
    MessengerIdentity,
    OptinToken,
    WebhookInbox,
    table_of,
)
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import TEST_SECRET
from tests.integration.webhooks.test_webhook_receive import APP_ID, PAGE_ID, wired  # noqa: F401

RING = KeyRing(TEST_SECRET)


async def apply(sessions: async_sessionmaker[AsyncSession], clock: FrozenClock) -> int:
    async with sessions() as s, s.begin():
        return await inbound.apply_pending(s, RING, now=clock.now())


async def identity_of(sessions: async_sessionmaker[AsyncSession], psid: str) -> MessengerIdentity:
    async with sessions() as s:
        return (
            await s.execute(sa.select(MessengerIdentity).where(MessengerIdentity.psid == psid))  # type: ignore[arg-type]
        ).scalar_one()


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as s:
        return list((await s.execute(sa.select(table_of(WebhookInbox).c.status))).scalars())


async def test_a_new_psid_gets_a_contact_an_open_window_and_an_email_request(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "Xin chào")
    assert await apply(sessions, clock) == 1
    identity = await identity_of(sessions, psid)
    assert identity.window_opened_at == T0
    assert identity.last_user_message_at == T0
    contact = (
        await client.get(f"/v1/contacts/{identity.contact_id}", headers=tenant.headers)
    ).json()
    assert contact["messenger"][0]["psid"] == psid
    async with sessions() as s:
        request = (await s.execute(sa.select(Delivery))).scalar_one()
        events = (await s.execute(sa.select(InteractionEvent))).scalars().all()
    assert request.kind == "email_request"
    assert request.content["quick_replies"] == [{"content_type": "user_email"}]
    assert request.contact_id == identity.contact_id
    assert [(e.type, e.data["text"]) for e in events] == [("message", "Xin chào")]
    assert await statuses(sessions) == ["applied"]
    clock.advance(timedelta(minutes=5))
    await wired.person_writes(PAGE_ID, psid, "còn hàng không?")
    await apply(sessions, clock)
    async with sessions() as s:
        assert (
            await s.execute(sa.select(sa.func.count()).select_from(table_of(Delivery)))
        ).scalar_one() == 1
    assert (await identity_of(sessions, psid)).window_opened_at == T0 + timedelta(minutes=5)


async def test_out_of_order_and_replayed_events_only_move_forward(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    psid = wired.add_person(PAGE_ID)
    newer = await wired.person_writes(PAGE_ID, psid, "newer", at=T0 + timedelta(hours=2))
    await wired.person_writes(PAGE_ID, psid, "older", at=T0 + timedelta(hours=1))
    await wired.redeliver(wired.deliveries[0])
    assert newer is not None
    await apply(sessions, clock)
    identity = await identity_of(sessions, psid)
    assert identity.window_opened_at == T0 + timedelta(hours=2)
    assert identity.last_user_message_at == T0 + timedelta(hours=2)
    assert sorted(await statuses(sessions)) == ["applied", "applied"]
    assert await apply(sessions, clock) == 0


async def test_echoes_never_move_the_window_and_a_page_inbox_reply_is_a_takeover(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "hello", at=T0)
    clock.advance(timedelta(hours=1))
    await wired.page_inbox_reply(PAGE_ID, psid, "Chào bạn, mình là Hoa ở cửa hàng")
    await apply(sessions, clock)
    identity = await identity_of(sessions, psid)
    assert identity.window_opened_at == T0
    assert identity.takeover_at == T0 + timedelta(hours=1)


async def test_reads_and_deliveries_stamp_sent_deliveries(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "hi")
    await apply(sessions, clock)
    identity = await identity_of(sessions, psid)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(table_of(Delivery)).values(
                state="sent", channel="messenger", sent_at=T0, provider_message_id="m_sent_1"
            )
        )
    clock.advance(timedelta(minutes=1))
    await wired.message_delivered(PAGE_ID, psid, mids=["m_sent_1"])
    clock.advance(timedelta(minutes=1))
    await wired.person_reads(PAGE_ID, psid, watermark=T0 + timedelta(seconds=30))
    await apply(sessions, clock)
    async with sessions() as s:
        delivery = (await s.execute(sa.select(Delivery))).scalar_one()
    assert delivery.delivered_at == T0 + timedelta(minutes=1)
    assert delivery.read_at == T0 + timedelta(minutes=2)
    assert (await identity_of(sessions, psid)).window_opened_at == identity.window_opened_at


async def test_one_time_token_is_stored_encrypted(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_accepts_one_time_notification(
        PAGE_ID, psid, "back-in-stock", token="OTN-SECRET-TOKEN-1"
    )
    await apply(sessions, clock)
    async with sessions() as s:
        token = (await s.execute(sa.select(OptinToken))).scalar_one()
    assert token.kind == "one_time"
    assert token.topic == "back-in-stock"
    assert "OTN-SECRET-TOKEN-1" not in token.token_enc
    assert (
        RING.decrypt(token.token_enc, context=f"optin_token:{token.messenger_identity_id}")
        == "OTN-SECRET-TOKEN-1"
    )
    assert token.expires_at == T0 + timedelta(days=365)
    assert (await identity_of(sessions, psid)).window_opened_at is None  # opt-ins never open it


@pytest.mark.parametrize("spelling", ["STOP NOTIFICATIONS", "STOP_NOTIFICATIONS"])
async def test_stop_and_resume_in_either_spelling_and_an_old_stop_never_wins(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    spelling: str,
) -> None:
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_opts_in_to_notifications(PAGE_ID, psid, "sale", token="RN-TOKEN-1")
    await apply(sessions, clock)
    resume_spelling = spelling.replace("STOP", "RESUME")
    stop = await wired.person_stops_notifications(
        PAGE_ID, "RN-TOKEN-1", spelling=spelling, at=T0 + timedelta(hours=1), post=False
    )
    resume = await wired.person_resumes_notifications(
        PAGE_ID, "RN-TOKEN-1", spelling=resume_spelling, at=T0 + timedelta(hours=2), post=False
    )
    await wired.post_each([resume])
    await apply(sessions, clock)
    await wired.post_each([stop])  # the older STOP arrives late
    await apply(sessions, clock)
    async with sessions() as s:
        token = (await s.execute(sa.select(OptinToken))).scalar_one()
    assert token.status == "active"
    assert token.status_changed_at == T0 + timedelta(hours=2)
    later_stop = await wired.person_stops_notifications(
        PAGE_ID, "RN-TOKEN-1", spelling=spelling, at=T0 + timedelta(hours=3), post=False
    )
    await wired.post_each([later_stop])
    await apply(sessions, clock)
    async with sessions() as s:
        token = (await s.execute(sa.select(OptinToken))).scalar_one()
    assert token.status == "stopped"


async def test_user_email_quick_reply_attaches_the_address_with_consent(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_shares_email(PAGE_ID, psid, "Hoa.Tran@Example.com")
    await apply(sessions, clock)
    identity = await identity_of(sessions, psid)
    contact = (
        await client.get(f"/v1/contacts/{identity.contact_id}", headers=tenant.headers)
    ).json()
    assert contact["email"] == {"address": "hoa.tran@example.com", "status": "subscribed"}


async def test_user_email_quick_reply_joins_an_existing_email_contact(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    known = (
        await client.post(
            "/v1/contacts",
            headers=tenant.headers,
            json={"email": "lan@example.com", "tags": ["vip"]},
        )
    ).json()
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_writes(PAGE_ID, psid, "hi")
    await apply(sessions, clock)
    await wired.person_shares_email(PAGE_ID, psid, "lan@example.com")
    await apply(sessions, clock)
    identity = await identity_of(sessions, psid)
    assert identity.contact_id == min(known["id"], identity.contact_id)
    contact = (
        await client.get(f"/v1/contacts/{identity.contact_id}", headers=tenant.headers)
    ).json()
    assert contact["tags"] == ["vip"]
    assert contact["email"]["address"] == "lan@example.com"
    assert [m["psid"] for m in contact["messenger"]] == [psid]


async def test_comments_are_recorded_for_a_private_reply(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await wired.person_comments(PAGE_ID, "Giá bao nhiêu vậy shop?", from_name="Minh")
    await apply(sessions, clock)
    async with sessions() as s:
        event = (await s.execute(sa.select(InteractionEvent))).scalar_one()
    assert event.type == "comment"
    assert event.data["message"] == "Giá bao nhiêu vậy shop?"
    assert event.data["private_reply_until"] == (T0 + timedelta(days=7)).isoformat()
    assert await statuses(sessions) == ["applied"]


async def test_unknown_types_are_acknowledged_and_ignored(
    client: httpx.AsyncClient,
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    app: FastAPI,
) -> None:
    import json

    from channels.messenger.webhooks import sign

    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": "77"},
                            "recipient": {"id": PAGE_ID},
                            "timestamp": 1763629200000,
                            "new_thing": {},
                        }
                    ],
                }
            ],
        }
    ).encode()
    response = await client.post(
        f"/webhooks/messenger/{APP_ID}",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, "the-app-secret-for-webhooks")},
    )
    assert response.status_code == 200
    await apply(sessions, clock)
    assert await statuses(sessions) == ["ignored"]
    async with sessions() as s:
        assert (
            await s.execute(sa.select(sa.func.count()).select_from(table_of(EmailIdentity)))
        ).scalar_one() == 0
