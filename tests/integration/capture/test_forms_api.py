"""`/v1/forms` and the widget's public view of a form."""

from __future__ import annotations

import json
import re

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.clock import FrozenClock
from orchestrator.models import ConsentRecord
from tests.fixtures.api import Tenant
from tests.integration.api.test_contacts_api import PAGE, add_page
from tests.integration.capture.visitor import CONSENT, SITE, Visitor, create_form, form_body

WHEEL = {
    "prizes": [
        {"label": "Giảm 10%", "weight": 70, "stock": 100, "codes": ["GIAM10-A", "GIAM10-B"]},
        {"label": "Áo dài miễn phí", "weight": 1, "stock": 1},
        {"label": "Chúc may mắn lần sau", "weight": 29, "losing": True},
    ]
}


async def test_create_read_list_patch_delete(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    created = await client.post(
        "/v1/forms",
        headers=tenant.headers,
        json=form_body(
            kind="minigame",
            page_id=PAGE,
            allowed_origins=["HTTPS://Shop.AoDaiHong.vn:443/", "https://*.aodaihong.vn"],
            triggers={"delay": "5s", "scroll_percent": 40, "exit_intent": True,
                      "frequency": {"times": 1, "per": "7d"}},
            look={"title": "Vòng quay may mắn", "primary_color": "#D6336C"},
            wheel=WHEEL,
        ),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    form = created.json()
    assert form["id"].startswith("fm_")
    assert form["allowed_origins"] == [SITE, "https://*.aodaihong.vn"]
    assert form["double_opt_in"] is True
    assert form["consent"] == CONSENT
    assert form["widget_url"] == f"https://outreach.test/f/{form['id']}/widget.js"
    assert form["capture_url"] == f"https://outreach.test/capture/{form['id']}"
    prizes = form["wheel"]["prizes"]
    assert [(p["label"], p["codes_total"], p["codes_left"]) for p in prizes] == [
        ("Giảm 10%", 2, 2), ("Áo dài miễn phí", 0, 0), ("Chúc may mắn lần sau", 0, 0),
    ]  # fmt: skip
    assert "codes" not in json.dumps(form).replace("codes_", "")

    read = await client.get(f"/v1/forms/{form['id']}", headers=tenant.headers)
    assert read.json() == form
    assert (
        await client.get(f"/v1/forms/{form['id']}", headers=other_tenant.headers)
    ).status_code == 404
    listed = (await client.get("/v1/forms", headers=tenant.headers)).json()
    assert [f["id"] for f in listed["data"]] == [form["id"]]
    assert (await client.get("/v1/forms", headers=other_tenant.headers)).json()["data"] == []

    patched = await client.patch(
        f"/v1/forms/{form['id']}",
        headers=tenant.headers,
        json={
            "consent": {"text": "Tôi đồng ý nhận email và tin nhắn.", "version": "2026-12-01"},
            "tags": ["vong-quay"],
            "wheel": {"prizes": [{**WHEEL["prizes"][0], "id": prizes[0]["id"],
                                  "codes": ["GIAM10-B", "GIAM10-C"]},
                                 {"label": "Voucher 50k", "weight": 10, "stock": 5}]},
        },
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    updated = patched.json()
    assert updated["consent"]["version"] == "2026-12-01"
    assert updated["consent_versions"] == ["2026-11-01", "2026-12-01"]
    assert updated["tags"] == ["vong-quay"]
    assert [(p["label"], p["codes_total"]) for p in updated["wheel"]["prizes"]] == [
        ("Giảm 10%", 3), ("Voucher 50k", 0),
    ]  # fmt: skip
    assert updated["wheel"]["prizes"][0]["id"] == prizes[0]["id"]

    deleted = await client.delete(f"/v1/forms/{form['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/forms/{form['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"/f/{form['id']}/token", headers={"Origin": SITE})).status_code == 404
    assert (await client.get(f"/f/{form['id']}/widget.js")).status_code == 404
    assert (await client.get("/v1/forms", headers=tenant.headers)).json()["data"] == []


async def test_invalid_forms_are_refused_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    cases = [
        (form_body(colour="red"), "colour"),
        (form_body(kind="quiz"), "kind"),
        (form_body(allowed_origins=["shop.aodaihong.vn"]), "allowed_origins"),
        (form_body(allowed_origins=["https://shop.aodaihong.vn/path"]), "allowed_origins"),
        (form_body(allowed_origins=[]), "allowed_origins"),
        (form_body(consent={"text": "", "version": "1"}), "consent.text"),
        (form_body(triggers={"delay": "5 seconds"}), "triggers.delay"),
        (form_body(look={"image_url": "http://insecure.example/x.png"}), "look.image_url"),
        (form_body(page_id="999"), "page_id"),
        (form_body(kind="minigame"), "wheel.prizes"),
        (form_body(wheel=WHEEL), "wheel"),
        (form_body(kind="minigame", wheel={"prizes": [{"label": "x", "weight": -1}]}),
         "wheel.prizes[0].weight"),
    ]  # fmt: skip
    for body, field in cases:
        response = await client.post("/v1/forms", headers=tenant.headers, json=body)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in response.json()["errors"]], (field, response.text)
    form = await create_form(client, tenant)
    changed_text = await client.patch(
        f"/v1/forms/{form['id']}",
        headers=tenant.headers,
        json={"consent": {"text": "Một nội dung khác", "version": CONSENT["version"]}},
    )
    assert changed_text.status_code == 422
    assert changed_text.json()["errors"][0]["field"] == "consent.version"
    kind = await client.patch(
        f"/v1/forms/{form['id']}", headers=tenant.headers, json={"kind": "embedded"}
    )
    assert kind.status_code == 422
    assert (await client.patch(
        f"/v1/forms/{form['id']}", headers=tenant.headers, json={"name": None}
    )).status_code == 422  # fmt: skip


async def test_the_token_carries_the_public_config_and_nothing_secret(
    client: httpx.AsyncClient,
    tenant: Tenant,
    clock: FrozenClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_page(sessions, tenant)
    form = await create_form(
        client, tenant, kind="minigame", page_id=PAGE, wheel=WHEEL,
        triggers={"delay": "5s", "exit_intent": True, "frequency": {"times": 2, "per": "1d"}},
        look={"title": "Quay là trúng"},
    )  # fmt: skip
    response = await Visitor(client, clock, form["id"]).fetch_token()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["min_fill_seconds"] == 2
    assert body["issued_at"] == "2026-11-20T09:00:00Z"
    assert body["expires_at"] == "2026-11-20T11:00:00Z"
    config = body["form"]
    assert config["kind"] == "minigame"
    assert config["consent"] == CONSENT
    assert config["triggers"] == {
        "delay_seconds": 5, "scroll_percent": None, "exit_intent": True,
        "frequency": {"times": 2, "per_seconds": 86400},
    }  # fmt: skip
    assert config["look"] == {"title": "Quay là trúng"}
    assert config["honeypot_field"] == "website"
    assert config["messenger"] is True
    assert [s["label"] for s in config["wheel"]["segments"]] == [
        "Giảm 10%", "Áo dài miễn phí", "Chúc may mắn lần sau",
    ]  # fmt: skip
    assert set(config["wheel"]["segments"][0]) == {"id", "label"}
    text = response.text
    for secret in ("GIAM10", "weight", "stock", "losing", "awarded", tenant.workspace_id):
        assert secret not in text
    other = (await Visitor(client, clock, form["id"]).fetch_token()).json()["token"]
    assert other != body["token"]


async def test_widget_script_is_served_with_its_config_and_cache_headers(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    form = await create_form(client, tenant)
    response = await client.get(f"/f/{form['id']}/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    match = re.search(r"\}\)\((\{.*\})\);\s*$", response.text)
    assert match is not None, response.text[-300:]
    assert json.loads(match.group(1)) == {
        "form_id": form["id"],
        "token_url": f"https://outreach.test/f/{form['id']}/token",
        "capture_url": f"https://outreach.test/capture/{form['id']}",
    }
    etag = response.headers["etag"]
    again = await client.get(f"/f/{form['id']}/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    missing = await client.get("/f/fm_00000000000000000000000000/widget.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_stats_count_outcomes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    clock: FrozenClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    form = await create_form(client, tenant, kind="minigame", wheel=WHEEL, double_opt_in=False)
    visitor = Visitor(client, clock, form["id"])
    assert (await visitor.submit("a@example.com")).status_code == 200
    assert (await visitor.submit("b@example.com", website="x")).status_code == 400
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert stats["captured"] == 1
    assert stats["confirmed"] == 0
    assert stats["rejected"] == {"honeypot": 1}
    assert sum(stats["spins"].values()) == 1
    assert sum(p["awarded"] for p in stats["prizes"]) == stats["spins"]["won"]
    async with sessions() as s:
        sources = (await s.execute(sa.select(ConsentRecord.source))).scalars().all()  # type: ignore[call-overload]
    assert sources == ["minigame"]
