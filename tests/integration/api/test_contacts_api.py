"""`/v1/contacts` on both databases: upserts, consent, suppression, filters, erasure, merges."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.crypto import KeyRing
from orchestrator.ids import new_id
from orchestrator.models import ConsentRecord, MessengerApp, Page, Suppression
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import TEST_SECRET

PAGE = "104000000000777"


async def add_page(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, page_id: str = PAGE
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
                created_at=T0,
                updated_at=T0,
            )
        )


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: object) -> httpx.Response:
    return await client.post("/v1/contacts", headers=tenant.headers, json=body)


async def test_create_then_upsert_by_email(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await create(
        client,
        tenant,
        email="  Lan.Nguyen@Example.COM ",
        name="Nguyễn Thị Lan",
        locale="vi",
        timezone="Asia/Ho_Chi_Minh",
        tags=["vip", "áo dài"],
        attributes={"thành phố": "Huế"},
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"].startswith("ct_")
    assert body["email"] == {"address": "lan.nguyen@example.com", "status": "unconfirmed"}
    assert body["name"] == "Nguyễn Thị Lan"
    assert body["tags"] == sorted(["vip", "áo dài"])
    assert body["attributes"] == {"thành phố": "Huế"}

    again = await create(client, tenant, email="lan.nguyen@example.com", tags=["sale"])
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["tags"] == sorted(["vip", "áo dài", "sale"])
    assert again.json()["name"] == "Nguyễn Thị Lan"


async def test_address_is_subscribed_only_with_consent_source_and_time(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    plain = await create(client, tenant, email="a@example.com")
    assert plain.json()["email"]["status"] == "unconfirmed"
    consented = await create(
        client,
        tenant,
        email="b@example.com",
        consent_source="hotline",
        consent_at="2026-11-19T10:00:00+07:00",
    )
    assert consented.json()["email"]["status"] == "subscribed"
    half = await create(client, tenant, email="c@example.com", consent_source="hotline")
    assert half.status_code == 422
    assert "consent_at" in half.json()["detail"]
    future = await create(
        client,
        tenant,
        email="d@example.com",
        consent_source="api",
        consent_at="2027-01-01T00:00:00Z",
    )
    assert future.status_code == 422
    assert future.json()["errors"][0]["field"] == "consent_at"
    async with sessions() as s:
        rows = (
            await s.execute(
                sa.select(ConsentRecord.__table__.c.source, ConsentRecord.__table__.c.action).where(
                    ConsentRecord.__table__.c.workspace_id == tenant.workspace_id
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("hotline", "subscribe")]


async def test_replayed_consent_is_deduplicated(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(3):
        response = await create(
            client,
            tenant,
            email="e@example.com",
            consent_source="import",
            consent_at="2026-11-01T00:00:00Z",
        )
        assert response.status_code in (200, 201)
    async with sessions() as s:
        count = (
            await s.execute(sa.select(sa.func.count()).select_from(ConsentRecord.__table__))
        ).scalar_one()
    assert count == 1
    assert response.json()["email"]["status"] == "subscribed"


async def test_invalid_inputs_name_the_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cases = [
        ({"email": "not-an-address"}, "email"),
        ({"email": "x@example.com", "timezone": "Asia/Saigon-ish"}, "timezone"),
        ({"email": "x@example.com", "locale": "vietnamese!"}, "locale"),
        ({"email": "x@example.com", "tags": [""]}, "tags[0]"),
        (
            {
                "email": "x@example.com",
                "consent_source": "fax",
                "consent_at": "2026-01-01T00:00:00Z",
            },
            "consent_source",
        ),
        (
            {
                "email": "x@example.com",
                "consent_source": "api",
                "consent_at": "2026-01-01T00:00:00",
            },
            "consent_at",
        ),
        ({"messenger": {"page_id": PAGE}}, "messenger.psid"),
        ({"email": "x@example.com", "surname": "Trần"}, "surname"),
        ({"email": 42}, "email"),
    ]
    for body, field in cases:
        response = await client.post("/v1/contacts", headers=tenant.headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        fields = [e["field"] for e in response.json().get("errors", [])]
        assert field in fields, (body, fields)
    nothing = await client.post("/v1/contacts", headers=tenant.headers, json={"name": "Ai đó"})
    assert nothing.status_code == 422
    listing = await client.get("/v1/contacts", headers=tenant.headers)
    assert listing.json()["data"] == []


async def test_messenger_upsert_and_conflict_names_both(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    by_psid = await create(
        client, tenant, messenger={"page_id": PAGE, "psid": "5550001"}, name="Minh"
    )
    assert by_psid.status_code == 201
    assert by_psid.json()["messenger"][0]["psid"] == "5550001"
    by_email = await create(client, tenant, email="minh@example.com")
    both = await create(
        client, tenant, email="minh@example.com", messenger={"page_id": PAGE, "psid": "5550001"}
    )
    assert both.status_code == 409
    assert set(both.json()["contact_ids"]) == {by_psid.json()["id"], by_email.json()["id"]}
    linked = await create(
        client, tenant, email="new@example.com", messenger={"page_id": PAGE, "psid": "5550001"}
    )
    assert linked.status_code == 200
    assert linked.json()["id"] == by_psid.json()["id"]
    assert linked.json()["email"]["address"] == "new@example.com"
    unknown_page = await create(client, tenant, messenger={"page_id": "1999", "psid": "1"})
    assert unknown_page.status_code == 404
    assert unknown_page.json()["errors"][0]["field"] == "messenger.page_id"


async def test_get_patch_and_tags(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = (
        await create(
            client, tenant, email="p@example.com", tags=["a", "b"], attributes={"x": 1, "y": 2}
        )
    ).json()
    cid = created["id"]
    patched = await client.patch(
        f"/v1/contacts/{cid}",
        headers=tenant.headers,
        json={"name": "Phúc", "tags": ["b", "c"], "attributes": {"x": None, "z": "mới"}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["b", "c"]
    assert patched.json()["attributes"] == {"y": 2, "z": "mới"}
    added = await client.post(
        f"/v1/contacts/{cid}/tags", headers=tenant.headers, json={"tags": ["d"]}
    )
    assert added.json()["tags"] == ["b", "c", "d"]
    removed = await client.delete(f"/v1/contacts/{cid}/tags/c", headers=tenant.headers)
    assert removed.status_code == 204
    got = await client.get(f"/v1/contacts/{cid}", headers=tenant.headers)
    assert got.json()["tags"] == ["b", "d"]
    assert got.json()["name"] == "Phúc"
    missing = await client.get("/v1/contacts/ct_nope", headers=tenant.headers)
    assert missing.status_code == 404


async def test_patch_email_conflict_and_change(client: httpx.AsyncClient, tenant: Tenant) -> None:
    one = (await create(client, tenant, email="one@example.com")).json()
    await create(client, tenant, email="two@example.com")
    clash = await client.patch(
        f"/v1/contacts/{one['id']}", headers=tenant.headers, json={"email": "two@example.com"}
    )
    assert clash.status_code == 409
    moved = await client.patch(
        f"/v1/contacts/{one['id']}", headers=tenant.headers, json={"email": "uno@example.com"}
    )
    assert moved.json()["email"] == {"address": "uno@example.com", "status": "unconfirmed"}


async def test_list_filters_and_pagination(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_page(sessions, tenant)
    ids = {}
    ids["vip_sub"] = (
        await create(
            client,
            tenant,
            email="1@example.com",
            tags=["vip"],
            consent_source="api",
            consent_at="2026-11-01T00:00:00Z",
        )
    ).json()["id"]
    ids["vip_staff"] = (
        await create(client, tenant, email="2@example.com", tags=["vip", "staff"])
    ).json()["id"]
    ids["plain"] = (await create(client, tenant, email="3@example.com", tags=["news"])).json()["id"]
    ids["messenger"] = (
        await create(
            client, tenant, messenger={"page_id": PAGE, "psid": "42"}, tags=["vip", "news"]
        )
    ).json()["id"]

    async def listed(**params: object) -> set[str]:
        response = await client.get("/v1/contacts", headers=tenant.headers, params=params)
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["data"]}

    assert await listed(tags_any="vip") == {ids["vip_sub"], ids["vip_staff"], ids["messenger"]}
    assert await listed(tags_any="vip", tags_none="staff") == {ids["vip_sub"], ids["messenger"]}
    assert await listed(tags_all="vip,news") == {ids["messenger"]}
    assert await listed(email_status="subscribed") == {ids["vip_sub"]}
    assert await listed(messenger="required") == {ids["messenger"]}
    assert await listed(messenger="none", tags_any="vip") == {ids["vip_sub"], ids["vip_staff"]}
    assert await listed(messenger="required", page_id="999") == set()

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/contacts", headers=tenant.headers, params=params)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids.values())
    assert len(seen) == len(set(seen))
    bad = await client.get("/v1/contacts", headers=tenant.headers, params={"cursor": "!!!"})
    assert bad.status_code == 422
    wrong = await client.get(
        "/v1/contacts", headers=tenant.headers, params={"email_status": "happy"}
    )
    assert wrong.status_code == 422


async def test_erasure_redacts_and_keeps_the_address_suppressed(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = (
        await create(
            client,
            tenant,
            email="gone@example.com",
            name="Xoá Tôi",
            consent_source="popup",
            consent_at="2026-11-01T00:00:00Z",
        )
    ).json()
    erased = await client.delete(f"/v1/contacts/{created['id']}", headers=tenant.headers)
    assert erased.status_code == 204
    assert (
        await client.get(f"/v1/contacts/{created['id']}", headers=tenant.headers)
    ).status_code == 404
    async with sessions() as s:
        ledger = (await s.execute(sa.select(ConsentRecord))).scalars().all()
        assert [(r.address, r.redacted) for r in ledger] == [(None, True)]
        suppressed = (await s.execute(sa.select(Suppression))).scalars().all()
        assert len(suppressed) == 1
        assert "gone" not in suppressed[0].address_hash
    again = await create(
        client,
        tenant,
        email="Gone@Example.com",
        consent_source="import",
        consent_at="2026-11-19T00:00:00Z",
    )
    assert again.status_code == 201
    assert again.json()["email"]["status"] == "unsubscribed"
    assert again.json()["id"] != created["id"]


async def test_merge_is_recorded_and_reversible(
    client: httpx.AsyncClient, tenant: Tenant, clock: object
) -> None:
    older = (
        await create(
            client,
            tenant,
            email="old@example.com",
            tags=["a"],
            attributes={"k": "old"},
            consent_source="api",
            consent_at="2026-11-01T00:00:00Z",
        )
    ).json()
    newer = (
        await create(
            client,
            tenant,
            email="new@example.com",
            name="Hà",
            tags=["b"],
            attributes={"k": "new", "j": 1},
        )
    ).json()
    await client.patch(f"/v1/contacts/{newer['id']}", headers=tenant.headers, json={})
    merged = await client.post(
        f"/v1/contacts/{newer['id']}/merge",
        headers=tenant.headers,
        json={"contact_id": older["id"]},
    )
    assert merged.status_code == 200, merged.text
    kept = merged.json()["contact"]
    assert kept["id"] == min(older["id"], newer["id"])
    assert kept["tags"] == ["a", "b"]
    assert kept["attributes"] == {"k": "old", "j": 1}
    assert kept["name"] == "Hà"
    gone = await client.get(f"/v1/contacts/{newer['id']}", headers=tenant.headers)
    assert gone.status_code == 404
    assert gone.json()["merged_into"] == kept["id"]
    by_email = await create(client, tenant, email="new@example.com")
    assert by_email.json()["id"] == kept["id"]

    reverted = await client.post(
        f"/v1/contacts/merges/{merged.json()['merge_id']}/revert", headers=tenant.headers
    )
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["kept"]["tags"] == ["a"]
    assert reverted.json()["kept"]["attributes"] == {"k": "old"}
    assert reverted.json()["restored"]["id"] == newer["id"]
    assert reverted.json()["restored"]["tags"] == ["b"]
    assert reverted.json()["restored"]["email"]["address"] == "new@example.com"
    twice = await client.post(
        f"/v1/contacts/merges/{merged.json()['merge_id']}/revert", headers=tenant.headers
    )
    assert twice.status_code == 409


async def test_merge_keeps_the_stricter_consent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    keeper = (
        await create(
            client,
            tenant,
            email="k@example.com",
            consent_source="api",
            consent_at="2026-11-01T00:00:00Z",
        )
    ).json()
    other = (await create(client, tenant, email="o@example.com")).json()
    erase_then = await client.delete(f"/v1/contacts/{other['id']}", headers=tenant.headers)
    assert erase_then.status_code == 204
    suppressed = (await create(client, tenant, email="o@example.com")).json()
    assert suppressed["email"]["status"] == "unsubscribed"
    merged = await client.post(
        f"/v1/contacts/{keeper['id']}/merge",
        headers=tenant.headers,
        json={"contact_id": suppressed["id"]},
    )
    assert merged.json()["contact"]["email"]["status"] == "unsubscribed"
    await client.post(
        f"/v1/contacts/merges/{merged.json()['merge_id']}/revert", headers=tenant.headers
    )
    back = await client.get(f"/v1/contacts/{keeper['id']}", headers=tenant.headers)
    assert back.json()["email"]["status"] == "subscribed"


async def test_idempotency_key_replays_and_refuses_another_body(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-lan-1"}
    first = await client.post(
        "/v1/contacts", headers=headers, json={"email": "idem@example.com", "tags": ["x"]}
    )
    assert first.status_code == 201
    replay = await client.post(
        "/v1/contacts", headers=headers, json={"email": "idem@example.com", "tags": ["x"]}
    )
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/contacts", headers=headers, json={"email": "other@example.com"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    listing = await client.get("/v1/contacts", headers=tenant.headers)
    assert [c["email"]["address"] for c in listing.json()["data"]] == ["idem@example.com"]


async def test_idempotency_keys_are_per_workspace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = {"email": "shared@example.com"}
    a = await client.post(
        "/v1/contacts", headers={**tenant.headers, "Idempotency-Key": "k"}, json=body
    )
    b = await client.post(
        "/v1/contacts", headers={**other_tenant.headers, "Idempotency-Key": "k"}, json=body
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    ("method", "path_template", "body"),
    [
        ("GET", "/v1/contacts/{id}", None),
        ("PATCH", "/v1/contacts/{id}", {"name": "hijack"}),
        ("DELETE", "/v1/contacts/{id}", None),
        ("POST", "/v1/contacts/{id}/tags", {"tags": ["hijack"]}),
        ("DELETE", "/v1/contacts/{id}/tags/vip", None),
        ("POST", "/v1/contacts/{id}/merge", {"contact_id": "{other}"}),
    ],
)
async def test_another_workspace_can_neither_read_nor_change(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    path_template: str,
    body: dict[str, str] | None,
) -> None:
    victim = (
        await create(client, tenant, email="victim@example.com", tags=["vip"], name="Nạn nhân")
    ).json()
    attacker_own = (await create(client, other_tenant, email="attacker@example.com")).json()
    path = path_template.format(id=victim["id"])
    if body and body.get("contact_id") == "{other}":
        body = {"contact_id": attacker_own["id"]}
    response = await client.request(method, path, headers=other_tenant.headers, json=body)
    assert response.status_code == 404
    unchanged = (await client.get(f"/v1/contacts/{victim['id']}", headers=tenant.headers)).json()
    assert unchanged == victim
    listed = (await client.get("/v1/contacts", headers=other_tenant.headers)).json()["data"]
    assert [c["id"] for c in listed] == [attacker_own["id"]]
    upsert = await create(client, other_tenant, email="victim@example.com")
    assert upsert.json()["id"] != victim["id"]
