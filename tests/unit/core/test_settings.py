from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings, SettingsError, resolve_secret_keys


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_use_embedded_sqlite_and_documented_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATABASE_URL", "GRAPH_API_URL", "GRAPH_API_VERSION", "SMTP_TLS"):
        monkeypatch.delenv(f"OUTREACH_{name}", raising=False)
    s = settings()
    assert s.database_url == "sqlite+aiosqlite:///./outreach.db"
    assert s.graph_api_url == "https://graph.facebook.com"
    assert s.graph_api_version == "v25.0"
    assert s.smtp_tls == "none"
    assert s.is_sqlite


def test_reads_outreach_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_DATABASE_URL", "postgresql://u@db/outreach")
    monkeypatch.setenv("OUTREACH_SECRET_KEYS_OLD", "a" * 32 + ", " + "b" * 32)
    monkeypatch.setenv("OUTREACH_TRUSTED_PROXIES", "10.0.0.1,10.0.0.2")
    monkeypatch.setenv("OUTREACH_SMTP_TLS", "starttls")
    monkeypatch.setenv("OUTREACH_CLOCK_OFFSET", "-3600")
    s = settings()
    assert s.database_url == "postgresql+psycopg://u@db/outreach"
    assert [k.get_secret_value() for k in s.secret_keys_old] == ["a" * 32, "b" * 32]
    assert s.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert s.smtp_tls == "starttls"
    assert s.clock_offset == -3600


def test_bad_values_name_the_setting() -> None:
    with pytest.raises(ValidationError, match="smtp_tls"):
        settings(smtp_tls="ssl")
    with pytest.raises(ValidationError, match="database_url"):
        settings(database_url="mysql://x")
    with pytest.raises(ValidationError, match="32 characters"):
        settings(secret_key="short")
    with pytest.raises(ValidationError, match="graph_api_version"):
        settings(graph_api_version="25")


def test_sqlite_generates_and_keeps_a_private_key(tmp_path: Path) -> None:
    db = tmp_path / "data" / "outreach.db"
    s = settings(database_url=f"sqlite:///{db}")
    current, old = resolve_secret_keys(s)
    key_file = db.with_name("outreach.db.secret-key")
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(current) >= 32
    assert old == ()
    assert resolve_secret_keys(s)[0] == current


def test_explicit_key_wins_over_generated(tmp_path: Path) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path / 'o.db'}", secret_key="k" * 40)
    assert resolve_secret_keys(s) == ("k" * 40, ())
    assert not (tmp_path / "o.db.secret-key").exists()


def test_postgres_without_secret_key_refuses() -> None:
    s = settings(database_url="postgresql://127.0.0.1/test")
    with pytest.raises(SettingsError, match="OUTREACH_SECRET_KEY is required"):
        resolve_secret_keys(s)


def test_in_memory_sqlite_cannot_keep_a_key() -> None:
    with pytest.raises(SettingsError):
        resolve_secret_keys(settings(database_url="sqlite+aiosqlite:///:memory:"))
