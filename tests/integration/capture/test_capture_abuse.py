"""Public capture endpoints against hostile callers (DESIGN section 10): every refusal is a
problem+json 4xx and stores nothing but a per-form counter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.app import create_app
from orchestrator.clock import FrozenClock
from orchestrator.resources import Resources, build_resources
from tests.fixtures.api import Tenant
from tests.fixtures.database import Database, make_settings
from tests.integration.capture.visitor import (
    SITE,
    ApplyingTransport,
    Visitor,
    create_form,
    row_counts,
)

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def rejected(client: httpx.AsyncClient, tenant: Tenant, form_id: str) -> dict[str, int]:
    stats = await client.get(f"/v1/forms/{form_id}/stats", headers=tenant.headers)
    assert stats.status_code == 200, stats.text
    counts: dict[str, int] = stats.json()["rejected"]
    return counts


@pytest.fixture
async def form_id(client: httpx.AsyncClient, tenant: Tenant) -> str:
    form = await create_form(client, tenant, allowed_origins=[SITE, "https://*.aodaihong.vn"])
    return str(form["id"])


async def test_a_disallowed_origin_or_referer_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    form_id: str,
) -> None:
    token = await Visitor(client, clock, form_id).token()
    before = await row_counts(sessions)
    body = {"email": "victim@example.com", "consent": True, "token": token}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://shop.aodaihong.vn"},  # scheme matters
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://aodaihong.vn.evil.example"},
    ):
        response = await client.post(f"/capture/{form_id}", headers=headers, json=body)
        problem = assert_problem(response, 403)
        assert problem["type"] == "urn:outreach:problem:origin-not-allowed"
        assert "access-control-allow-origin" not in response.headers
    form_encoded = await client.post(
        f"/capture/{form_id}",
        headers={"Origin": "https://evil.example"},
        data={"email": "victim@example.com", "consent": "on", "token": token},
    )
    assert_problem(form_encoded, 403)
    token_refused = await client.get(
        f"/f/{form_id}/token", headers={"Origin": "https://evil.example"}
    )
    assert_problem(token_refused, 403)
    assert await row_counts(sessions) == before
    assert (await rejected(client, tenant, form_id)) == {"origin": 7}
    # The same token still works from the allowed site (it was never used), and a subdomain
    # matches the wildcard.
    ok = await client.post(
        f"/capture/{form_id}", headers={"Origin": "https://m.aodaihong.vn"}, json=body
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == "https://m.aodaihong.vn"


async def test_cors_preflight_only_for_allowed_origins(
    client: httpx.AsyncClient, form_id: str
) -> None:
    for path, methods in ((f"/capture/{form_id}", "POST"), (f"/f/{form_id}/token", "GET")):
        allowed = await client.options(
            path,
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": methods,
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == SITE
        assert methods in allowed.headers["access-control-allow-methods"]
        assert allowed.headers["access-control-allow-headers"].lower() == "content-type"
        assert "access-control-allow-credentials" not in allowed.headers
        refused = await client.options(
            path,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": methods},
        )
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
    missing = await client.options("/capture/fm_00000000000000000000000000")
    assert_problem(missing, 404)


async def test_form_token_rules_fresh_expired_replayed_foreign_missing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    form_id: str,
) -> None:
    visitor = Visitor(client, clock, form_id)
    other = await create_form(client, tenant, name="Khác")
    before = await row_counts(sessions)

    fresh = await visitor.token(wait=timedelta(seconds=1))  # under the 2 s minimum fill time
    too_fresh = await visitor.post({"email": "a@example.com", "consent": True, "token": fresh})
    problem = assert_problem(too_fresh, 400)
    assert problem["reason"] == "token_too_fresh"
    assert too_fresh.headers["retry-after"] == "1"
    assert too_fresh.headers["access-control-allow-origin"] == SITE  # the widget can read why

    old = await visitor.token(wait=timedelta(hours=2, seconds=1))
    expired = await visitor.post({"email": "a@example.com", "consent": True, "token": old})
    assert assert_problem(expired, 400)["reason"] == "token_expired"

    foreign = await Visitor(client, clock, other["id"]).token()
    wrong_form = await visitor.post({"email": "a@example.com", "consent": True, "token": foreign})
    assert assert_problem(wrong_form, 400)["reason"] == "token_invalid"

    tampered = await visitor.post(
        {"email": "a@example.com", "consent": True, "token": foreign[:-2] + "xx"}
    )
    assert assert_problem(tampered, 400)["reason"] == "token_invalid"

    missing = await visitor.post({"email": "a@example.com", "consent": True})
    assert assert_problem(missing, 400)["reason"] == "token_missing"
    assert await row_counts(sessions) == before

    token = await visitor.token()
    first = await visitor.post({"email": "a@example.com", "consent": True, "token": token})
    assert first.status_code == 200, first.text
    after_first = await row_counts(sessions)
    replayed = await visitor.post({"email": "b@example.com", "consent": True, "token": token})
    assert assert_problem(replayed, 409)["type"] == "urn:outreach:problem:form-token-replayed"
    assert await row_counts(sessions) == after_first
    assert await rejected(client, tenant, form_id) == {
        "token_expired": 1, "token_invalid": 2, "token_missing": 1, "token_replayed": 1,
        "token_too_fresh": 1,
    }  # fmt: skip


async def test_honeypot_body_shape_size_and_fields(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    form_id: str,
) -> None:
    visitor = Visitor(client, clock, form_id)
    token = await visitor.token()
    before = await row_counts(sessions)
    valid = {"email": "a@example.com", "consent": True, "token": token}

    honeypot = await visitor.post({**valid, "website": "http://spam.example"})
    assert assert_problem(honeypot, 400)["type"] == "urn:outreach:problem:capture-refused"

    huge = await visitor.post({**valid, "name": "x" * 10_000})
    assert_problem(huge, 413)

    async def chunked() -> Any:
        for _ in range(10):
            yield b"a" * 1000

    undeclared = await client.post(
        f"/capture/{form_id}",
        headers={"Origin": SITE, "Content-Type": "application/json"},
        content=chunked(),
    )
    assert_problem(undeclared, 413)

    text = await client.post(
        f"/capture/{form_id}", headers={"Origin": SITE, "Content-Type": "text/plain"}, content=b"hi"
    )
    assert_problem(text, 415)
    broken = await client.post(
        f"/capture/{form_id}",
        headers={"Origin": SITE, "Content-Type": "application/json"},
        content=b'{"email": ',
    )
    assert_problem(broken, 400)
    array = await visitor.post([valid])  # type: ignore[arg-type]
    assert_problem(array, 400)

    bad_email = await visitor.post({**valid, "email": "lan@@example"})
    problem = assert_problem(bad_email, 422)
    assert [e["field"] for e in problem["errors"]] == ["email"]
    assert problem["errors"][0]["code"] == "invalid_email"

    no_consent = await visitor.post({k: v for k, v in valid.items() if k != "consent"})
    problem = assert_problem(no_consent, 422)
    assert [e["field"] for e in problem["errors"]] == ["consent"]
    declined = await visitor.post({**valid, "consent": False})
    problem = assert_problem(declined, 422)
    assert problem["errors"][0]["field"] == "consent"
    assert "consent is required" in problem["errors"][0]["message"]

    assert await row_counts(sessions) == before
    assert await rejected(client, tenant, form_id) == {
        "honeypot": 1, "invalid_fields": 3, "malformed_body": 2, "payload_too_large": 2,
        "unsupported_media_type": 1,
    }  # fmt: skip
    # None of it used the token up.
    assert (await visitor.post(valid)).status_code == 200


@pytest.fixture
def limited_app(
    database: Database,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
) -> Callable[..., AsyncIterator[httpx.AsyncClient]]:
    async def make(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(database.url, **overrides)
        limited = build_resources(
            settings,
            engine=database.engine,
            sessions=sessions,
            clock=clock,
            messenger=resources.messenger,
        )
        app = create_app(resources=limited, run_scheduler=False)
        async with httpx.AsyncClient(
            transport=ApplyingTransport(app, limited), base_url="http://testserver"
        ) as c:
            yield c

    return make


async def test_rate_limits_per_ip_and_per_form_answer_429_with_retry_after(
    limited_app: Callable[..., AsyncIterator[httpx.AsyncClient]],
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    async for client in limited_app(
        capture_rate_per_ip="3/minute", capture_rate_per_form="5/hour",
        capture_token_rate_per_ip="100/minute", trusted_proxies="127.0.0.1",
    ):  # fmt: skip
        form = await create_form(client, tenant)
        visitor = Visitor(client, clock, form["id"])
        for n in range(3):
            assert (await visitor.submit(f"p{n}@example.com")).status_code == 200
        before = await row_counts(sessions)
        fourth = await visitor.submit("p3@example.com")
        problem = assert_problem(fourth, 429)
        assert problem["type"] == "urn:outreach:problem:rate-limited"
        assert fourth.headers["retry-after"] == "60"
        assert await row_counts(sessions) == before
        # Another client (behind our trusted proxy) has its own window, until the form's runs out.
        for n, address in enumerate(("203.0.113.5", "203.0.113.6")):
            other = Visitor(client, clock, form["id"], headers={"X-Forwarded-For": address})
            assert (await other.submit(f"q{n}@example.com")).status_code == 200
        third = Visitor(client, clock, form["id"], headers={"X-Forwarded-For": "203.0.113.7"})
        per_form = await third.submit("q9@example.com")
        assert_problem(per_form, 429)
        assert per_form.headers["retry-after"] == "3600"
        stats = (await client.get(f"/v1/forms/{form['id']}/stats", headers=tenant.headers)).json()
        assert (stats["captured"], stats["rejected"]) == (5, {"rate_limited": 2})


async def test_token_issuance_is_rate_limited_per_ip(
    limited_app: Callable[..., AsyncIterator[httpx.AsyncClient]],
    tenant: Tenant,
    clock: FrozenClock,
) -> None:
    async for client in limited_app(capture_token_rate_per_ip="2/minute"):
        form = await create_form(client, tenant)
        visitor = Visitor(client, clock, form["id"])
        assert (await visitor.fetch_token()).status_code == 200
        assert (await visitor.fetch_token()).status_code == 200
        refused = await visitor.fetch_token()
        assert_problem(refused, 429)
        assert refused.headers["retry-after"] == "60"


async def test_the_confirmation_page_is_rate_limited_per_ip(
    limited_app: Callable[..., AsyncIterator[httpx.AsyncClient]],
) -> None:
    async for client in limited_app(capture_token_rate_per_ip="2/minute"):
        # Forged tokens: each costs a signature check and is refused as invalid...
        assert (await client.get("/c/not-a-token")).status_code == 400
        assert (await client.post("/c/not-a-token")).status_code == 400
        # ... until the client's window is spent, then 429 before any check.
        refused = await client.get("/c/not-a-token")
        assert_problem(refused, 429)
        assert refused.headers["retry-after"] == "60"
        assert refused.headers["cache-control"] == "no-store"
