"""A Page comment as a capture source: one private reply (a delivery, addressed to the comment)
inviting the person to Messenger; its echo joins the commenter to their PSID; the address they
tap in the `user_email` quick reply is captured with source `comment` (reference section 8)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator.clock import FrozenClock
from orchestrator.models import CommentReply, ConsentRecord, Delivery, table_of
from orchestrator.resources import Resources
from tests.fixtures.api import Tenant
from tests.integration.webhooks.test_inbound_apply import apply, identity_of
from tests.integration.webhooks.test_one_off_sends import run_dispatch
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401


async def private_replies(sessions: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with sessions() as s:
        table = table_of(Delivery)
        ids = (
            await s.execute(
                sa.select(table.c.id)
                .where(table.c.kind == "private_reply")
                .order_by(table.c.created_at)
            )
        ).scalars()
        return [d for i in list(ids) if (d := await s.get(Delivery, i)) is not None]


async def test_a_comment_gets_one_private_reply_and_the_tapped_address_is_captured(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    psid = wired.new_psid()
    comment = await wired.person_comments(
        PAGE_ID, "Áo này còn size M không shop?", psid=psid, from_id="778899", from_name="Minh Anh"
    )
    await apply(sessions, clock)
    [reply] = await private_replies(sessions)
    assert reply.state == "pending"
    assert reply.page_id == PAGE_ID
    comment_id = comment.item["value"]["comment_id"]
    assert reply.content["comment_id"] == comment_id

    await wired.post_each([comment])  # Meta delivers at least once
    await apply(sessions, clock)
    assert len(await private_replies(sessions)) == 1

    assert await run_dispatch(resources, clock) == 1
    [reply] = await private_replies(sessions)
    assert (reply.state, reply.channel, reply.reason) == ("sent", "messenger", "messenger.window")
    [request] = wired.requests_to("messages")
    assert request.body["recipient"] == {"comment_id": comment_id}
    assert "messaging_type" not in request.body
    assert request.body["message"]["quick_replies"] == [{"content_type": "user_email"}]
    assert request.body["message"]["metadata"] == reply.id

    await apply(sessions, clock)  # the echo names the commenter's PSID
    identity = await identity_of(sessions, psid)
    assert identity.contact_id == reply.contact_id

    clock.advance(timedelta(minutes=2))
    await wired.person_shares_email(PAGE_ID, psid, "Minh.Anh@Example.com")
    await apply(sessions, clock)
    contact = (await client.get(f"/v1/contacts/{reply.contact_id}", headers=tenant.headers)).json()
    assert contact["name"] == "Minh Anh"
    assert contact["email"] == {"address": "minh.anh@example.com", "status": "subscribed"}
    assert [m["psid"] for m in contact["messenger"]] == [psid]
    async with sessions() as s:
        [row] = (await s.execute(sa.select(ConsentRecord))).scalars().all()
    assert (row.action, row.source, row.contact_id) == ("subscribe", "comment", reply.contact_id)

    # A later comment from someone whose address we know gets no second invitation.
    clock.advance(timedelta(days=8))
    await wired.person_comments(PAGE_ID, "Cảm ơn shop!", psid=psid, from_id="778899")
    await apply(sessions, clock)
    assert len(await private_replies(sessions)) == 1


async def test_one_invitation_per_commenter_per_week_and_none_for_the_page_itself(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await wired.person_comments(PAGE_ID, "Giá?", from_id="5551")
    await wired.person_comments(PAGE_ID, "Giá bao nhiêu ạ?", from_id="5551")
    await wired.person_comments(PAGE_ID, "Shop trả lời nè", from_id=PAGE_ID)
    await apply(sessions, clock)
    assert len(await private_replies(sessions)) == 1
    clock.advance(timedelta(days=7, minutes=1))
    await wired.person_comments(PAGE_ID, "Còn hàng không?", from_id="5551")
    await apply(sessions, clock)
    replies = await private_replies(sessions)
    assert len(replies) == 2
    assert replies[0].contact_id == replies[1].contact_id  # the same person, one contact
    async with sessions() as s:
        assert len((await s.execute(sa.select(CommentReply))).scalars().all()) == 2


async def test_a_comment_older_than_seven_days_gets_no_reply(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await wired.person_comments(PAGE_ID, "Giá?", from_id="6661", at=clock.now() - timedelta(days=8))
    await apply(sessions, clock)
    assert await private_replies(sessions) == []
