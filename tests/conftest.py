"""Shared fixtures: settings, both databases (SQLite and PostgreSQL), the API client.

Every store and API test runs on SQLite and on PostgreSQL (`backend` is parametrized). Each test
runs inside an outer transaction that is rolled back; services commit to savepoints inside it.
PostgreSQL is at OUTREACH_TEST_POSTGRES_URL (default postgresql://127.0.0.1:5432/test, trust auth);
if it is unreachable the suite fails rather than skipping it.
"""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.api"]
