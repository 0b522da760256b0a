"""Window-opening events applied from the inbox: held steps are released, window-relative steps are
re-planned (inside the campaign's send window), `first_message` triggers fire; expiring opt-in
tokens lose their value (DESIGN sections 6-8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.sandbox import GraphEmulator
from orchestrator import sweeps
from orchestrator.campaigns.spec import validate_campaign
from orchestrator.campaigns.steps import FALLBACK_NOW
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import Campaign, CampaignRun, Delivery, OptinToken, table_of
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_inbound_apply import RING, apply, identity_of
from tests.integration.webhooks.test_webhook_receive import PAGE_ID, wired  # noqa: F401

HELD = "held.until_window"


def step(delay: dict[str, str], fallback: str = "skip", **extra: Any) -> dict[str, Any]:
    return {"delay": delay, "messenger": {"text": "Chào bạn!"}, "fallback": fallback, **extra}


def body(*steps: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "Giỏ hàng",
        "page_id": PAGE_ID,
        "purpose": "promotional",
        "topic": "sale",
        "audience": {"email_status": []},
        "steps": list(steps),
    }
    spec.update(overrides)
    return spec


async def running_campaign(
    sessions: async_sessionmaker[AsyncSession], workspace_id: str, request: dict[str, Any]
) -> tuple[str, str]:
    """A running campaign and one run of it; returns (campaign id, run id)."""
    spec = validate_campaign(request)
    campaign = Campaign(
        id=new_id("cp"),
        workspace_id=workspace_id,
        name=spec.name,
        page_id=spec.page_id,
        purpose=spec.purpose,
        topic=spec.topic,
        spec=spec.model_dump(mode="json"),
        status="running",
        trigger_on=spec.trigger.on if spec.trigger else None,
        trigger_key=_trigger_key(request.get("trigger")),
        launched_at=T0,
        created_at=T0,
        updated_at=T0,
    )
    run = CampaignRun(
        id=new_id("run"),
        workspace_id=workspace_id,
        campaign_id=campaign.id,
        kind="launch",
        occurrence="launch",
        status="running",
        started_at=T0,
        created_at=T0,
    )
    async with sessions() as s, s.begin():
        s.add(campaign)
        await s.flush()
        s.add(run)
    return campaign.id, run.id


def _trigger_key(trigger: dict[str, str] | None) -> str | None:
    if trigger is None:
        return None
    return trigger.get("page_id") or trigger.get("tag") or trigger.get("form_id")


async def add_step(
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: str,
    ids: tuple[str, str],
    contact_id: str,
    index: int,
    *,
    state: str,
    due_at: datetime,
    **values: Any,
) -> str:
    delivery = Delivery(
        id=new_id("dl"),
        workspace_id=workspace_id,
        kind="step",
        campaign_id=ids[0],
        campaign_run_id=ids[1],
        step_index=index,
        contact_id=contact_id,
        page_id=PAGE_ID,
        purpose="promotional",
        topic="sale",
        state=state,
        due_at=due_at,
        created_at=T0,
        updated_at=T0,
        **values,
    )
    async with sessions() as s, s.begin():
        s.add(delivery)
    return delivery.id


async def load(sessions: async_sessionmaker[AsyncSession], delivery_id: str) -> Delivery:
    async with sessions() as s:
        found = await s.get(Delivery, delivery_id)
    assert found is not None
    return found


async def person_contact(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> tuple[str, str]:
    """A person who wrote at T0: (psid, contact id)."""
    psid = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, psid, "Xin chào", at=T0)
    await apply(sessions, clock)
    return psid, (await identity_of(sessions, psid)).contact_id


async def test_a_message_releases_held_steps_and_replans_window_relative_ones(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    ws = tenant.workspace_id
    psid, contact_id = await person_contact(wired, sessions, clock)
    ids = await running_campaign(
        sessions,
        ws,
        body(
            step({"after": "0s"}, "wait_for_window", max_wait="3d"),
            step({"before_window_closes": "1h"}),
            step({"after": "1d"}),
        ),
    )
    held = await add_step(
        sessions,
        ws,
        ids,
        contact_id,
        0,
        state="held",
        reason=HELD,
        due_at=T0,
        held_until=T0 + timedelta(days=3),
        content={FALLBACK_NOW: "no_window"},
    )
    closing = await add_step(
        sessions, ws, ids, contact_id, 1, state="pending", due_at=T0 + timedelta(hours=23)
    )
    fixed = await add_step(
        sessions, ws, ids, contact_id, 2, state="pending", due_at=T0 + timedelta(days=1)
    )
    someone_else = await add_step(
        sessions, ws, ids, "ct_someone_else", 0, state="held", reason=HELD, due_at=T0
    )

    later = clock.advance(timedelta(hours=5))
    await wired.person_writes(PAGE_ID, psid, "Còn hàng không shop?")
    await apply(sessions, clock)

    released = await load(sessions, held)
    assert (released.state, released.due_at) == ("pending", later)
    # The planner's "no window" mark is stale now: with it the dispatcher would hold it again.
    assert released.content == {}
    assert released.held_until == T0 + timedelta(days=3)
    replanned = await load(sessions, closing)
    assert (replanned.state, replanned.due_at) == ("pending", later + timedelta(hours=23))
    assert replanned.updated_at == later
    assert (await load(sessions, fixed)).due_at == T0 + timedelta(days=1)
    assert (await load(sessions, someone_else)).state == "held"

    # A reaction at the same instant, applied later, finds the plan already standing.
    clock.advance(timedelta(minutes=30))
    await wired.person_reacts(PAGE_ID, psid, "m_any", at=later)
    await apply(sessions, clock)
    unchanged = await load(sessions, closing)
    assert (unchanged.due_at, unchanged.updated_at) == (later + timedelta(hours=23), later)


async def test_replanning_fits_the_send_window_or_marks_the_fallback(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    ws = tenant.workspace_id
    psid, contact_id = await person_contact(wired, sessions, clock)
    evening = await running_campaign(
        sessions,
        ws,
        body(
            step({"before_window_closes": "1h"}),
            send_window={"start": "08:00", "end": "21:00"},
        ),
    )
    morning = await running_campaign(
        sessions,
        ws,
        body(
            step({"before_window_closes": "23h"}),
            send_window={"start": "08:00", "end": "09:00"},
        ),
    )
    deferred = await add_step(
        sessions,
        ws,
        evening,
        contact_id,
        0,
        state="deferred",
        reason="deferred.send_window",
        due_at=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
    )
    no_fit = await add_step(sessions, ws, morning, contact_id, 0, state="pending", due_at=T0)

    # 16:00 UTC is 23:00 in Asia/Ho_Chi_Minh, the zone of a contact without one.
    clock.set(datetime(2026, 11, 20, 16, 0, tzinfo=UTC))
    await wired.person_writes(PAGE_ID, psid, "Tối rồi vẫn hỏi")
    await apply(sessions, clock)

    # The window ends at 23:00 local tomorrow; minus 1h is 22:00, after the send window: the
    # last allowed minute before it is 20:59 local, 13:59 UTC.
    fitted = await load(sessions, deferred)
    assert (fitted.state, fitted.due_at) == ("pending", datetime(2026, 11, 21, 13, 59, tzinfo=UTC))
    assert FALLBACK_NOW not in fitted.content
    # 23h before the window ends is 00:00 local; the send window (08-09) last opened before
    # now: the Messenger window cannot be used inside it, so the fallback applies.
    marked = await load(sessions, no_fit)
    assert marked.state == "pending"
    assert marked.due_at == datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert marked.content == {FALLBACK_NOW: "send_window"}


async def test_an_event_applied_after_its_window_closed_changes_nothing(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    ws = tenant.workspace_id
    psid, contact_id = await person_contact(wired, sessions, clock)
    ids = await running_campaign(
        sessions,
        ws,
        body(step({"after": "0s"}, "wait_for_window"), step({"before_window_closes": "1h"})),
    )
    held = await add_step(sessions, ws, ids, contact_id, 0, state="held", reason=HELD, due_at=T0)
    closing = await add_step(
        sessions, ws, ids, contact_id, 1, state="pending", due_at=T0 + timedelta(hours=23)
    )
    clock.advance(timedelta(hours=30))
    await wired.person_writes(PAGE_ID, psid, "trễ", at=T0 + timedelta(hours=1))
    await apply(sessions, clock)
    assert (await identity_of(sessions, psid)).window_opened_at == T0 + timedelta(hours=1)
    assert (await load(sessions, held)).state == "held"
    assert (await load(sessions, closing)).due_at == T0 + timedelta(hours=23)


async def runs_of(sessions: async_sessionmaker[AsyncSession], campaign_id: str) -> list[str]:
    async with sessions() as s:
        rows = await s.execute(
            sa.select(table_of(CampaignRun).c.contact_id).where(
                table_of(CampaignRun).c.campaign_id == campaign_id,
                table_of(CampaignRun).c.kind == "trigger",
            )
        )
        return sorted(str(r) for r in rows.scalars())


async def test_a_new_persons_first_message_or_get_started_fires_first_message(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    tenant: Tenant,
) -> None:
    ws = tenant.workspace_id
    welcome, _ = await running_campaign(
        sessions,
        ws,
        body(step({"after": "0s"}), trigger={"on": "first_message", "page_id": PAGE_ID}),
    )
    other_page, _ = await running_campaign(
        sessions,
        ws,
        body(step({"after": "0s"}), trigger={"on": "first_message", "page_id": "1049"}),
    )
    writer = wired.add_person(PAGE_ID)
    await wired.person_writes(PAGE_ID, writer, "Chào shop")
    tapper = wired.new_psid()
    assert await wired.person_taps_get_started(PAGE_ID, tapper) is not None
    await apply(sessions, clock)
    contacts = sorted(
        [
            (await identity_of(sessions, writer)).contact_id,
            (await identity_of(sessions, tapper)).contact_id,
        ]
    )
    assert await runs_of(sessions, welcome) == contacts
    assert await runs_of(sessions, other_page) == []
    async with sessions() as s:
        steps = (
            (await s.execute(sa.select(Delivery).where(Delivery.campaign_id == welcome)))  # type: ignore[arg-type]
            .scalars()
            .all()
        )
    assert sorted((d.contact_id, d.step_index, d.state, d.due_at) for d in steps) == [
        (cid, 0, "pending", T0) for cid in contacts
    ]

    clock.advance(timedelta(minutes=1))
    await wired.person_writes(PAGE_ID, writer, "Còn đó không?")
    await apply(sessions, clock)
    assert await runs_of(sessions, welcome) == contacts


async def test_expired_tokens_lose_their_value_and_stay_expired(
    wired: GraphEmulator,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    client: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    psid = wired.add_person(PAGE_ID, window_opened_at=T0)
    await wired.person_accepts_one_time_notification(PAGE_ID, psid, "sale", token="OTN-1")
    await wired.person_opts_in_to_notifications(
        PAGE_ID, psid, "news", token="RN-1", token_expiry=T0 + timedelta(days=10)
    )
    await apply(sessions, clock)
    contact_id = (await identity_of(sessions, psid)).contact_id

    async def tokens() -> dict[str, OptinToken]:
        async with sessions() as s:
            rows = (await s.execute(sa.select(OptinToken))).scalars().all()
        assert len(rows) == 2
        return {t.kind: t for t in rows}

    async with sessions() as s, s.begin():
        assert await sweeps.expire_tokens(s, now=T0 + timedelta(days=10)) == 1
        assert await sweeps.expire_tokens(s, now=T0 + timedelta(days=10)) == 0
    found = await tokens()
    assert (found["recurring"].status, found["recurring"].token_enc) == ("expired", "")
    one_time = found["one_time"]
    assert one_time.status == "active"
    assert RING.decrypt(one_time.token_enc, context=f"optin_token:{one_time.messenger_identity_id}")
    clock.set(T0 + timedelta(days=10))
    reach = await client.get(f"/v1/contacts/{contact_id}/reachability", headers=tenant.headers)
    assert [t["topic"] for t in reach.json()["messenger"][0]["tokens"]] == ["sale"]

    # A late RESUME or a redelivered opt-in of the expired token never revives it.
    await wired.person_resumes_notifications(PAGE_ID, "RN-1", at=T0 + timedelta(days=10))
    await wired.person_opts_in_to_notifications(
        PAGE_ID, psid, "news", token="RN-1", token_expiry=T0 + timedelta(days=5)
    )
    await apply(sessions, clock)
    found = await tokens()
    assert (found["recurring"].status, found["recurring"].token_enc) == ("expired", "")

    async with sessions() as s, s.begin():
        assert await sweeps.expire_tokens(s, now=T0 + timedelta(days=365)) == 1
    assert (await tokens())["one_time"].status == "expired"
