"""The double opt-in email through a real SMTP server (aiosmtpd): a delivery row first, sent by
the dispatcher, parsed with the stdlib; its button leads to /c/{token}: GET shows a button and
changes nothing, POST confirms (DESIGN sections 4, 9, 10)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlparse

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from orchestrator import dispatch
from orchestrator.clock import FrozenClock
from orchestrator.models import ConsentRecord, Delivery, EmailIdentity, table_of
from orchestrator.resources import Resources
from tests.e2e.test_email_reopen_loop import (  # noqa: F401
    Inbox,
    parsed,
    run_dispatch,
    smtp,
    smtp_server,
)
from tests.fixtures.api import Tenant
from tests.integration.api.test_contacts_api import PAGE, add_page
from tests.integration.capture.test_capture_flow import runs_of, start_captured_campaign
from tests.integration.capture.visitor import CONSENT, Visitor, create_form


async def the_delivery(sessions: async_sessionmaker[AsyncSession]) -> Delivery:
    async with sessions() as s:
        table = table_of(Delivery)
        delivery_id = (
            await s.execute(sa.select(table.c.id).where(table.c.kind == "double_opt_in"))
        ).scalar_one()
        delivery = await s.get(Delivery, delivery_id)
    assert delivery is not None
    return delivery


async def status_of(sessions: async_sessionmaker[AsyncSession], address: str) -> str:
    async with sessions() as s:
        identity = (
            await s.execute(sa.select(EmailIdentity).where(EmailIdentity.address == address))  # type: ignore[arg-type]
        ).scalar_one()
    return identity.status


async def test_confirmation_email_button_confirms_the_subscription(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    await add_page(sessions, tenant)
    form = await create_form(client, tenant, page_id=PAGE, locale="vi")
    campaign_id = await start_captured_campaign(client, tenant, form["id"])
    answer = await Visitor(client, clock, form["id"]).submit("Thu.Ha@Example.com")
    assert answer.json()["status"] == "pending_confirmation"
    assert await run_dispatch(resources, clock, smtp) == 1
    delivery = await the_delivery(sessions)
    assert (delivery.state, delivery.channel, delivery.reason) == (
        "sent", "email", "email.no_messenger",
    )  # fmt: skip

    [(mail_from, rcpt, raw)] = inbox.messages
    assert (mail_from, rcpt) == ("shop@aodaihong.vn", ["thu.ha@example.com"])
    message = parsed(raw)
    assert message["Subject"] == "Xác nhận đăng ký nhận email từ Áo Dài Hồng"
    assert message["Message-ID"] == f"<{delivery.id}@aodaihong.vn>"
    assert delivery.provider_message_id == message["Message-ID"]
    assert message["List-Unsubscribe"].startswith("<https://outreach.test/u/")
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None
    assert text_part is not None
    links = re.findall(r'href="(https://outreach\.test/c/[^"]+)"', html_part.get_content())
    assert links, html_part.get_content()
    confirm_url = links[0]
    assert confirm_url in text_part.get_content()
    path = urlparse(confirm_url).path

    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'action="{path}"' in page.text
    assert "t***@example.com" in page.text
    assert await status_of(sessions, "thu.ha@example.com") == "unconfirmed"  # GET changes nothing
    assert await runs_of(sessions, campaign_id) == []

    clock.advance(timedelta(minutes=5))
    confirmed = await client.post(path, headers={"User-Agent": "Mail client"})
    assert confirmed.status_code == 200
    assert "Đăng ký thành công" in confirmed.text
    assert "https://m.me/aodaihong?ref=" in confirmed.text
    assert await status_of(sessions, "thu.ha@example.com") == "subscribed"
    async with sessions() as s:
        rows = (
            (
                await s.execute(sa.select(ConsentRecord).order_by(ConsentRecord.occurred_at))  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert [(r.action, r.source) for r in rows] == [
        ("subscribe", "popup"),
        ("confirm", "double_opt_in"),
    ]
    subscribe, confirm = rows
    assert subscribe.occurred_at < confirm.occurred_at
    assert (subscribe.form_id, subscribe.consent_text_version) == (form["id"], CONSENT["version"])
    assert (subscribe.ip, subscribe.user_agent) == ("127.0.0.1", "Mozilla/5.0 (test)")
    assert (confirm.form_id, confirm.consent_text_version) == (form["id"], CONSENT["version"])
    assert confirm.user_agent == "Mail client"
    contact = (
        await client.get(f"/v1/contacts/{confirm.contact_id}", headers=tenant.headers)
    ).json()
    assert contact["tags"] == ["tet2027"]
    assert await runs_of(sessions, campaign_id) == [confirm.contact_id]

    again = await client.post(path)
    assert again.status_code == 200
    async with sessions() as s:
        assert (
            await s.execute(sa.select(sa.func.count()).select_from(ConsentRecord))
        ).scalar_one() == 2
    assert await runs_of(sessions, campaign_id) == [confirm.contact_id]
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert (stats["captured"], stats["confirmed"]) == (1, 1)

    broken = await client.get(path[:-3] + "abc")
    assert broken.status_code == 400
    clock.advance(timedelta(days=8))
    expired = await client.post(path)
    assert expired.status_code == 410


async def test_no_confirmation_email_to_a_suppressed_address(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    feedback = await client.post(
        "/v1/email/events",
        headers=tenant.headers,
        json={"events": [{"type": "complaint", "email": "angry@example.com",
                          "occurred_at": clock.now().isoformat()}]},
    )  # fmt: skip
    assert feedback.status_code in (200, 202), feedback.text
    form = await create_form(client, tenant)
    answer = await Visitor(client, clock, form["id"]).submit("angry@example.com")
    assert answer.status_code == 200
    assert answer.json()["status"] == "pending_confirmation"  # the same answer as anyone's
    await run_dispatch(resources, clock, smtp)
    delivery = await the_delivery(sessions)
    assert (delivery.state, delivery.reason) == ("skipped", "skipped.complained")
    assert inbox.messages == []


async def test_the_email_is_not_sent_without_an_email_channel(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    form = await create_form(client, tenant)
    await Visitor(client, clock, form["id"]).submit("lan@example.com")
    await dispatch.dispatch_once(
        resources.sessions, resources.keyring, resources.messenger,
        worker_id="wk_test", clock=clock.now, settings=dispatch.DispatchSettings(),
    )  # fmt: skip
    delivery = await the_delivery(sessions)
    assert (delivery.state, delivery.reason) == ("failed", "failed.channel_misconfigured")
