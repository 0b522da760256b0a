"""The reopen loop: an email button's /r/ link, the signed ref through m.me and the emulator,
identity proof, the held message released on Messenger (DESIGN section 6)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator import links
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Delivery, InteractionEvent, LinkBinding, MessengerIdentity
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply
from tests.integration.webhooks.test_one_off_sends import run_dispatch
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401


async def email_contact(client: httpx.AsyncClient, tenant: Tenant, address: str) -> str:
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={"email": address, "consent_source": "popup", "consent_at": T0.isoformat()},
    )
    assert created.status_code == 201
    return str(created.json()["id"])


async def held_delivery(
    sessions: async_sessionmaker[AsyncSession], workspace_id: str, contact_id: str
) -> str:
    delivery_id = new_id("dl")
    async with sessions() as s, s.begin():
        s.add(
            Delivery(
                id=delivery_id,
                workspace_id=workspace_id,
                kind="human_reply",  # a Messenger message waiting for the window
                contact_id=contact_id,
                page_id=PAGE_ID,
                purpose="human_reply",
                state="held",
                reason="held.until_window",
                due_at=T0,
                content={"text": "Mã giảm giá của bạn: TET2027"},
                created_at=T0,
                updated_at=T0,
            )
        )
    return delivery_id


def click_url(
    resources: Resources, tenant: Tenant, contact_id: str, delivery_id: str, intent: links.Intent
) -> str:
    token = links.make_click_token(
        resources.keyring,
        links.Click(tenant.workspace_id, contact_id, PAGE_ID, intent, delivery_id),
        now=T0,
    )
    return f"/r/{token}"


async def test_click_to_mme_binds_a_new_psid_and_releases_the_held_message(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    contact_id = await email_contact(client, tenant, "lan@example.com")
    delivery_id = await held_delivery(sessions, tenant.workspace_id, contact_id)
    clock.advance(timedelta(hours=1))
    redirect = await client.get(
        click_url(resources, tenant, contact_id, delivery_id, links.Intent.SUPPORT)
    )
    assert redirect.status_code == 302
    target = urlparse(redirect.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "m.me", "/shop")
    ref = parse_qs(target.query)["ref"][0]
    assert len(ref) < 250

    event = await wired.person_clicks_mme_link(PAGE_ID, None, ref)  # a new thread: Get Started
    assert event is not None
    assert event.field == "messaging_postbacks"
    await apply(sessions, clock)
    async with sessions() as s:
        identity = (await s.execute(sa.select(MessengerIdentity))).scalar_one()
        released = await s.get(Delivery, delivery_id)
        binding = (await s.execute(sa.select(LinkBinding))).scalar_one()
        kinds = [e.type for e in (await s.execute(sa.select(InteractionEvent))).scalars()]
    assert identity.contact_id == contact_id
    assert identity.window_opened_at == T0 + timedelta(hours=1)
    assert identity.waiting_for_human_since == T0 + timedelta(hours=1)
    assert binding.psid == identity.psid
    assert released is not None
    assert released.state == "pending"
    assert released.clicked_at == T0 + timedelta(hours=1)
    assert {"email_click", "reopen", "postback"} <= set(kinds)

    await run_dispatch(resources, clock)
    sent = wired.sent_to(PAGE_ID, identity.psid)
    assert [m.metadata for m in sent] == [delivery_id]
    assert sent[0].message is not None
    assert sent[0].message["text"] == "Mã giảm giá của bạn: TET2027"
    waiting = await client.get("/v1/conversations", headers=tenant.headers)
    assert [c["contact_id"] for c in waiting.json()["data"]] == [contact_id]


async def test_a_replayed_or_reused_ref_never_binds_twice(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    contact_id = await email_contact(client, tenant, "minh@example.com")
    delivery_id = await held_delivery(sessions, tenant.workspace_id, contact_id)
    redirect = await client.get(
        click_url(resources, tenant, contact_id, delivery_id, links.Intent.SUBSCRIBE)
    )
    ref = parse_qs(urlparse(redirect.headers["location"]).query)["ref"][0]
    first = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_clicks_mme_link(PAGE_ID, first, ref)  # existing thread: referral
    await wired.redeliver(wired.deliveries[-1])
    await apply(sessions, clock)
    stranger = wired.add_person(PAGE_ID, window_opened_at=T0)
    clock.advance(timedelta(minutes=1))
    await wired.person_clicks_mme_link(PAGE_ID, stranger, ref)  # a forwarded email
    await apply(sessions, clock)
    async with sessions() as s:
        owners = {
            i.psid: i.contact_id for i in (await s.execute(sa.select(MessengerIdentity))).scalars()
        }
        bindings = (await s.execute(sa.select(LinkBinding))).scalars().all()
        candidates = (
            (
                await s.execute(
                    sa.select(InteractionEvent).where(InteractionEvent.type == "candidate_link")
                )  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        requests = (
            (
                await s.execute(sa.select(Delivery).where(Delivery.kind == "email_request"))  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert owners[first] == contact_id
    assert owners[stranger] != contact_id
    assert len(bindings) == 1
    assert [c.contact_id for c in candidates] == [owners[stranger]]
    assert [r.contact_id for r in requests] == [owners[stranger]]


async def test_a_psid_with_another_email_is_asked_to_confirm_never_merged(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    contact_id = await email_contact(client, tenant, "hoa@example.com")
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    other = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={"email": "other@example.com", "messenger": {"page_id": PAGE_ID, "psid": psid}},
    )
    assert other.status_code == 201
    redirect = await client.get(
        click_url(resources, tenant, contact_id, "dl_none", links.Intent.SUPPORT)
    )
    ref = parse_qs(urlparse(redirect.headers["location"]).query)["ref"][0]
    await wired.person_clicks_mme_link(PAGE_ID, psid, ref)
    await apply(sessions, clock)
    async with sessions() as s:
        identity = (await s.execute(sa.select(MessengerIdentity))).scalar_one()
    assert identity.contact_id == other.json()["id"]
    # The person confirms by tapping the address Meta has for them: it matches the link's.
    await wired.person_shares_email(PAGE_ID, psid, "hoa@example.com")
    await apply(sessions, clock)
    async with sessions() as s:
        identity = (await s.execute(sa.select(MessengerIdentity))).scalar_one()
    assert identity.contact_id == min(contact_id, other.json()["id"])


async def test_bad_links_get_a_page_and_record_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    resources: Resources,
    clock: FrozenClock,
    wired: GraphEmulator,  # noqa: F811
) -> None:
    contact_id = await email_contact(client, tenant, "x@example.com")
    good = click_url(resources, tenant, contact_id, "dl_1", links.Intent.SUPPORT)
    token = good.removeprefix("/r/")
    foreign = links.make_click_token(
        resources.keyring,
        links.Click(other_tenant.workspace_id, contact_id, PAGE_ID, links.Intent.SUPPORT),
        now=T0,
    )
    forged = token.replace(tenant.workspace_id, other_tenant.workspace_id)
    for bad in (
        token[:-5],
        token[:20],
        "nonsense",
        forged,
        foreign.split("~")[0] + "~" + token.split("~")[1],
    ):
        response = await client.get(f"/r/{bad}")
        assert response.status_code == 400, bad
        assert "text/html" in response.headers["content-type"]
    clock.advance(timedelta(days=91))
    expired = await client.get(good)
    assert expired.status_code == 410
    async with sessions() as s:
        assert (await s.execute(sa.select(InteractionEvent))).scalars().all() == []
