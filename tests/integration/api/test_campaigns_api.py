"""`/v1/campaigns` on both databases: creation checks, launch, pause/resume/cancel, runs,
deliveries, stats and preview."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import FrozenClock
from orchestrator.crypto import KeyRing
from orchestrator.delivery_states import State
from orchestrator.ids import new_id
from orchestrator.models import (
    Campaign,
    CampaignRun,
    ConsentRecord,
    Delivery,
    InteractionEvent,
    MessengerApp,
    MessengerIdentity,
    Page,
    table_of,
)
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import TEST_SECRET, table_count

PAGE = "104000000000555"
OTHER_PAGE = "104000000000666"
CAMPAIGN_KEYS = {
    "id", "name", "page_id", "purpose", "topic", "status", "paused_reason", "audience",
    "trigger", "steps", "schedule", "send_window", "frequency_cap", "frequency_cap_period",
    "throttle", "next_run_at", "launched_at", "created_at", "updated_at",
}  # fmt: skip
BODY: dict[str, Any] = {
    "name": "Khuyến mãi tháng 12",
    "page_id": PAGE,
    "purpose": "promotional",
    "topic": "sale",
    "audience": {"tags_any": ["vip"], "tags_none": ["staff"], "email_status": ["subscribed"]},
    "trigger": None,
    "steps": [
        {
            "delay": {"after": "0s"},
            "messenger": {"text": "Chào {{ contact.name | default('bạn') }}!"},
            "email": {
                "subject": "Ưu đãi cho {{ contact.name | default('bạn') }}",
                "html": "<p>Giảm 20% cho {{ contact.name | default('bạn') }}</p>",
                "text": "Giảm 20%",
            },
            "fallback": "email",
            "max_wait": None,
        },
        {
            "delay": {"before_window_closes": "1h"},
            "messenger": {"text": "Còn 1 giờ!"},
            "email": None,
            "fallback": "wait_for_window",
            "max_wait": "3d",
        },
    ],
    "schedule": "now",
    "send_window": None,
    "frequency_cap": 2,
    "throttle": {"per_second": 50},
}


def body(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(BODY)
    result.update(changes)
    return result


async def add_page(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    page_id: str = PAGE,
    *,
    paused_reason: str | None = None,
) -> None:
    ring = KeyRing(TEST_SECRET)
    async with sessions() as s, s.begin():
        app = MessengerApp(
            id=new_id("app"),
            workspace_id=tenant.workspace_id,
            app_id="9" + page_id[-6:],
            app_secret_enc=ring.encrypt("s", context="x"),
            verify_token_enc=ring.encrypt("v", context="x"),
            created_at=T0,
            updated_at=T0,
        )
        s.add(app)
        await s.flush()
        s.add(
            Page(
                id=new_id("pg"),
                workspace_id=tenant.workspace_id,
                page_id=page_id,
                messenger_app_id=app.id,
                username="aodaihong",
                access_token_enc=ring.encrypt("t", context="x"),
                graph_api_version="v25.0",
                paused_reason=paused_reason,
                paused_at=T0 if paused_reason else None,
                created_at=T0,
                updated_at=T0,
            )
        )


async def pause_page(sessions: async_sessionmaker[AsyncSession], reason: str | None) -> None:
    pages = table_of(Page)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.update(pages)
            .where(pages.c.page_id == PAGE)
            .values(paused_at=T0 if reason else None, paused_reason=reason)
        )


async def create(
    client: httpx.AsyncClient, tenant: Tenant, payload: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post("/v1/campaigns", headers=tenant.headers, json=payload or body())


async def created_id(client: httpx.AsyncClient, tenant: Tenant, **changes: Any) -> str:
    response = await create(client, tenant, body(**changes))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def post(
    client: httpx.AsyncClient, tenant: Tenant, path: str, **headers: str
) -> httpx.Response:
    return await client.post(path, headers={**tenant.headers, **headers})


def field_names(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {e["field"] for e in response.json()["errors"]}


async def add_run(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    campaign_id: str,
    *,
    audience: int = 0,
    status: str = "running",
    occurrence: str = "launch",
) -> str:
    run_id = new_id("run")
    async with sessions() as s, s.begin():
        await s.execute(
            sa.insert(table_of(CampaignRun)).values(
                id=run_id,
                workspace_id=tenant.workspace_id,
                campaign_id=campaign_id,
                kind="launch",
                occurrence=occurrence,
                status=status,
                audience_count=audience,
                started_at=T0,
                created_at=T0,
            )
        )
    return run_id


async def add_deliveries(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    campaign_id: str,
    run_id: str,
    rows: list[dict[str, Any]],
) -> list[str]:
    """Delivery rows as the planner and dispatcher would leave them; each row gives at least
    `contact_id` and `state`."""
    ids = []
    values = []
    for index, row in enumerate(rows):
        delivery_id = new_id("dl")
        ids.append(delivery_id)
        values.append(
            {
                "id": delivery_id,
                "workspace_id": tenant.workspace_id,
                "kind": "step",
                "campaign_id": campaign_id,
                "campaign_run_id": run_id,
                "step_index": row.pop("step_index", 0),
                "page_id": PAGE,
                "purpose": "promotional",
                "topic": "sale",
                "due_at": T0,
                "content": {},
                "attempts": 0,
                "created_at": T0,
                "updated_at": T0 + timedelta(microseconds=index),
                "reason": None,
                "channel": None,
                "sent_at": None,
                "clicked_at": None,
                **row,
            }
        )
    async with sessions() as s, s.begin():
        for value in values:
            await s.execute(sa.insert(table_of(Delivery)).values(**value))
    return ids


async def delivery_states(
    sessions: async_sessionmaker[AsyncSession], ids: list[str]
) -> list[tuple[str, str | None]]:
    table = table_of(Delivery)
    async with sessions() as s:
        rows = {
            r.id: (r.state, r.reason)
            for r in (
                await s.execute(
                    sa.select(table.c.id, table.c.state, table.c.reason).where(table.c.id.in_(ids))
                )
            ).all()
        }
    return [rows[i] for i in ids]


# -- creation ------------------------------------------------------------------------------------


async def test_create_stores_a_draft_in_the_documented_shape(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    response = await create(client, tenant)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) >= CAMPAIGN_KEYS
    assert created["status"] == "draft"
    assert created["paused_reason"] is None
    assert created["name"] == "Khuyến mãi tháng 12"
    assert created["steps"][1]["delay"] == {"after": None, "before_window_closes": "1h"}
    assert created["audience"]["messenger"] == "any"  # defaults filled in by validation
    assert created["frequency_cap_period"] == "1d"
    assert created["schedule"] == "now"
    assert created["launched_at"] is None
    read = await client.get(f"/v1/campaigns/{created['id']}", headers=tenant.headers)
    assert read.json() == created
    async with sessions() as s:
        stored = await s.get(Campaign, created["id"])
    assert stored is not None
    assert stored.workspace_id == tenant.workspace_id
    assert stored.trigger_on is None
    assert stored.spec["steps"][0]["messenger"]["text"] == BODY["steps"][0]["messenger"]["text"]


async def test_triggers_are_indexed_by_their_key(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    triggers = [
        ({"on": "captured", "form_id": "fm_1"}, "fm_1"),
        ({"on": "tag_added", "tag": "vip"}, "vip"),
        ({"on": "first_message", "page_id": PAGE}, PAGE),
    ]
    for trigger, key in triggers:
        campaign_id = await created_id(client, tenant, trigger=trigger)
        async with sessions() as s:
            stored = await s.get(Campaign, campaign_id)
        assert stored is not None
        assert (stored.trigger_on, stored.trigger_key) == (trigger["on"], key)


async def test_validation_errors_name_the_step_and_field_and_the_unknown_page(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    bad = body(page_id=OTHER_PAGE, bogus=1)
    bad["steps"][1]["delay"] = {}
    bad["steps"][0]["messenger"]["text"] = "{{ unknown_thing }}"
    response = await create(client, tenant, bad)
    assert response.status_code == 422
    fields = field_names(response)
    assert {"steps[1].delay", "page_id", "bogus"} <= fields
    # Cross-field rules run on a body whose shape parsed.
    bad = body()
    bad["steps"][0]["messenger"]["text"] = "{{ unknown_thing }}"
    bad["steps"][1]["max_wait"] = "3x"
    response = await create(client, tenant, bad)
    assert "steps[1].max_wait" in field_names(response)
    bad = body()
    bad["steps"][0]["messenger"]["text"] = "{{ unknown_thing }}"
    response = await create(client, tenant, bad)
    assert field_names(response) == {"steps[0].messenger.text"}
    async with sessions() as s:
        assert await table_count(s, "campaigns") == 0


async def test_another_workspaces_page_is_unknown(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, other_tenant)
    response = await create(client, tenant)
    assert response.status_code == 422
    assert field_names(response) == {"page_id"}
    await add_page(sessions, tenant, OTHER_PAGE)
    response = await create(
        client,
        tenant,
        body(page_id=OTHER_PAGE, trigger={"on": "first_message", "page_id": PAGE}),
    )
    assert response.status_code == 422
    assert field_names(response) == {"trigger.page_id"}
    not_an_object = await client.post("/v1/campaigns", headers=tenant.headers, json=[1])
    assert not_an_object.status_code == 422


async def test_create_honours_the_idempotency_key(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    headers = {**tenant.headers, "Idempotency-Key": "create-1"}
    first = await client.post("/v1/campaigns", headers=headers, json=body())
    again = await client.post("/v1/campaigns", headers=headers, json=body())
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    other_body = await client.post("/v1/campaigns", headers=headers, json=body(name="x"))
    assert other_body.status_code == 422
    async with sessions() as s:
        assert await table_count(s, "campaigns") == 1


async def test_list_is_newest_first_with_cursor_and_status_filter(
    client: httpx.AsyncClient,
    tenant: Tenant,
    clock: FrozenClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    ids = []
    for index in range(3):
        clock.advance(timedelta(minutes=1))
        ids.append(await created_id(client, tenant, name=f"c{index}"))
    await post(client, tenant, f"/v1/campaigns/{ids[0]}/cancel")
    first = await client.get("/v1/campaigns?limit=2", headers=tenant.headers)
    assert first.status_code == 200
    page1 = first.json()
    assert [c["id"] for c in page1["data"]] == [ids[2], ids[1]]
    assert page1["next_cursor"]
    second = await client.get(
        f"/v1/campaigns?limit=2&cursor={page1['next_cursor']}", headers=tenant.headers
    )
    assert [c["id"] for c in second.json()["data"]] == [ids[0]]
    assert second.json()["next_cursor"] is None
    drafts = await client.get("/v1/campaigns?status=draft", headers=tenant.headers)
    assert [c["id"] for c in drafts.json()["data"]] == [ids[2], ids[1]]
    bad_status = await client.get("/v1/campaigns?status=sleeping", headers=tenant.headers)
    assert bad_status.status_code == 422
    assert field_names(bad_status) == {"query.status"}
    bad_cursor = await client.get("/v1/campaigns?cursor=zzz", headers=tenant.headers)
    assert bad_cursor.status_code == 422
    assert field_names(bad_cursor) == {"query.cursor"}


# -- isolation -----------------------------------------------------------------------------------


async def test_every_endpoint_hides_another_workspaces_campaign(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    base = f"/v1/campaigns/{campaign_id}"
    for method, path in [
        ("GET", base),
        ("POST", f"{base}/launch"),
        ("POST", f"{base}/pause"),
        ("POST", f"{base}/resume"),
        ("POST", f"{base}/cancel"),
        ("GET", f"{base}/runs"),
        ("GET", f"{base}/deliveries"),
        ("GET", f"{base}/stats"),
        ("POST", f"{base}/preview?contact_id=ct_x"),
    ]:
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["type"] == "urn:outreach:problem:campaign-not-found"
    listed = await client.get("/v1/campaigns", headers=other_tenant.headers)
    assert listed.json()["data"] == []
    mine = await client.get(base, headers=tenant.headers)
    assert mine.json()["status"] == "draft"  # nothing the other workspace did touched it


# -- launch, pause, resume, cancel ---------------------------------------------------------------


async def test_launch_is_idempotent_and_a_second_launch_conflicts(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    path = f"/v1/campaigns/{campaign_id}/launch"
    first = await post(client, tenant, path, **{"Idempotency-Key": "go-1"})
    assert first.status_code == 202, first.text
    launched = first.json()
    assert launched["status"] == "running"
    assert launched["launched_at"] is not None
    assert launched["run_id"]
    again = await post(client, tenant, path, **{"Idempotency-Key": "go-1"})
    assert again.status_code == 202
    assert again.json() == launched
    assert again.headers.get("idempotent-replayed") == "true"
    unkeyed = await post(client, tenant, path)
    assert unkeyed.status_code == 409
    other_key = await post(client, tenant, path, **{"Idempotency-Key": "go-2"})
    assert other_key.status_code == 409
    async with sessions() as s:
        assert await table_count(s, "campaign_runs") == 1
    runs = await client.get(f"/v1/campaigns/{campaign_id}/runs", headers=tenant.headers)
    assert runs.status_code == 200
    (run,) = runs.json()["data"]
    assert run["id"] == launched["run_id"]
    assert (run["kind"], run["status"], run["occurrence"]) == ("launch", "planning", "launch")


async def test_a_scheduled_launch_creates_no_run_yet(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    at = (T0 + timedelta(days=1)).isoformat()
    campaign_id = await created_id(client, tenant, schedule={"at": at})
    launched = await post(client, tenant, f"/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 202
    assert launched.json()["status"] == "scheduled"
    assert launched.json()["run_id"] is None
    assert datetime.fromisoformat(launched.json()["next_run_at"]) == T0 + timedelta(days=1)
    async with sessions() as s:
        assert await table_count(s, "campaign_runs") == 0


async def test_pause_and_resume_restore_the_previous_status(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    running = await created_id(client, tenant)
    scheduled = await created_id(
        client, tenant, schedule={"cron": "0 9 * * 1", "timezone": "Asia/Ho_Chi_Minh"}
    )
    draft_pause = await post(client, tenant, f"/v1/campaigns/{running}/pause")
    assert draft_pause.status_code == 409
    draft_resume = await post(client, tenant, f"/v1/campaigns/{running}/resume")
    assert draft_resume.status_code == 409
    for campaign_id, previous in ((running, "running"), (scheduled, "scheduled")):
        await post(client, tenant, f"/v1/campaigns/{campaign_id}/launch")
        resumed_twice = await post(client, tenant, f"/v1/campaigns/{campaign_id}/resume")
        assert resumed_twice.status_code == 409
        paused = await post(client, tenant, f"/v1/campaigns/{campaign_id}/pause")
        assert paused.status_code == 200, paused.text
        assert (paused.json()["status"], paused.json()["paused_reason"]) == ("paused", "operator")
        assert paused.json()["paused_at"] is not None
        assert (await post(client, tenant, f"/v1/campaigns/{campaign_id}/pause")).status_code == 409
        resumed = await post(client, tenant, f"/v1/campaigns/{campaign_id}/resume")
        assert resumed.status_code == 200
        assert resumed.json()["status"] == previous
        assert resumed.json()["paused_reason"] is None
        assert resumed.json()["paused_at"] is None
    scheduled_view = (await client.get(f"/v1/campaigns/{scheduled}", headers=tenant.headers)).json()
    assert scheduled_view["next_run_at"] is not None


async def test_a_paused_page_shows_its_campaigns_paused_and_blocks_resume(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    draft_id = await created_id(client, tenant)
    await post(client, tenant, f"/v1/campaigns/{campaign_id}/launch")
    await pause_page(sessions, "TokenInvalid: Error validating access token")
    shown = (await client.get(f"/v1/campaigns/{campaign_id}", headers=tenant.headers)).json()
    assert shown["status"] == "paused"
    assert shown["paused_reason"] == "page_paused: TokenInvalid: Error validating access token"
    draft = (await client.get(f"/v1/campaigns/{draft_id}", headers=tenant.headers)).json()
    assert (draft["status"], draft["paused_reason"]) == ("draft", None)
    listed = (await client.get("/v1/campaigns", headers=tenant.headers)).json()["data"]
    assert {c["id"]: c["status"] for c in listed} == {campaign_id: "paused", draft_id: "draft"}
    # An operator may still pause it; resuming waits for the Page.
    paused = await post(client, tenant, f"/v1/campaigns/{campaign_id}/pause")
    assert paused.json()["paused_reason"] == "operator"
    refused = await post(client, tenant, f"/v1/campaigns/{campaign_id}/resume")
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:outreach:problem:campaign-page-paused"
    await pause_page(sessions, None)
    resumed = await post(client, tenant, f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.status_code == 200
    assert (resumed.json()["status"], resumed.json()["paused_reason"]) == ("running", None)


async def test_cancel_cancels_waiting_deliveries_and_leaves_the_rest(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    other_id = await created_id(client, tenant)
    launched = await post(client, tenant, f"/v1/campaigns/{campaign_id}/launch")
    run_id = launched.json()["run_id"]
    states = ["pending", "held", "deferred", "claimed", "sent", "failed"]
    ids = await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_id,
        [
            {
                "contact_id": f"ct_{i}",
                "state": state,
                "reason": "messenger.window" if state == "sent" else None,
            }
            for i, state in enumerate(states)
        ],
    )
    (untouched,) = await add_deliveries(
        sessions, tenant, other_id, run_id, [{"contact_id": "ct_9", "state": "pending"}]
    )
    cancelled = await post(client, tenant, f"/v1/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    assert await delivery_states(sessions, ids) == [
        ("cancelled", "skipped.cancelled"),
        ("cancelled", "skipped.cancelled"),
        ("cancelled", "skipped.cancelled"),
        ("claimed", None),
        ("sent", "messenger.window"),
        ("failed", None),
    ]
    assert await delivery_states(sessions, [untouched]) == [("pending", None)]
    runs = (await client.get(f"/v1/campaigns/{campaign_id}/runs", headers=tenant.headers)).json()
    assert [r["status"] for r in runs["data"]] == ["cancelled"]
    for action in ("cancel", "pause", "resume", "launch"):
        again = await post(client, tenant, f"/v1/campaigns/{campaign_id}/{action}")
        assert again.status_code == 409, action
    draft_cancel = await post(client, tenant, f"/v1/campaigns/{other_id}/cancel")
    assert draft_cancel.json()["status"] == "cancelled"


# -- deliveries and stats ------------------------------------------------------------------------


async def test_deliveries_filter_and_paginate(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    run_id = await add_run(sessions, tenant, campaign_id)
    rows: list[dict[str, Any]] = [
        {"contact_id": f"ct_m{i}", "state": "sent", "reason": "messenger.window",
         "channel": "messenger", "sent_at": T0, "messaging_type": "UPDATE"}
        for i in range(5)
    ] + [
        {"contact_id": f"ct_e{i}", "state": "sent", "reason": "email.window_closed",
         "channel": "email", "sent_at": T0}
        for i in range(3)
    ] + [{"contact_id": "ct_p", "state": "pending"}]  # fmt: skip
    ids = await add_deliveries(sessions, tenant, campaign_id, run_id, rows)
    path = f"/v1/campaigns/{campaign_id}/deliveries"
    everything = (await client.get(path, headers=tenant.headers)).json()
    assert [d["id"] for d in everything["data"]] == sorted(ids)
    assert everything["next_cursor"] is None
    one = next(d for d in everything["data"] if d["contact_id"] == "ct_m0")
    assert one["run_id"] == run_id
    assert one["step_index"] == 0
    assert (one["state"], one["reason"], one["channel"]) == (
        "sent",
        "messenger.window",
        "messenger",
    )
    assert one["messaging_type"] == "UPDATE"
    seen: list[str] = []
    cursor = None
    while True:
        query = f"{path}?state=sent&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=tenant.headers)).json()
        assert len(page["data"]) <= 3
        seen.extend(d["id"] for d in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8
    emails = (await client.get(f"{path}?channel=email", headers=tenant.headers)).json()["data"]
    assert {d["contact_id"] for d in emails} == {"ct_e0", "ct_e1", "ct_e2"}
    by_reason = await client.get(f"{path}?reason=messenger.window&limit=2", headers=tenant.headers)
    assert len(by_reason.json()["data"]) == 2
    assert by_reason.json()["next_cursor"]
    pending = (await client.get(f"{path}?state=pending", headers=tenant.headers)).json()["data"]
    assert [d["contact_id"] for d in pending] == ["ct_p"]
    for query, field in (
        ("state=lost", "query.state"),
        ("channel=sms", "query.channel"),
        ("reason=because", "query.reason"),
        ("limit=0", "query.limit"),
        ("cursor=!!", "query.cursor"),
    ):
        refused = await client.get(f"{path}?{query}", headers=tenant.headers)
        assert refused.status_code == 422, query
        assert field in field_names(refused), query


async def test_stats_count_by_state_route_reason_and_funnel(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    other_id = await created_id(client, tenant)
    empty = (await client.get(f"/v1/campaigns/{campaign_id}/stats", headers=tenant.headers)).json()
    assert empty["by_state"] == {state.value: 0 for state in State}
    assert empty["audience"] == 0
    assert set(empty["funnel"].values()) == {0}

    run_a = await add_run(sessions, tenant, campaign_id, audience=4)
    run_b = await add_run(sessions, tenant, campaign_id, audience=2, occurrence="at")
    later = T0 + timedelta(hours=30)
    ids = await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_a,
        [
            # ct_1: fallback email, clicked, reopened, then step 1 on Messenger.
            {"contact_id": "ct_1", "state": "sent", "reason": "email.window_closed",
             "channel": "email", "sent_at": T0, "clicked_at": T0 + timedelta(hours=1)},
            {"contact_id": "ct_1", "step_index": 1, "state": "sent",
             "reason": "messenger.window", "channel": "messenger", "sent_at": later},
            # ct_2: fallback email, unsubscribed through its link.
            {"contact_id": "ct_2", "state": "sent", "reason": "email.no_messenger",
             "channel": "email", "sent_at": T0},
            # ct_3: Messenger only (not a fallback contact), then a later email.
            {"contact_id": "ct_3", "state": "sent", "reason": "messenger.window",
             "channel": "messenger", "sent_at": T0},
            {"contact_id": "ct_3", "step_index": 1, "state": "sent",
             "reason": "email.window_closed", "channel": "email", "sent_at": later},
            {"contact_id": "ct_4", "state": "skipped", "reason": "skipped.unsubscribed"},
            {"contact_id": "ct_4", "step_index": 1, "state": "held",
             "reason": "held.until_window"},
        ],
    )  # fmt: skip
    await add_deliveries(
        sessions,
        tenant,
        campaign_id,
        run_b,
        [
            {"contact_id": "ct_5", "state": "failed", "reason": "failed.render"},
            {"contact_id": "ct_6", "state": "skipped", "reason": "skipped.frequency_cap"},
            {"contact_id": "ct_7", "state": "pending"},
        ],
    )
    # Another campaign's rows never count here.
    other_run = await add_run(sessions, tenant, other_id, audience=50)
    await add_deliveries(
        sessions,
        tenant,
        other_id,
        other_run,
        [{"contact_id": "ct_1", "state": "sent", "reason": "email.window_closed",
          "channel": "email", "sent_at": T0, "clicked_at": T0}],
    )  # fmt: skip
    async with sessions() as s, s.begin():
        s.add(
            InteractionEvent(
                id=new_id("ev"),
                workspace_id=tenant.workspace_id,
                contact_id="ct_1",
                page_id=PAGE,
                type="reopen",
                delivery_id=ids[0],
                data={"delivery_id": ids[0], "campaign_id": campaign_id, "intent": "support"},
                occurred_at=T0 + timedelta(hours=2),
                created_at=T0,
            )
        )
        for contact_id, at in (("ct_2", T0 + timedelta(hours=3)), ("ct_4", T0)):
            s.add(
                ConsentRecord(
                    id=new_id("cl"),
                    workspace_id=tenant.workspace_id,
                    contact_id=contact_id,
                    action="unsubscribe",
                    source="unsubscribe_link",
                    occurred_at=at,
                    created_at=at,
                )
            )
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats", headers=tenant.headers)).json()
    assert stats["audience"] == 6
    assert stats["by_state"] == {
        "pending": 1, "claimed": 0, "sent": 5, "held": 1, "deferred": 0, "skipped": 2,
        "failed": 1, "cancelled": 0,
    }  # fmt: skip
    assert sum(stats["by_state"].values()) == 10
    assert stats["sent_by_route"] == {
        "email.window_closed": 2,
        "email.no_messenger": 1,
        "messenger.window": 2,
    }
    assert stats["skipped_by_reason"] == {"skipped.unsubscribed": 1, "skipped.frequency_cap": 1}
    assert stats["failed_by_reason"] == {"failed.render": 1}
    assert stats["funnel"] == {
        "fallback_emails": 3,
        "clicked": 1,
        "reopened": 1,
        "completed_on_messenger": 1,
        "unsubscribed": 1,  # ct_4 unsubscribed without any email of this campaign
    }


# -- preview -------------------------------------------------------------------------------------


async def add_contact(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    *,
    email: str,
    psid: str | None = None,
    window_opened_at: datetime | None = None,
    **extra: Any,
) -> str:
    payload: dict[str, Any] = {
        "email": email,
        "consent_source": "api",
        "consent_at": T0.isoformat(),
        **extra,
    }
    if psid is not None:
        payload["messenger"] = {"page_id": PAGE, "psid": psid}
    response = await client.post("/v1/contacts", headers=tenant.headers, json=payload)
    assert response.status_code == 201, response.text
    contact_id = str(response.json()["id"])
    if window_opened_at is not None:
        identities = table_of(MessengerIdentity)
        async with sessions() as s, s.begin():
            await s.execute(
                sa.update(identities)
                .where(identities.c.contact_id == contact_id)
                .values(window_opened_at=window_opened_at, last_user_message_at=window_opened_at)
            )
    return contact_id


async def test_preview_decides_and_renders_without_writing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    in_window = await add_contact(
        client, tenant, sessions, email="lan@example.com", psid="7001", name="Lan",
        window_opened_at=T0 - timedelta(hours=2),
    )  # fmt: skip
    email_only = await add_contact(client, tenant, sessions, email="minh@example.com", locale="vi")
    async with sessions() as s:
        before = {t: await table_count(s, t) for t in ("deliveries", "interaction_events")}
    path = f"/v1/campaigns/{campaign_id}/preview"

    messenger = await post(client, tenant, f"{path}?contact_id={in_window}&step=0")
    assert messenger.status_code == 200, messenger.text
    shown = messenger.json()
    assert shown["decision"]["route"] == "messenger"
    assert shown["decision"]["reason"] == "messenger.window"
    assert shown["decision"]["messaging_type"] == "UPDATE"
    assert shown["decision"]["tag"] is None
    assert shown["messenger"]["text"] == "Chào Lan!"
    assert shown["email"] is None

    by_email = (await post(client, tenant, f"{path}?contact_id={email_only}")).json()
    assert by_email["decision"]["route"] == "email"
    assert by_email["decision"]["reason"] == "email.no_messenger"
    assert by_email["messenger"] is None
    assert by_email["email"]["subject"] == "Ưu đãi cho bạn"
    assert "Giảm 20% cho bạn" in by_email["email"]["html"]
    assert "https://outreach.test/u/preview" in by_email["email"]["text"]

    # Step 1 waits for a window the email-only contact does not have.
    held = (await post(client, tenant, f"{path}?contact_id={email_only}&step=1")).json()
    assert held["decision"]["reason"] == "held.until_window"
    assert held["messenger"] is None
    assert held["email"] is None

    async with sessions() as s:
        after = {t: await table_count(s, t) for t in ("deliveries", "interaction_events")}
    assert after == before

    out_of_range = await post(client, tenant, f"{path}?contact_id={email_only}&step=2")
    assert out_of_range.status_code == 422
    assert field_names(out_of_range) == {"query.step"}
    missing_contact = await post(client, tenant, path)
    assert missing_contact.status_code == 422
    assert field_names(missing_contact) == {"query.contact_id"}
    theirs = await add_contact(client, other_tenant, sessions, email="x@example.com")
    hidden = await post(client, tenant, f"{path}?contact_id={theirs}")
    assert hidden.status_code == 404
    assert hidden.json()["type"] == "urn:outreach:problem:contact-not-found"


async def test_preview_reports_a_render_failure_next_to_the_decision(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    strict = body()
    strict["steps"][0]["messenger"]["text"] = "Mã của bạn: {{ contact.attributes.code }}"
    response = await create(client, tenant, strict)
    assert response.status_code == 201, response.text
    campaign_id = response.json()["id"]
    contact_id = await add_contact(
        client, tenant, sessions, email="an@example.com", psid="7002",
        window_opened_at=T0 - timedelta(hours=1),
    )  # fmt: skip
    shown = await post(
        client, tenant, f"/v1/campaigns/{campaign_id}/preview?contact_id={contact_id}"
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["decision"]["reason"] == "messenger.window"
    assert shown.json()["messenger"] is None
    assert shown.json()["error"]["field"] == "steps[0].messenger.text"
    assert shown.json()["error"]["code"] == "undefined"


async def test_preview_of_a_cancelled_campaign_says_so(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    campaign_id = await created_id(client, tenant)
    contact_id = await add_contact(client, tenant, sessions, email="bao@example.com")
    await post(client, tenant, f"/v1/campaigns/{campaign_id}/cancel")
    shown = await post(
        client, tenant, f"/v1/campaigns/{campaign_id}/preview?contact_id={contact_id}"
    )
    assert shown.json()["decision"]["reason"] == "skipped.cancelled"
    assert shown.json()["messenger"] is None
    assert shown.json()["email"] is None
