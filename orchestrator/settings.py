"""Settings: one `Settings` object read from `OUTREACH_*` environment variables (and `.env`)."""

from __future__ import annotations

import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./outreach.db"


class SettingsError(RuntimeError):
    """The settings cannot be used as given; the message says which one and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OUTREACH_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: SecretStr | None = None
    secret_keys_old: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    public_url: str = "http://127.0.0.1:8000"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_pool_size: int = Field(default=4, ge=1)
    smtp_max_per_second: float | None = Field(default=None, gt=0)
    email_from: str = "Outreach <outreach@localhost>"
    unsubscribe_mailto: str | None = None

    graph_api_url: str = "https://graph.facebook.com"
    graph_api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")

    clock_offset: float = 0.0
    """Seconds added to the system clock (DESIGN section 8): negative places us in the past."""
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    embedded_scheduler: bool = True
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    """`outreach serve` and `outreach worker` log one JSON object per line (`json`), or lines for
    a person (`text`); `auto` picks text when stderr is a terminal and JSON otherwise."""
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    """`/metrics` reads counts from the database at most this often (a scrape storm reuses them)."""
    dispatch_rounds: int = Field(default=2, ge=1, le=8)
    """Dispatch rounds a process runs at once: one round's sends overlap another's reads and
    writes (bench/campaign.py)."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """`outreach worker` serves its own `/metrics` (the send latencies it measures) on this port;
    unset: none. The database counts are on the API's `/metrics`."""
    readyz_worker_max_age_seconds: int = Field(default=60, ge=1)
    """`/readyz` wants a worker (or the embedded scheduler) heartbeat at most this old."""
    ui_session_seconds: int = Field(default=28_800, ge=60, le=2_592_000)
    """How long a campaign-page session (`POST /login`) lasts; a revoked key ends it sooner."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    import_max_bytes: int = Field(default=1 << 30, ge=1024)
    """The body limit of `POST /v1/contacts/imports` (files stream to the database)."""
    default_timezone: str = "Asia/Ho_Chi_Minh"
    takeover_quiet_seconds: int = Field(default=86_400, ge=0)
    """After a person replies from the Page inbox, automated sends wait this long (DESIGN 6)."""
    inbox_interval_seconds: float = Field(default=1.0, gt=0)
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: int = Field(default=60, ge=1)
    dispatch_concurrency: int = Field(default=32, ge=1)
    retry_max_attempts: int = Field(default=12, ge=1, le=50)
    """Attempts of a delivery that keeps meeting temporary errors (a relay down, 5xx, 613)
    before `failed.retries_exhausted`."""
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=600.0, gt=0)
    """Backoff between attempts: uniform in [0, min(cap, base x 2^(attempt-1))] (full jitter);
    the defaults wait up to about 37 minutes over all attempts (half that on average)."""
    page_send_rate: int = Field(default=300, ge=1)
    graph_max_in_flight: int = Field(default=45, ge=1)
    """Send API calls per second per Page (reference section 7: 300)."""
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)

    # Public capture endpoints (DESIGN section 10).
    capture_cooling_seconds: int = Field(default=86_400, ge=60)
    """At most one double opt-in email per address in this period; a repeated single opt-in
    capture of the same address and form inside it records nothing new."""
    capture_token_min_fill_seconds: int = Field(default=2, ge=0)
    capture_token_max_age_seconds: int = Field(default=7_200, ge=60, le=604_800)
    capture_rate_per_ip: str = "20/minute"
    """Captures per client IP (`limits` notation, several separated by ';')."""
    capture_rate_per_form: str = "600/minute"
    capture_token_rate_per_ip: str = "60/minute"  # noqa: S105 (a rate, not a secret)
    """Form tokens issued per client IP; also visits of the confirmation page (`/c/{token}`)."""
    capture_max_body_bytes: int = Field(default=4_096, ge=512)
    capture_counter_flush_seconds: float = Field(default=10.0, ge=0)
    """Rejections are counted in memory and written at most this often (per process)."""

    @field_validator("secret_keys_old", mode="before")
    @classmethod
    def _split_old_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("capture_rate_per_ip", "capture_rate_per_form", "capture_token_rate_per_ip")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as '20/minute': {exc}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            # A plain URL would pick psycopg2; we use psycopg 3's async driver.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            value = "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not (value.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://"))):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _secret_key_long_enough(self) -> Settings:
        for key in (self.secret_key, *self.secret_keys_old):
            if key is not None and len(key.get_secret_value()) < 32:
                raise ValueError("secret keys must be at least 32 characters")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        if path in ("", ":memory:"):
            return None
        return Path(path)


def resolve_secret_keys(settings: Settings) -> tuple[str, tuple[str, ...]]:
    """The current secret key and the retired ones still accepted (DESIGN section 11).

    Only the SQLite default may generate a key; it is kept beside the database file, readable by
    its owner only, so that restarting keeps links and encrypted tokens valid.
    """
    old = tuple(key.get_secret_value() for key in settings.secret_keys_old)
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value(), old
    path = settings.sqlite_path
    if path is None:
        raise SettingsError(
            "OUTREACH_SECRET_KEY is required with this database: a key is generated "
            "automatically only for a SQLite file database"
        )
    key_file = path.with_name(path.name + ".secret-key")
    if key_file.exists():
        return key_file.read_text(encoding="ascii").strip(), old
    key_file.parent.mkdir(parents=True, exist_ok=True)
    generated = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generated + "\n")
    return generated, old


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
