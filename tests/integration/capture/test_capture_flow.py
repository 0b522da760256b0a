"""Captures that pass the guards: single and double opt-in, the ledger, tags, the `captured`
trigger, the same answer for known and unknown addresses, the cooling period, the m.me link."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import links
from orchestrator.capture import capture as capture_service
from orchestrator.clock import FrozenClock
from orchestrator.models import CampaignRun, ConsentRecord, Delivery, EmailIdentity, table_of
from orchestrator.resources import Resources
from tests.fixtures.api import Tenant
from tests.integration.api.test_contacts_api import PAGE, add_page
from tests.integration.capture.visitor import CONSENT, Visitor, create_form, row_counts


async def ledger(sessions: async_sessionmaker[AsyncSession]) -> list[ConsentRecord]:
    async with sessions() as s:
        return list(
            (await s.execute(sa.select(ConsentRecord).order_by(sa.text("occurred_at, action"))))
            .scalars()
            .all()
        )


async def deliveries(sessions: async_sessionmaker[AsyncSession], kind: str) -> list[Delivery]:
    async with sessions() as s:
        table = table_of(Delivery)
        ids = (await s.execute(sa.select(table.c.id).where(table.c.kind == kind))).scalars()
        return [d for i in ids if (d := await s.get(Delivery, i)) is not None]


async def start_captured_campaign(client: httpx.AsyncClient, tenant: Tenant, form_id: str) -> str:
    response = await client.post(
        "/v1/campaigns",
        headers=tenant.headers,
        json={
            "name": "Chào mừng",
            "page_id": PAGE,
            "purpose": "transactional",
            "audience": {"email_status": []},
            "trigger": {"on": "captured", "form_id": form_id},
            "steps": [
                {
                    "delay": {"after": "0s"},
                    "messenger": {"text": "Chào bạn!"},
                    "email": {"subject": "Chào bạn", "html": "<p>Chào bạn!</p>"},
                    "fallback": "email",
                }
            ],
        },
    )
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["id"]
    launched = await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=tenant.headers)
    assert launched.status_code == 202, launched.text
    return campaign_id


async def runs_of(sessions: async_sessionmaker[AsyncSession], campaign_id: str) -> list[str | None]:
    async with sessions() as s:
        table = table_of(CampaignRun)
        return list(
            (
                await s.execute(
                    sa.select(table.c.contact_id).where(table.c.campaign_id == campaign_id)
                )
            ).scalars()
        )


async def test_single_opt_in_subscribes_tags_records_the_ledger_and_fires_the_trigger(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await add_page(sessions, tenant)
    form = await create_form(client, tenant, double_opt_in=False, page_id=PAGE)
    campaign_id = await start_captured_campaign(client, tenant, form["id"])
    visitor = Visitor(client, clock, form["id"])
    answer = await visitor.submit("  Lan.Nguyen@Example.COM ", name="Lan")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "subscribed"
    assert body["double_opt_in"] is False
    assert body["spin"] is None
    assert answer.headers["access-control-allow-origin"] == "https://shop.aodaihong.vn"
    assert answer.headers["cache-control"] == "no-store"
    [row] = await ledger(sessions)
    assert (row.action, row.source, row.form_id, row.consent_text_version) == (
        "subscribe", "popup", form["id"], CONSENT["version"],
    )  # fmt: skip
    assert row.address == "lan.nguyen@example.com"
    assert row.ip == "127.0.0.1"
    assert row.user_agent == "Mozilla/5.0 (test)"
    contact = (await client.get(f"/v1/contacts/{row.contact_id}", headers=tenant.headers)).json()
    assert contact["email"] == {"address": "lan.nguyen@example.com", "status": "subscribed"}
    assert contact["tags"] == ["tet2027"]
    assert contact["name"] == "Lan"
    assert await runs_of(sessions, campaign_id) == [row.contact_id]
    assert (await deliveries(sessions, "double_opt_in")) == []


async def test_double_opt_in_waits_for_confirmation_and_queues_one_email(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    await add_page(sessions, tenant)
    form = await create_form(client, tenant, page_id=PAGE)
    campaign_id = await start_captured_campaign(client, tenant, form["id"])
    answer = await Visitor(client, clock, form["id"]).submit("hoa@example.com")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "pending_confirmation"
    assert await ledger(sessions) == []
    [email] = await deliveries(sessions, "double_opt_in")
    assert email.state == "pending"
    assert email.content["form_id"] == form["id"]
    async with sessions() as s:
        identity = (await s.execute(sa.select(EmailIdentity))).scalar_one()
    assert identity.status == "unconfirmed"
    assert email.content["email_identity_id"] == identity.id
    contact = (
        await client.get(f"/v1/contacts/{identity.contact_id}", headers=tenant.headers)
    ).json()
    assert contact["tags"] == []  # tags wait for the confirmation too
    assert await runs_of(sessions, campaign_id) == []


async def test_the_answer_is_the_same_for_known_and_unknown_addresses(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    await add_page(sessions, tenant)
    form = await create_form(client, tenant, page_id=PAGE)
    known = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "email": "known@example.com",
            "consent_source": "api",
            "consent_at": clock.now().isoformat(),
        },
    )
    assert known.status_code == 201
    visitor = Visitor(client, clock, form["id"])
    first = await visitor.submit("known@example.com")
    second = await visitor.submit("stranger@example.com")
    assert first.status_code == second.status_code == 200
    assert first.headers.keys() == second.headers.keys()
    a, b = first.json(), second.json()
    url_a, url_b = a.pop("messenger_url"), b.pop("messenger_url")
    assert a == b == {"status": "pending_confirmation", "double_opt_in": True, "spin": None}
    ref_a = parse_qs(urlparse(url_a).query)["ref"][0]
    ref_b = parse_qs(urlparse(url_b).query)["ref"][0]
    assert urlparse(url_a)[:3] == urlparse(url_b)[:3] == ("https", "m.me", "/aodaihong")
    assert len(ref_a) == len(ref_b)
    # Both verify; only the new contact's ref names a real contact (the known one is a decoy, so
    # typing someone's address never lets a stranger's Messenger account bind to their contact).
    read_a = links.read_ref(
        resources.keyring, ref_a, workspace_id=tenant.workspace_id, now=clock.now()
    )
    read_b = links.read_ref(
        resources.keyring, ref_b, workspace_id=tenant.workspace_id, now=clock.now()
    )
    assert read_a.contact_id != known.json()["id"]
    async with sessions() as s:
        stranger = (
            await s.execute(
                sa.select(EmailIdentity.contact_id).where(  # type: ignore[call-overload]
                    EmailIdentity.address == "stranger@example.com"
                )
            )
        ).scalar_one()
    assert read_b.contact_id == stranger
    assert read_a.intent is read_b.intent is links.Intent.INVITE


async def test_the_same_address_twice_inside_the_cooling_period_changes_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(client, tenant)
    other = await create_form(client, tenant, name="Embedded", kind="embedded")
    visitor = Visitor(client, clock, form["id"])
    assert (await visitor.submit("minh@example.com")).status_code == 200
    before = await row_counts(sessions)
    again = await visitor.submit("MINH@example.com")
    elsewhere = await Visitor(client, clock, other["id"]).submit("minh@example.com")
    assert again.status_code == elsewhere.status_code == 200
    after = await row_counts(sessions)
    # Only the two used tokens are new: no second contact, no second confirmation email.
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "capture_token_uses": 2
    }
    assert len(await deliveries(sessions, "double_opt_in")) == 1
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert (stats["captured"], stats["duplicates"]) == (1, 1)
    clock.advance(timedelta(hours=24))
    assert (await visitor.submit("minh@example.com")).status_code == 200
    assert len(await deliveries(sessions, "double_opt_in")) == 2
    assert (await row_counts(sessions))["contacts"] == before["contacts"]


async def test_single_opt_in_repeat_inside_the_cooling_period_records_nothing_new(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(client, tenant, double_opt_in=False)
    visitor = Visitor(client, clock, form["id"])
    await visitor.submit("an@example.com")
    before = await row_counts(sessions)
    assert (await visitor.submit("an@example.com")).status_code == 200
    after = await row_counts(sessions)
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "capture_token_uses": 1
    }


async def test_form_encoded_capture_and_the_client_ip_behind_a_trusted_proxy(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(client, tenant, double_opt_in=False, kind="embedded")
    token = await Visitor(client, clock, form["id"]).token()
    response = await client.post(
        f"/capture/{form['id']}",
        headers={
            "Referer": "https://shop.aodaihong.vn/lien-he?x=1",
            "X-Forwarded-For": "198.51.100.7",
        },
        data={"email": "binh@example.com", "consent": "on", "token": token, "website": ""},
    )
    assert response.status_code == 200, response.text
    [row] = await ledger(sessions)
    assert row.source == "embedded"
    # The socket peer is not a trusted proxy, so the forwarded address is not believed.
    assert row.ip == "127.0.0.1"


async def test_used_tokens_are_forgotten_after_thirty_days(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    form = await create_form(client, tenant)
    await Visitor(client, clock, form["id"]).submit("lan@example.com")
    async with sessions() as s, s.begin():
        assert await capture_service.forget_used_tokens(s, now=clock.now()) == 0
        later = clock.now() + capture_service.USED_TOKENS_KEPT + timedelta(seconds=1)
        assert await capture_service.forget_used_tokens(s, now=later) == 1
    assert (await row_counts(sessions))["capture_token_uses"] == 0
