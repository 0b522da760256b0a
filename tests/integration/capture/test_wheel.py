"""The lucky wheel: drawn on the server once per address and form, reserved only after the
confirmation, and stock that holds under real concurrency on both databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator import migrate
from orchestrator.capture import capture as capture_service
from orchestrator.capture import confirm as confirm_service
from orchestrator.capture import forms
from orchestrator.capture.guard import CaptureSettings
from orchestrator.capture.tokens import ConfirmLink, make_confirm_token
from orchestrator.clock import FrozenClock
from orchestrator.crypto import KeyRing
from orchestrator.db import create_engine, session_factory, transaction
from orchestrator.models import (
    CaptureForm,
    CapturePrize,
    CapturePrizeCode,
    Delivery,
    EmailIdentity,
    table_of,
)
from orchestrator.resources import Resources
from orchestrator.workspaces import create_workspace
from tests.fixtures.api import T0, Tenant
from tests.fixtures.database import TEST_SECRET, create_pg_schema, drop_pg_schema, make_settings
from tests.integration.capture.visitor import CONSENT, SITE, Visitor, create_form

ONLY_VOUCHER = {
    "prizes": [
        {"label": "Voucher 50k", "weight": 1, "stock": 1, "codes": ["V50-001", "V50-002"]},
        {"label": "Áo dài", "weight": 0, "stock": 5},
    ]
}


async def confirm_link(
    sessions: async_sessionmaker[AsyncSession], resources: Resources, tenant: Tenant, address: str
) -> str:
    async with sessions() as s:
        identity = (
            await s.execute(sa.select(EmailIdentity).where(EmailIdentity.address == address))  # type: ignore[arg-type]
        ).scalar_one()
        table = table_of(Delivery)
        delivery = (
            await s.execute(
                sa.select(table.c.id, table.c.content)
                .where(table.c.contact_id == identity.contact_id, table.c.kind == "double_opt_in")
                .order_by(table.c.created_at.desc())
            )
        ).first()
    assert delivery is not None
    token = make_confirm_token(
        resources.keyring,
        ConfirmLink(
            tenant.workspace_id, identity.id, delivery.content["capture_event_id"], delivery.id
        ),
        now=T0,
    )
    return f"/c/{token}"


async def test_double_opt_in_spin_is_shown_at_capture_and_reserved_at_confirmation(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    form = await create_form(client, tenant, kind="minigame", wheel=ONLY_VOUCHER)
    voucher_id = form["wheel"]["prizes"][0]["id"]
    visitor = Visitor(client, clock, form["id"])
    first = (await visitor.submit("lan@example.com")).json()
    assert first["spin"] == {
        "segment_id": voucher_id, "label": "Voucher 50k", "status": "pending", "code": None,
    }  # fmt: skip
    second = (await visitor.submit("hoa@example.com")).json()
    assert second["spin"]["status"] == "pending"  # drawn, but nothing is reserved yet
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert stats["prizes"][0]["awarded"] == 0
    assert stats["spins"] == {"pending": 2, "won": 0, "lost": 0, "out_of_stock": 0}

    hoa = await client.post(await confirm_link(sessions, resources, tenant, "hoa@example.com"))
    assert "Bạn đã trúng: Voucher 50k" in hoa.text
    [code] = [c for c in ("V50-001", "V50-002") if c in hoa.text]
    lan = await client.post(await confirm_link(sessions, resources, tenant, "lan@example.com"))
    assert "vừa hết" in lan.text  # the stock of one went to whoever confirmed first
    assert "V50-00" not in lan.text
    again = await client.post(await confirm_link(sessions, resources, tenant, "hoa@example.com"))
    assert code in again.text  # the winner's page shows the code again; nothing new taken

    # Once per address and form: playing again shows the same segment and gives nothing.
    replay = (await visitor.submit("LAN@example.com")).json()
    assert replay["spin"] == {
        "segment_id": voucher_id, "label": "Voucher 50k", "status": "out_of_stock", "code": None,
    }  # fmt: skip
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert stats["spins"] == {"pending": 0, "won": 1, "lost": 0, "out_of_stock": 1}
    assert (stats["prizes"][0]["awarded"], stats["prizes"][0]["codes_left"]) == (1, 1)
    assert stats["confirmed"] == 2


async def test_single_opt_in_reserves_at_capture_and_shows_the_code_once(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    wheel = {"prizes": [{"label": "Giảm 10%", "weight": 1, "codes": ["G10-A"]},
                        {"label": "May mắn lần sau", "weight": 0, "losing": True}]}  # fmt: skip
    form = await create_form(client, tenant, kind="minigame", wheel=wheel, double_opt_in=False)
    visitor = Visitor(client, clock, form["id"])
    won = (await visitor.submit("an@example.com")).json()
    assert (won["spin"]["status"], won["spin"]["code"]) == ("won", "G10-A")
    replay = (await visitor.submit("an@example.com")).json()
    assert (replay["spin"]["status"], replay["spin"]["code"]) == ("won", None)
    # The pool is empty: the next player's draw leaves the prize out (no stock), and with no
    # other segment carrying weight the wheel has nothing to land on.
    nobody = (await visitor.submit("binh@example.com")).json()
    assert nobody["spin"] == {
        "segment_id": None,
        "label": None,
        "status": "out_of_stock",
        "code": None,
    }


async def test_a_losing_segment_reserves_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> None:
    wheel = {"prizes": [{"label": "Chúc may mắn lần sau", "weight": 1, "losing": True},
                        {"label": "Voucher", "weight": 0, "stock": 3}]}  # fmt: skip
    form = await create_form(client, tenant, kind="minigame", wheel=wheel)
    await Visitor(client, clock, form["id"]).submit("cuong@example.com")
    page = await client.post(await confirm_link(sessions, resources, tenant, "cuong@example.com"))
    assert "Chúc bạn may mắn lần sau" in page.text
    stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
    assert stats["spins"]["lost"] == 1
    assert [p["awarded"] for p in stats["prizes"]] == [0, 0]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_stock_holds_under_200_concurrent_confirmations(backend: str, tmp_path: Path) -> None:
    """Separate connections committing for real (not the rolled-back test transaction)."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}"
    else:
        schema, url = create_pg_schema()
    engine = create_engine(make_settings(url))
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        keyring = KeyRing(TEST_SECRET)
        settings = CaptureSettings.of(make_settings(url))
        async with transaction(sessions) as s:
            workspace = await create_workspace(s, name="stock", now=T0)
            view = await forms.create_form(
                s,
                workspace_id=workspace.id,
                values={
                    "name": "Vòng quay", "kind": "minigame", "allowed_origins": [SITE],
                    "tags": [], "consent_text": CONSENT["text"],
                    "consent_version": CONSENT["version"], "double_opt_in": True,
                    "triggers": {}, "look": {},
                },
                prizes=[forms.PrizeInput("Voucher", weight=1, stock=10,
                                         codes=tuple(f"C{n:03}" for n in range(12)))],
                now=T0,
            )  # fmt: skip
        form_id = view.form.id
        for n in range(200):
            async with transaction(sessions) as s:
                form = await s.get(CaptureForm, form_id)
                assert form is not None
                await capture_service.capture(
                    s,
                    keyring,
                    form=form,
                    token=f"token-{n}",
                    submission=capture_service.Submission(
                        address=f"p{n:03}@example.com", consent_version=CONSENT["version"]
                    ),
                    settings=settings,
                    now=T0,
                    r=0.5,
                )
        async with sessions() as s:
            table = table_of(Delivery)
            rows = (
                await s.execute(
                    sa.select(table.c.id, table.c.content).where(table.c.kind == "double_opt_in")
                )
            ).all()
        tokens = [
            make_confirm_token(
                keyring,
                ConfirmLink(
                    workspace.id,
                    r.content["email_identity_id"],
                    r.content["capture_event_id"],
                    r.id,
                ),
                now=T0,
            )
            for r in rows
        ]
        assert len(tokens) == 200

        async def press(token: str) -> str:
            async with transaction(sessions) as s:
                done = await confirm_service.confirm(
                    s, keyring, token=token, ip=None, user_agent=None, now=T0
                )
            assert done.spin is not None
            return done.spin.status

        outcomes = Counter(await asyncio.gather(*(press(t) for t in tokens)))
        assert outcomes == {"won": 10, "out_of_stock": 190}
        async with sessions() as s:
            prize = (await s.execute(sa.select(CapturePrize))).scalar_one()
            codes = table_of(CapturePrizeCode)
            given = (
                (await s.execute(sa.select(codes.c.code).where(codes.c.spin_id.is_not(None))))
                .scalars()
                .all()
            )
            subscribed = (
                await s.execute(
                    sa.select(sa.func.count())
                    .select_from(EmailIdentity)
                    .where(EmailIdentity.status == "subscribed")  # type: ignore[arg-type]
                )
            ).scalar_one()
        assert prize.awarded == 10
        assert len(given) == len(set(given)) == 10
        assert subscribed == 200
    finally:
        await engine.dispose()
        if schema:
            drop_pg_schema(schema)
