"""The whole reopen loop with a real SMTP server (aiosmtpd) and the Graph API emulator:
a fallback email with the m.me buttons, parsed with the stdlib; its button through /r/ to m.me;
the signed ref back through a Get Started postback; the PSID bound; the held step released and
sent on Messenger; then one-click unsubscribe, checked at send time (DESIGN section 6)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from channels.sandbox import GraphEmulator
from orchestrator import dispatch
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Delivery, MessengerIdentity
from orchestrator.resources import Resources
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import apply
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401

STEP_EMAIL = {
    "subject": "Ưu đãi tháng 12 cho {{ contact.name | default('bạn') }}",
    "html": "<p>Chào {{ contact.name | default('bạn') }}, áo dài giảm 30% & miễn phí giao hàng!</p>",
    "text": "Chào {{ contact.name | default('bạn') }}, áo dài giảm 30% & miễn phí giao hàng!",
}


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.messages.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def smtp(smtp_server: tuple[Inbox, int]) -> AsyncIterator[SmtpSender]:
    sender = SmtpSender("127.0.0.1", smtp_server[1], tls="none", pool_size=1)
    yield sender
    await sender.close()


SETTINGS = dispatch.DispatchSettings(
    random=lambda: 0.5,
    email=dispatch.EmailSettings(
        public_url="https://outreach.test", default_from="Áo Dài Hồng <shop@aodaihong.vn>"
    ),
)


async def run_dispatch(
    resources: Resources,
    clock: FrozenClock,
    smtp: SmtpSender,
    settings: dispatch.DispatchSettings = SETTINGS,
) -> int:
    return await dispatch.dispatch_once(
        resources.sessions,
        resources.keyring,
        resources.messenger,
        worker_id="wk_e2e",
        clock=clock.now,
        settings=settings,
        email=smtp,
    )


async def step(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    contact_id: str,
    *,
    fallback: str,
    text: str,
    email: dict[str, object] | None,
) -> str:
    delivery_id = new_id("dl")
    async with sessions() as s, s.begin():
        s.add(
            Delivery(
                id=delivery_id,
                workspace_id=tenant.workspace_id,
                kind="step",
                contact_id=contact_id,
                page_id=PAGE_ID,
                purpose="promotional",
                topic="sale",
                state="pending",
                due_at=T0,
                content={
                    "purpose": "promotional",
                    "fallback": fallback,
                    "messenger": {"text": text},
                    "email": email,
                    "max_wait_seconds": 3 * 86400,
                },
                created_at=T0,
                updated_at=T0,
            )
        )
    return delivery_id


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_fallback_email_button_reopens_messenger_and_releases_the_held_step(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp_server
    contact = (
        await client.post(
            "/v1/contacts",
            headers=tenant.headers,
            json={
                "email": "lan@example.com",
                "name": "Chị Lan",
                "consent_source": "popup",
                "consent_at": T0.isoformat(),
            },
        )
    ).json()
    first = await step(
        sessions,
        tenant,
        contact["id"],
        fallback="email",
        text="Chào {{ contact.name }}!",
        email=STEP_EMAIL,
    )
    assert await run_dispatch(resources, clock, smtp) == 1
    second = await step(
        sessions, tenant, contact["id"], fallback="wait_for_window",
        text="{{ contact.name }} ơi, mã của bạn: TET2027", email=None,
    )  # fmt: skip
    await run_dispatch(resources, clock, smtp)
    async with sessions() as s:
        sent_email = await s.get(Delivery, first)
        held = await s.get(Delivery, second)
    assert sent_email is not None
    assert held is not None
    assert (sent_email.state, sent_email.channel, sent_email.reason) == (
        "sent",
        "email",
        "email.no_messenger",
    )
    assert (held.state, held.reason) == ("held", "held.until_window")

    [(mail_from, rcpt, raw)] = inbox.messages
    assert (mail_from, rcpt) == ("shop@aodaihong.vn", ["lan@example.com"])
    message = parsed(raw)
    assert message["Subject"] == "Ưu đãi tháng 12 cho Chị Lan"
    assert message["From"].addresses[0].display_name == "Áo Dài Hồng"
    assert message["Message-ID"] == f"<{first}@aodaihong.vn>"
    assert sent_email.provider_message_id == message["Message-ID"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith("https://outreach.test/u/")
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None
    assert text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    assert "áo dài giảm 30% &amp; miễn phí" in html
    assert "áo dài giảm 30% & miễn phí" in text
    assert "&amp;" not in text
    buttons = re.findall(r'href="(https://outreach\.test/r/[^"]+)"', html)
    assert len(set(buttons)) == 2
    assert "Nhận hỗ trợ" in html

    support = buttons[0].removeprefix("https://outreach.test")
    redirect = await client.get(support)
    assert redirect.status_code == 302
    ref = parse_qs(urlparse(redirect.headers["location"]).query)["ref"][0]
    event = await wired.person_clicks_mme_link(PAGE_ID, None, ref)  # a new thread: Get Started
    assert event is not None
    await apply(sessions, clock)
    async with sessions() as s:
        identity = (await s.execute(sa.select(MessengerIdentity))).scalar_one()
        released = await s.get(Delivery, second)
        clicked = await s.get(Delivery, first)
    assert identity.contact_id == contact["id"]
    assert released is not None
    assert released.state == "pending"
    assert clicked is not None
    assert clicked.clicked_at is not None

    for _ in range(3):  # the email request for the new PSID may go first: one per contact a round
        await run_dispatch(resources, clock, smtp)
    async with sessions() as s:
        done = await s.get(Delivery, second)
    assert done is not None
    assert (done.state, done.channel, done.reason) == ("sent", "messenger", "messenger.window")
    texts = [(m.message or {}).get("text") for m in wired.sent_to(PAGE_ID, identity.psid)]
    assert "Chị Lan ơi, mã của bạn: TET2027" in texts
    assert len(inbox.messages) == 1

    # RFC 8058 one-click, then a later email step is refused at send time.
    assert (
        await client.post(unsubscribe_url.removeprefix("https://outreach.test"))
    ).status_code == 200
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(MessengerIdentity.__table__).values(window_opened_at=None)  # type: ignore[attr-defined]
        )
    third = await step(
        sessions, tenant, contact["id"], fallback="email", text="x", email=STEP_EMAIL
    )
    await run_dispatch(resources, clock, smtp)
    async with sessions() as s:
        refused = await s.get(Delivery, third)
    assert refused is not None
    assert (refused.state, refused.reason) == ("skipped", "skipped.unsubscribed")
    assert len(inbox.messages) == 1


async def test_a_rejected_recipient_marks_the_address_bounced(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp_server

    async def refuse(
        server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"

    inbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    contact = (
        await client.post(
            "/v1/contacts",
            headers=tenant.headers,
            json={
                "email": "nobody@example.com",
                "consent_source": "popup",
                "consent_at": T0.isoformat(),
            },
        )
    ).json()
    delivery_id = await step(
        sessions, tenant, contact["id"], fallback="email", text="x", email=STEP_EMAIL
    )
    await run_dispatch(resources, clock, smtp)
    async with sessions() as s:
        delivery = await s.get(Delivery, delivery_id)
    assert delivery is not None
    assert (delivery.state, delivery.reason) == ("skipped", "skipped.bounced")
    after = (await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)).json()
    assert after["email"]["status"] == "bounced"
    assert inbox.messages == []


async def email_step_for(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    address: str,
) -> str:
    contact = (
        await client.post(
            "/v1/contacts",
            headers=tenant.headers,
            json={"email": address, "consent_source": "popup", "consent_at": T0.isoformat()},
        )
    ).json()
    return await step(sessions, tenant, contact["id"], fallback="email", text="x", email=STEP_EMAIL)


async def state_of(sessions: async_sessionmaker[AsyncSession], delivery_id: str) -> Delivery:
    async with sessions() as s:
        delivery = await s.get(Delivery, delivery_id)
    assert delivery is not None
    return delivery


async def test_relay_down_for_two_retry_intervals_then_sent_once_with_the_same_id(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    sender = SmtpSender("127.0.0.1", port, tls="none", pool_size=1, timeout=2)
    delivery_id = await email_step_for(client, sessions, tenant, "hoa@example.com")
    try:
        for interval in (1, 2):  # nothing listens on the port: connection refused
            await run_dispatch(resources, clock, sender)
            delivery = await state_of(sessions, delivery_id)
            assert (delivery.state, delivery.attempts) == ("pending", interval)
            assert delivery.last_error is not None
            assert delivery.next_attempt_at is not None
            clock.set(delivery.next_attempt_at)
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await run_dispatch(resources, clock, sender)
        finally:
            controller.stop()
    finally:
        await sender.close()
    delivery = await state_of(sessions, delivery_id)
    assert (delivery.state, delivery.channel, delivery.attempts) == ("sent", "email", 3)
    [(_, _, raw)] = inbox.messages
    assert parsed(raw)["Message-ID"] == f"<{delivery_id}@aodaihong.vn>"


async def test_a_temporary_refusal_is_retried_with_the_same_message_id(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp_server
    answers = ["451 4.3.0 Try again later"]

    async def data(server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if answers:
            return answers.pop()
        return await Inbox.handle_DATA(inbox, server, session, envelope)

    inbox.handle_DATA = data  # type: ignore[method-assign]
    delivery_id = await email_step_for(client, sessions, tenant, "minh@example.com")
    await run_dispatch(resources, clock, smtp)
    first = await state_of(sessions, delivery_id)
    assert first.state == "pending"
    assert first.last_error is not None
    assert first.next_attempt_at is not None
    clock.set(first.next_attempt_at)
    await run_dispatch(resources, clock, smtp)
    assert (await state_of(sessions, delivery_id)).state == "sent"
    [(_, _, raw)] = inbox.messages
    assert parsed(raw)["Message-ID"] == f"<{delivery_id}@aodaihong.vn>"


async def test_a_relay_refusing_our_credentials_pauses_email_and_says_so(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,
    smtp_server: tuple[Inbox, int],
) -> None:
    from orchestrator import channel_pauses

    inbox, _ = smtp_server

    refusing = [True]

    async def refuse(
        server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if refusing:
            return "550 5.7.1 Relaying denied"
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    inbox.handle_MAIL = refuse  # type: ignore[attr-defined]
    first = await email_step_for(client, sessions, tenant, "a@example.com")
    await run_dispatch(resources, clock, smtp)
    failed = await state_of(sessions, first)
    assert (failed.state, failed.reason) == ("failed", "failed.channel_misconfigured")
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["email"].startswith("paused: ChannelMisconfigured")
    contact_b = await email_step_for(client, sessions, tenant, "b@example.com")
    await run_dispatch(resources, clock, smtp)
    waiting = await state_of(sessions, contact_b)
    assert (waiting.state, waiting.attempts) == ("pending", 0)
    after = (await client.get("/v1/contacts", headers=tenant.headers)).json()["data"]
    assert {c["email"]["status"] for c in after} == {"subscribed"}  # never a bounce
    async with sessions() as s, s.begin():
        assert await channel_pauses.resume(s, channel=channel_pauses.EMAIL)
    refusing.clear()
    assert waiting.next_attempt_at is not None
    clock.set(waiting.next_attempt_at)
    await run_dispatch(resources, clock, smtp)
    final = await state_of(sessions, contact_b)
    assert final.state == "sent", (final.reason, final.last_error)
