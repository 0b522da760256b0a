"""Migrations apply cleanly on an empty SQLite file and an empty PostgreSQL schema, match the
models, and go down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from orchestrator import migrate
from orchestrator.db import create_engine
from tests.fixtures.database import create_pg_schema, drop_pg_schema, make_settings

EXPECTED_TABLES = {
    "workspaces", "api_keys", "messenger_apps", "pages", "contacts", "email_identities",
    "messenger_identities", "contact_tags", "consent_ledger", "suppressions", "optin_tokens",
    "webhook_inbox", "interaction_events", "deliveries", "idempotency_keys", "worker_heartbeats", "contact_merges", "contact_imports", "contact_import_chunks", "contact_import_errors", "webhook_bodies", "link_bindings", "channel_pauses", "campaigns", "campaign_runs", "send_leases", "send_budgets",
    "capture_forms", "capture_prizes", "capture_prize_codes", "capture_spins", "capture_token_uses",
    "capture_counters", "capture_inbox", "comment_replies",
}  # fmt: skip


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrade_matches_models_then_down_and_up(backend: str, tmp_path: Path) -> None:
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        schema, url = create_pg_schema()
    engine = create_engine(make_settings(url))
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.is_current(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == EXPECTED_TABLES
            assert await conn.run_sync(_diff) == []
        await migrate.upgrade(engine)  # applying again is a no-op
        assert await migrate.is_current(engine)
        await migrate.downgrade(engine, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
        if schema:
            drop_pg_schema(schema)
